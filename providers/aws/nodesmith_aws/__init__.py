"""nodesmith provider for AWS EC2."""
