"""`python -m kubeguard` runs the CLI."""

from kubeguard.cli import main

main()
