"""The Reports tab: every send with its headline counts, and one send's report with its
timeline and clicks per link, drawn as SVG (see `charts`). Read-only, from the workspace's
database; a workspace with no database yet has nothing to report and creates none."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from campaign.config import Config
from campaign.db import connect
from campaign.errors import CampaignError
from campaign.reports import OPENS_CAVEAT, Report, all_reports, report
from campaign.web.preview import charts
from campaign.web.preview.pages import page, preview_of
from campaign.web.preview.state import has_database

log = logging.getLogger("campaign.web.preview")

COUNTS = (
    "recipients",
    "sent",
    "delivered",
    "bounced",
    "complained",
    "unsubscribed",
    "forwarded",
    "failed",
    "unknown",
    "skipped",
)
"""The counts every report shows, in the order `campaign report --json` names them."""


def _read_all(config: Config) -> list[Report]:
    if not has_database(config):
        return []
    try:
        return all_reports(connect(config.database_url))
    except (SQLAlchemyError, CampaignError):
        log.warning("preview: could not read the reports", exc_info=True)
        return []


def _read_one(config: Config, slug: str) -> Report | None:
    if not has_database(config):
        return None
    return report(connect(config.database_url), slug)


async def reports_index(request: Request) -> Response:
    config = preview_of(request).config
    found = await asyncio.to_thread(_read_all, config)
    return page(request, "reports.html", tab="reports", reports=found, tz=config.tz)


async def report_page(request: Request) -> Response:
    config = preview_of(request).config
    slug = request.path_params["slug"]
    found = await asyncio.to_thread(_read_one, config, slug)
    if found is None:
        raise HTTPException(404, f"{slug} has not been sent, so there is no report yet")
    return page(
        request,
        "report.html",
        tab="reports",
        report=found,
        counts=COUNTS,
        tz=config.tz,
        timeline=charts.timeline(found.timeline),
        clicks=charts.clicks(found.links) if found.links else "",
        opens_caveat=OPENS_CAVEAT,
    )
