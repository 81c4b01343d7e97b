"""Mail services, by the name used in campaign.toml `[provider] name = ...`."""

from __future__ import annotations

from importlib import import_module

import httpx

from campaign.config import Config
from campaign.errors import ConfigError
from campaign.providers.base import HTTPProvider, Provider, Result, Status

REGISTRY: dict[str, str] = {
    "outbox": "campaign.providers.outbox:OutboxProvider",
    "smtp": "campaign.providers.smtp:SMTPProvider",
    "postmark": "campaign.providers.postmark:PostmarkProvider",
    "mailgun": "campaign.providers.mailgun:MailgunProvider",
    "sendgrid": "campaign.providers.sendgrid:SendGridProvider",
    "ses": "campaign.providers.ses:SESProvider",
    "resend": "campaign.providers.resend:ResendProvider",
    "brevo": "campaign.providers.brevo:BrevoProvider",
    "mandrill": "campaign.providers.mandrill:MandrillProvider",
}
"""Batch senders. Mailchimp Marketing holds the audience itself and is driven by
campaign.providers.mailchimp instead (see `campaign send`)."""


def provider_class(name: str) -> type[Provider]:
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r} in [provider]; known: {', '.join(sorted(REGISTRY))}, mailchimp"
        ) from None
    cls: type[Provider] = getattr(import_module(module_name), class_name)
    return cls


def create(config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """The provider that campaign.toml names, with its options and secrets."""
    cls = provider_class(config.provider.name)
    return cls(config.provider.options, config.env, transport=transport, workspace=config.workspace)


__all__ = ["HTTPProvider", "Provider", "REGISTRY", "Result", "Status", "create", "provider_class"]
