"""What the audience store hands out: a `Recipient` to mail, a `Subscriber` to show."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from campaign.audience import addresses

CORE_FIELDS = ("email", "name", "first_name", "last_name")
"""Merge fields every recipient has; a CSV's other columns add to these."""
MAX_NAME_LENGTH = 200
"""Characters at most in a name (name, first_name, last_name): it goes into the To: line."""
MAX_FIELD_LENGTH = 2000
"""Characters at most in a merge field's value."""


def overlong(names: Mapping[str, str], fields: Mapping[str, str]) -> str | None:
    """What is too long among a subscriber's names and merge fields, said plainly; None if all fit."""
    for key, value, limit in [(k, v, MAX_NAME_LENGTH) for k, v in names.items()] + [
        (k, v, MAX_FIELD_LENGTH) for k, v in fields.items()
    ]:
        if len(value) > limit:
            return f"{key} is {len(value):,} characters long; at most {limit:,} fit"
    return None


normalise_email = addresses.normalise
checked_email = addresses.checked


def email_hash(address: str) -> str:
    """SHA-256 of the normalised address: what a suppression keeps once the address is erased."""
    return hashlib.sha256(normalise_email(address).encode("utf-8")).hexdigest()


def one_line(text: str) -> str:
    """A name as it may appear in a header: whitespace (CR, LF, tabs) collapsed to single spaces."""
    return " ".join(text.split())


def display_name(name: str, first_name: str, last_name: str) -> str:
    return name or one_line(f"{first_name} {last_name}")


def merge_fields(
    email: str, name: str, first_name: str, last_name: str, extra: Mapping[str, object]
) -> Mapping[str, str]:
    """Every merge field of one subscriber as text; the core fields win over extra columns."""
    values = {key: "" if value is None else str(value) for key, value in extra.items()}
    values.update(
        email=email,
        name=display_name(name, first_name, last_name),
        first_name=first_name,
        last_name=last_name,
    )
    return MappingProxyType(values)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person a send goes to, with what the personaliser fills in.

    `fields` holds email, name, first_name, last_name and every extra merge field, all as text.
    `public_id` is what links carry; `id` is only for keyset order and the send ledger.
    """

    id: int
    public_id: str
    email: str
    name: str
    fields: Mapping[str, str]

    @classmethod
    def of(
        cls,
        id: int,
        public_id: str,
        email: str,
        name: str,
        first_name: str,
        last_name: str,
        extra: Mapping[str, object],
    ) -> Recipient:
        """The recipient of a stored subscriber: display name and every merge field as text."""
        return cls(
            id=id,
            public_id=public_id,
            email=email,
            name=display_name(name, first_name, last_name),
            fields=merge_fields(email, name, first_name, last_name, extra),
        )


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Everything known about one subscriber, for `subscribers show` and the web pages."""

    id: int
    public_id: str
    email: str
    name: str
    first_name: str
    last_name: str
    fields: Mapping[str, str]
    """Extra merge fields only (the CSV's other columns); `recipient().fields` has them all."""
    status: str
    consent_source: str | None
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    soft_bounces: int = 0
    lists: frozenset[str] = field(default_factory=frozenset)
    """Lists with an active membership."""
    unsubscribed_lists: frozenset[str] = field(default_factory=frozenset)
    topics: frozenset[str] = field(default_factory=frozenset)
    suppressed: str | None = None
    """The suppression reason (unsubscribed, bounced, complained, deleted), if the address is blocked."""

    @property
    def mailable(self) -> bool:
        """Whether any send may reach this subscriber (a list membership is still needed)."""
        return self.status == "subscribed" and self.suppressed is None

    def recipient(self) -> Recipient:
        return Recipient.of(
            self.id,
            self.public_id,
            self.email,
            self.name,
            self.first_name,
            self.last_name,
            self.fields,
        )
