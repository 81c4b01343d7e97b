"""One pass over the bounce mailbox: read each message, record its events once, move it.

A message is taken out of the mailbox only after its events are recorded; a crash in
between leaves it, and the next pass finds its events already recorded (the exactly-once
table), so nothing counts twice. A message that cannot be read or trusted stays where
it is and is reported, never deleted.
"""

from __future__ import annotations

import email
import email.errors
from collections.abc import Callable
from dataclasses import dataclass, field

from campaign.config import Config
from campaign.db import connect
from campaign.errors import ConfigError
from campaign.links import Links
from campaign.mailbox.access import Mailbox, open_mailbox
from campaign.mailbox.reports import Reader, Unreadable
from campaign.mailbox.settings import PASSWORD_ENV, USERNAME_ENV
from campaign.web.webhooks.recording import record


@dataclass
class MailboxReport:
    read: int = 0
    recorded: int = 0
    """Events applied in this pass (bounces, complaints, unsubscribes)."""
    replayed: int = 0
    """Events already recorded earlier (a pass interrupted after recording, before moving)."""
    left: list[str] = field(default_factory=list)
    """One line per message left in the mailbox: which, and why."""


def read_mailbox(
    config: Config,
    *,
    mailbox: Mailbox | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> MailboxReport:
    """Read `[mailbox]` (or `mailbox`, already open) once."""
    if mailbox is not None:
        return _pass(config, mailbox, log)
    settings = config.mailbox
    if settings is None:
        raise ConfigError(
            "campaign.toml has no [mailbox] section (see the README: campaign mailbox)"
        )
    username = config.secret(USERNAME_ENV, "campaign mailbox")
    password = config.secret(PASSWORD_ENV, "campaign mailbox")
    with open_mailbox(settings, username, password, config.workspace) as opened:
        return _pass(config, opened, log)


def _pass(config: Config, mailbox: Mailbox, log: Callable[[str], None]) -> MailboxReport:
    engine = connect(config.database_url)
    links = Links(
        config.secret_key, config.public_base_url, max_age_days=config.web.token_max_age_days
    )
    reader = Reader(engine, links, config.secret_key)
    report = MailboxReport()
    for key, raw in mailbox.messages():
        report.read += 1
        try:
            events = reader.events(raw)
        except (Unreadable, ValueError, LookupError, email.errors.MessageError) as exc:
            line = f"left {_describe(raw)}: {exc}"
            report.left.append(line)
            log(line)
            continue
        outcome = record(engine, events)
        mailbox.processed(key)
        report.recorded += outcome.recorded
        report.replayed += outcome.replayed
        for event in events:
            log(f"{event.kind}{' (hard)' if event.hard else ''}: {event.email} ({event.detail})")
    return report


def _describe(raw: bytes) -> str:
    """A message as the report names it: its subject and sender, short."""
    message = email.message_from_bytes(raw)
    subject = str(message.get("Subject", "(no subject)"))[:80]
    return f'"{subject}" from {str(message.get("From", "?"))[:80]}'
