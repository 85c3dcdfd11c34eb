"""nodesmith: just-in-time Kubernetes nodes."""
