"""`python -m kubeguard` runs the CLI."""

from kubeguard.cli import app

app(prog_name="kubeguard")
