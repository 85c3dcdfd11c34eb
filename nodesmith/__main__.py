"""``python -m nodesmith`` runs the command line."""

from nodesmith.cli import main

main()
