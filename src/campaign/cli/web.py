"""Commands: web."""

from campaign.cli.app import app  # noqa: F401
