"""`python -m campaign` runs the CLI."""

from campaign.cli import main

main()
