"""Mail services, by the name used in campaign.toml `[provider] name = ...`."""

from __future__ import annotations

from datetime import datetime
from importlib import import_module
from typing import Protocol

import httpx

from campaign.compiled import Compiled
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
"""Batch senders, driven by the send engine and its ledger."""

HOSTED: dict[str, str] = {"mailchimp": "campaign.providers.mailchimp:Mailchimp"}
"""Services that hold the audience themselves and take the whole campaign at once."""


class HostedService(Protocol):
    """A service that holds the audience (Mailchimp). `campaign send` runs the same
    preflight, dry run and confirmation for it as for a batch provider, then calls `send`."""

    @property
    def audience(self) -> str:
        """Whom a send reaches, for the confirmation prompt."""

    async def send(
        self, compiled: Compiled, *, test_addresses: list[str] | None, at: datetime | None
    ) -> str:
        """Send (or test, or schedule at `at`); the line to print."""


def hosted(
    config: Config, *, transport: httpx.AsyncBaseTransport | None = None
) -> HostedService | None:
    """The service campaign.toml names if it holds the audience itself (its options and
    secrets checked), else None: the engine sends through `create(config)`."""
    path = HOSTED.get(config.provider.name)
    if path is None:
        return None
    module_name, class_name = path.split(":")
    service: HostedService = getattr(import_module(module_name), class_name)(config, transport)
    return service


def provider_class(name: str) -> type[Provider]:
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown provider {name!r} in [provider]; known: {', '.join(sorted([*REGISTRY, *HOSTED]))}"
        ) from None
    cls: type[Provider] = getattr(import_module(module_name), class_name)
    return cls


def create(config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """The provider that campaign.toml names, with its options and secrets."""
    cls = provider_class(config.provider.name)
    return cls(config.provider.options, config.env, transport=transport, workspace=config.workspace)


__all__ = [
    "HOSTED",
    "REGISTRY",
    "HTTPProvider",
    "HostedService",
    "Provider",
    "Result",
    "Status",
    "create",
    "hosted",
    "provider_class",
]
