"""nodesmith provider for kwok fake nodes."""
