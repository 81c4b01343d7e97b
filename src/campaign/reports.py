"""What happened to each campaign, in numbers: `campaign report`, `campaign reports` and the
preview's Reports tab all read them here.

Counts come from the ledger (recipients, sent, failed by reason, unknown, skipped) and from
`campaign.activity` (delivered, bounced hard and soft, complained, unsubscribed, forwarded,
opened, clicks). Each delivery counts once per kind: a service reporting two deliveries of
one message, or a soft bounce before a hard one, are one delivered and one bounce.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, distinct, func, select

from campaign.activity import campaign_events, link_clickers, link_clicks, send_runs
from campaign.config import CAMPAIGN_FILE
from campaign.errors import UserError
from campaign.send import ledger
from campaign.send.ledger import sends

TIMELINE_DAYS = 7
"""The first days after a send shown day by day."""

OPENS_CAVEAT = (
    "Opens are a lower and an upper bound at once: Apple Mail Privacy Protection loads every "
    "image on delivery (an open for everyone who uses it), and clients that block images never "
    "count one."
)


@dataclass(frozen=True)
class Link:
    url: str
    clicks: int
    clickers: int | None
    """Distinct people; None unless the campaign tracked clicks per subscriber."""


@dataclass(frozen=True)
class Day:
    day: int
    """0 for the day the send began."""
    delivered: int
    bounced: int
    unsubscribed: int


@dataclass(frozen=True)
class Report:
    """One send of one campaign."""

    campaign: str
    status: str
    list_name: str
    topics: list[str]
    providers: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    sent: int
    delivered: int
    bounced: int
    bounced_hard: int
    bounced_soft: int
    complained: int
    unsubscribed: int
    forwarded: int
    failed: int
    failed_reasons: dict[str, int]
    unknown: int
    skipped: int
    pending: int
    track_clicks: str
    track_opens: bool
    opened: int | None
    clicks: int | None
    links: list[Link] = field(default_factory=list)
    timeline: list[Day] = field(default_factory=list)

    @property
    def provider(self) -> str:
        return ", ".join(self.providers)

    def rate(self, count: int) -> float:
        """`count` as a percentage of sent (0 when nothing was sent)."""
        return round(100 * count / self.sent, 1) if self.sent else 0.0

    @property
    def rates(self) -> dict[str, float]:
        names = ("delivered", "bounced", "complained", "unsubscribed", "forwarded")
        rates = {name: self.rate(getattr(self, name)) for name in names}
        if self.opened is not None:
            rates["opened"] = self.rate(self.opened)
        return rates

    def as_json(self) -> dict[str, Any]:
        """The report as `campaign report --json` prints it."""
        data = asdict(self)
        data.pop("timeline")
        for key in ("created_at", "started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["failed_by_reason"] = data.pop("failed_reasons")
        data["list"] = data.pop("list_name")
        data["provider"] = self.provider
        data["rates"] = self.rates
        if self.opened is not None:
            data["opens_caveat"] = OPENS_CAVEAT
        return data


def _event_counts(connection: Connection, send: int) -> dict[str, int]:
    """Distinct deliveries per kind (events with no delivery count one each)."""
    ev = campaign_events.c
    kind = case(
        (
            campaign_events.c.kind == "bounced",
            case((campaign_events.c.hard.is_(True), "bounced_hard"), else_="bounced_soft"),
        ),
        else_=campaign_events.c.kind,
    )
    rows = connection.execute(
        select(
            kind,
            func.count(distinct(ev.send_id)),
            func.sum(case((ev.send_id.is_(None), 1), else_=0)),
        )
        .where(ev.send == send)
        .group_by(kind)
    ).all()
    counts = {str(name): int(count) + int(loose or 0) for name, count, loose in rows}
    # A soft bounce followed by a hard one is one hard bounce.
    both = connection.execute(
        select(func.count(distinct(campaign_events.c.send_id))).where(
            campaign_events.c.send == send,
            campaign_events.c.kind == "bounced",
            campaign_events.c.hard.is_(False),
            campaign_events.c.send_id.in_(
                select(campaign_events.c.send_id).where(
                    campaign_events.c.send == send,
                    campaign_events.c.kind == "bounced",
                    campaign_events.c.hard.is_(True),
                )
            ),
        )
    ).scalar_one()
    counts["bounced_soft"] = counts.get("bounced_soft", 0) - int(both)
    return counts


def _timeline(connection: Connection, send: int, start: datetime | None) -> list[Day]:
    """Events per day since `start`, counted by the database (day boundaries computed here,
    so one query serves SQLite and PostgreSQL alike)."""
    if start is None:
        return []
    ev = campaign_events.c
    ends = [start + timedelta(days=n + 1) for n in range(TIMELINE_DAYS)]
    day = case(*((ev.at < end, n) for n, end in enumerate(ends)))
    rows = connection.execute(
        select(ev.kind, day, func.count())
        .where(
            ev.send == send,
            ev.kind.in_(("delivered", "bounced", "unsubscribed")),
            ev.at < ends[-1],
        )
        .group_by(ev.kind, day)
    ).all()
    days: list[dict[str, int]] = [{} for _ in range(TIMELINE_DAYS)]
    for kind, n, count in rows:
        days[int(n)][str(kind)] = int(count)
    return [
        Day(n, c.get("delivered", 0), c.get("bounced", 0), c.get("unsubscribed", 0))
        for n, c in enumerate(days)
    ]


def _links(connection: Connection, send: int, per_subscriber: bool) -> list[Link]:
    clickers: dict[int, int] = dict(
        connection.execute(
            select(link_clickers.c.link, func.count(distinct(link_clickers.c.subscriber)))
            .where(link_clickers.c.send == send)
            .group_by(link_clickers.c.link)
        ).all()
    )
    rows = connection.execute(
        select(link_clicks.c.link, link_clicks.c.url, link_clicks.c.clicks)
        .where(link_clicks.c.send == send)
        .order_by(link_clicks.c.clicks.desc(), link_clicks.c.link)
    ).all()
    return [
        Link(url, int(clicks), int(clickers.get(link, 0)) if per_subscriber else None)
        for link, url, clicks in rows
    ]


def report(engine: Engine, campaign: str) -> Report | None:
    """The report of `campaign`'s send; None if it was never sent."""
    info = ledger.get_send(engine, campaign)
    summary = ledger.summary(engine, campaign)
    if info is None or summary is None:
        return None
    with engine.connect() as connection:
        events = _event_counts(connection, info.id)
        providers = [
            str(name)
            for (name,) in connection.execute(
                select(send_runs.c.provider)
                .where(send_runs.c.send == info.id)
                .group_by(send_runs.c.provider)
                .order_by(func.min(send_runs.c.started_at))
            ).all()
        ]
        compiled = info.compiled
        links = _links(connection, info.id, compiled.track_clicks == "per-subscriber")
        timeline = _timeline(connection, info.id, info.started_at)
    hard, soft = events.get("bounced_hard", 0), events.get("bounced_soft", 0)
    return Report(
        campaign=campaign,
        status=info.status,
        list_name=info.list_name,
        topics=list(info.topics),
        providers=providers,
        created_at=info.created_at,
        started_at=info.started_at,
        finished_at=info.finished_at,
        recipients=summary.total,
        sent=summary.sent,
        delivered=events.get("delivered", 0),
        bounced=hard + soft,
        bounced_hard=hard,
        bounced_soft=soft,
        complained=events.get("complained", 0),
        unsubscribed=events.get("unsubscribed", 0),
        forwarded=events.get("forwarded", 0),
        failed=summary.failed,
        failed_reasons=dict(summary.failed_reasons),
        unknown=summary.unknown,
        skipped=summary.skipped,
        pending=summary.pending,
        track_clicks=compiled.track_clicks,
        track_opens=compiled.track_opens,
        opened=events.get("opened", 0) if compiled.track_opens else None,
        clicks=sum(link.clicks for link in links) if compiled.track_clicks != "off" else None,
        links=links,
        timeline=timeline,
    )


