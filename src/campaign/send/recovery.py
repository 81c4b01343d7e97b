"""After a send: which deliveries failed and why, sending them again, and settling unknowns.

Failures come in kinds a person can act on:

- `rejected`: the service refused that recipient (or the account; then fix the account),
- `temporary`: the service kept saying "later" until the attempts ran out.

`retry_failed()` puts failed rows of the chosen kinds back to pending in one conditional
UPDATE, so a row is queued once however many runs ask, and a row already sent is never
touched. `resolve_unknown()` asks the mail service (where its API can answer) which of the
unknown deliveries it has, and settles those as sent before anything is resent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, case, func, select, update

from campaign.audience.tables import utcnow
from campaign.config import Config
from campaign.errors import UserError
from campaign.send.lease import send_leases
from campaign.send.ledger import deliveries, get_send, prepare, sends, write

if TYPE_CHECKING:
    from campaign.providers import Provider  # its import loads every service (`status` needs none)

FAILURE_KINDS = ("rejected", "temporary")

_kind = case((deliveries.c.retry_at.is_not(None), "temporary"), else_="rejected")
"""A failed row's kind: a failure still retryable keeps the time it could be retried."""


def parse_kinds(text: str) -> tuple[str, ...]:
    """`rejected,temporary` -> the kinds; `all` or empty: every kind. UserError for others."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    if not wanted or wanted == ["all"]:
        return FAILURE_KINDS
    if unknown := [kind for kind in wanted if kind not in FAILURE_KINDS]:
        raise UserError(
            f"--retry-failed: unknown kind {', '.join(unknown)}; "
            f"use {', '.join(FAILURE_KINDS)} (comma-separated) or all"
        )
    return tuple(dict.fromkeys(wanted))


def _send_id(engine: Engine, campaign: str) -> int | None:
    with engine.connect() as connection:
        found = connection.execute(select(sends.c.id).where(sends.c.campaign == campaign)).scalar()
    return None if found is None else int(found)


def retry_failed(engine: Engine, campaign: str, kinds: Iterable[str] = FAILURE_KINDS) -> int:
    """Queue the failed deliveries of `kinds` again (fresh attempts); returns how many."""
    send = _send_id(engine, campaign)
    if send is None:
        return 0
    with write(engine) as connection:
        return int(
            connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.send == send,
                    deliveries.c.status == "failed",
                    _kind.in_(list(kinds)),
                )
                .values(status="pending", attempts=0, retry_at=None, updated_at=utcnow())
            ).rowcount
        )


@dataclass(frozen=True, slots=True)
class Failure:
    email: str
    kind: str
    reason: str


def failed(engine: Engine, campaign: str) -> list[Failure]:
    """Every failed delivery of `campaign`, by address (`campaign status --failed`)."""
    send = _send_id(engine, campaign)
    if send is None:
        return []
    with engine.connect() as connection:
        rows = connection.execute(
            select(deliveries.c.email, _kind, deliveries.c.reason)
            .where(deliveries.c.send == send, deliveries.c.status == "failed")
            .order_by(deliveries.c.email)
        ).all()
    return [Failure(email, kind, reason) for email, kind, reason in rows]


@dataclass
class Recovery:
    """What `campaign send` and `campaign status` add about failures and unknowns."""

    campaign: str
    list_name: str
    failed: dict[str, int] = field(default_factory=dict)
    """Failed deliveries by kind."""
    resolved: dict[str, int] = field(default_factory=dict)
    """Unknown deliveries settled, by how (a webhook's event, the service's log)."""

    def lines(self) -> list[str]:
        shown = []
        for kind, count in self.failed.items():
            shown.append(
                f"  {count} failed as {kind}: after fixing the cause, "
                f"`campaign send {self.campaign} --list {self.list_name} --retry-failed={kind}`"
            )
        if self.failed:
            shown.append(f"  their addresses: `campaign status {self.campaign} --failed`")
        if self.resolved:
            how = ", ".join(f"{count} by {by}" for by, count in self.resolved.items())
            shown.append(f"  unknown resolved as sent: {how}")
        return shown


def recovery(engine: Engine, campaign: str) -> Recovery | None:
    """Failures by kind and resolved unknowns of `campaign`; None if it was never sent."""
    with engine.connect() as connection:
        row = connection.execute(
            select(sends.c.id, sends.c.list_name).where(sends.c.campaign == campaign)
        ).first()
        if row is None:
            return None
        kinds: dict[str, int] = dict(
            connection.execute(
                select(_kind, func.count())
                .where(deliveries.c.send == row.id, deliveries.c.status == "failed")
                .group_by(_kind)
            ).all()
        )
        resolved: dict[str, int] = dict(
            connection.execute(
                select(deliveries.c.resolved_by, func.count())
                .where(deliveries.c.send == row.id, deliveries.c.resolved_by.is_not(None))
                .group_by(deliveries.c.resolved_by)
                .order_by(deliveries.c.resolved_by)
            ).all()
        )
    return Recovery(
        campaign,
        row.list_name,
        {kind: int(kinds[kind]) for kind in FAILURE_KINDS if kinds.get(kind)},
        {by: int(count) for by, count in resolved.items()},
    )


async def resolve_unknown(engine: Engine, campaign: str, provider: Provider) -> int:
    """Ask the service which unknown deliveries of `campaign` it has; settle those as sent
    (`resolved_by` the service's log). Returns how many. A service whose API cannot tell
    knows none, and nothing changes."""
    from campaign.providers.base import Unknown

    send = _send_id(engine, campaign)
    if send is None:
        return 0
    # A sender that died held its claim no later than its lease ran out, however late the
    # next run called its rows unknown: the window a service's log is searched in stays short.
    until = case(
        (send_leases.c.lease_until < deliveries.c.updated_at, send_leases.c.lease_until),
        else_=deliveries.c.updated_at,
    )
    with engine.connect() as connection:
        unknown = [
            Unknown(*row)
            for row in connection.execute(
                select(deliveries.c.send_id, deliveries.c.claimed_at, until, deliveries.c.email)
                .select_from(
                    deliveries.outerjoin(
                        send_leases, send_leases.c.worker_id == deliveries.c.claimed_by
                    )
                )
                .where(deliveries.c.send == send, deliveries.c.status == "unknown")
                .order_by(deliveries.c.claimed_at)
            )
        ]
    settled = 0
    for start in range(0, len(unknown), provider.known_at_once):
        part = unknown[start : start + provider.known_at_once]
        known = await provider.known(part)
        settled += _settle(engine, [u.send_id for u in part if u.send_id in known], provider)
    return settled


def _settle(engine: Engine, send_ids: list[str], provider: Provider) -> int:
    if not send_ids:
        return 0
    values: dict[str, Any] = {
        "status": "sent",
        "reason": "",
        "resolved_by": f"{provider.name}'s log",
        "updated_at": utcnow(),
    }
    with write(engine) as connection:
        return int(
            connection.execute(
                update(deliveries)
                .where(deliveries.c.send_id.in_(send_ids), deliveries.c.status == "unknown")
                .values(**values)
            ).rowcount
        )


def lines(engine: Engine, campaign: str) -> list[str]:
    """Failures by kind with the command that retries them, and resolved unknowns."""
    found = recovery(engine, campaign)
    return found.lines() if found else []


def before_send(
    config: Config,
    engine: Engine,
    campaign: str,
    retry_kinds: Sequence[str],
    resend_unknown: bool,
) -> list[str]:
    """What `campaign send --retry-failed / --resend-unknown` does before the engine runs:
    queue the chosen failures again; settle the unknowns the service has (claims of dead
    senders first become unknown, so they are asked about too). Returns lines to show."""
    said = []
    if retry_kinds:
        queued = retry_failed(engine, campaign, retry_kinds)
        said.append(f"{queued} failed deliveries ({', '.join(retry_kinds)}) queued again")
    send = get_send(engine, campaign)
    if resend_unknown and send is not None:
        prepare(engine, send.id)

        async def ask() -> tuple[str, int]:
            from campaign.providers import create

            async with create(config) as provider:
                return provider.name, await resolve_unknown(engine, campaign, provider)

        name, settled = asyncio.run(ask())
        if settled:
            said.append(f"{settled} unknown deliveries are in {name}'s log: sent, not resent")
    return said


def stuck(engine: Engine, campaign: str, seconds: float) -> str:
    """Why `campaign`'s send is stuck, or "": deliveries in flight for longer than a lease
    (their sender hangs, or died and nobody has taken the send over)."""
    since = utcnow() - timedelta(seconds=seconds)
    with engine.connect() as connection:
        row = connection.execute(
            select(
                func.count(), func.min(deliveries.c.claimed_at), func.min(deliveries.c.claimed_by)
            )
            .select_from(deliveries.join(sends, sends.c.id == deliveries.c.send))
            .where(
                sends.c.campaign == campaign,
                deliveries.c.status == "sending",
                deliveries.c.claimed_at < since,
            )
        ).one()
    count, oldest, worker = row
    if not count:
        return ""
    return (
        f"{count} deliveries in flight since {oldest:%Y-%m-%d %H:%M:%S} UTC, longer than the "
        f"{seconds:g} s lease (sender {worker}); if it is gone, the next run takes over"
    )
