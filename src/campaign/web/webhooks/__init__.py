"""The mail services' webhooks: verify, normalise, record once.

One module per service (as django-anymail's webhooks mirror its backends), each
declaring a `Service`: its name, the secrets it reads and its normaliser. `base`
holds the shared types, signature helpers and the replay window; `recording`
applies each event once, for webhooks and for the other ways a bounce arrives.
"""

from __future__ import annotations

from campaign.web.webhooks import brevo, mailgun, mandrill, postmark, resend, sendgrid, ses
from campaign.web.webhooks.base import (
    Context,
    Event,
    Incoming,
    Kind,
    Malformed,
    Normaliser,
    Refused,
    Service,
)
from campaign.web.webhooks.mandrill import mandrill_signature
from campaign.web.webhooks.recording import Outcome, record

SERVICES: dict[str, Service] = {
    module.SERVICE.name: module.SERVICE
    for module in (postmark, mailgun, sendgrid, ses, resend, brevo, mandrill)
}
"""/webhooks/<name> -> its service. Mailchimp Transactional is `mandrill`."""

NORMALISERS: dict[str, Normaliser] = {name: s.normalise for name, s in SERVICES.items()}
SECRETS: dict[str, tuple[str, ...]] = {name: s.secrets for name, s in SERVICES.items()}
"""Per service, the environment variables it reads (the first is required)."""

__all__ = [
    "NORMALISERS",
    "SECRETS",
    "SERVICES",
    "Context",
    "Event",
    "Incoming",
    "Kind",
    "Malformed",
    "Normaliser",
    "Outcome",
    "Refused",
    "Service",
    "mandrill_signature",
    "record",
]