def all_reports(engine: Engine) -> list[Report]:
    """Every send so far, newest first (a send not yet begun by when it was created)."""
    with engine.connect() as connection:
        slugs = connection.execute(
            select(sends.c.campaign).order_by(
                func.coalesce(sends.c.started_at, sends.c.created_at).desc(), sends.c.id.desc()
            )
        ).scalars()
        names = list(slugs)
    return [found for slug in names if (found := report(engine, slug)) is not None]


def campaign_names(campaigns_dir: Path, engine: Engine | None = None) -> list[str]:
    """Every campaign that exists: a folder under campaigns/, or a send in the ledger."""
    names = set()
    if campaigns_dir.is_dir():
        names = {p.name for p in campaigns_dir.iterdir() if (p / CAMPAIGN_FILE).is_file()}
    if engine is not None:
        with engine.connect() as connection:
            names |= set(connection.execute(select(sends.c.campaign)).scalars())
    return sorted(names)


def unknown_campaign(name: str, known: list[str], *, sent: bool = True) -> UserError:
    """The error for a campaign that does not exist (or, `sent=False`, exists but was never
    sent), naming those that do."""
    if not sent:
        return UserError(f"{name}: not sent yet, so there is nothing to report")
    listed = ", ".join(known) if known else "none yet (campaign new NAME makes one)"
    return UserError(f"no campaign {name!r}; the campaigns are: {listed}")
