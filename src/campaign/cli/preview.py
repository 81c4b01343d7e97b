"""Commands: preview."""

from campaign.cli.app import app  # noqa: F401
