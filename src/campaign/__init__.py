"""campaign: email campaigns kept as files in git, compiled with MJML, sent through your mail service."""

__version__ = "0.1.0"
