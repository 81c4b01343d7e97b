"""`/r/<token>` and `/o/<token>.gif` on `campaign serve`: tracked clicks and opens.

The redirect leads only to a link of the campaign the token names, read from the HTML
frozen with its send: a token naming anything else, or a forged one, gets the same 404
as an unknown address. Nothing about the client (address, agent, referrer) is kept.
"""

from __future__ import annotations

import base64
import functools
from html import unescape

from sqlalchemy import Engine, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.activity import count_click, note_by_campaign
from campaign.clicks import BadClick, Click, Tracker, tracked_links
from campaign.compiled import Compiled
from campaign.links import BadLink
from campaign.send.ledger import sends
from campaign.web.public import site_of
from campaign.web.site import Site

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1x1 GIF."""

NO_STORE = {"Cache-Control": "no-store"}


def _tracker(site: Site) -> Tracker:
    return Tracker.for_config(site.config)


@functools.lru_cache(maxsize=64)
def _targets(engine: Engine, send: int, public_base_url: str) -> tuple[str, ...]:
    """The tracked links of a send, from the HTML frozen with it (which never changes: read
    once per process, not per click)."""
    with engine.connect() as connection:
        frozen = connection.execute(select(sends.c.compiled).where(sends.c.id == send)).scalar()
    if frozen is None:
        return ()
    html = Compiled.model_validate_json(frozen).html
    return tuple(unescape(url) for url in tracked_links(html, public_base_url))


def _follow(site: Site, click: Click, who: str | None) -> str | None:
    """Count the click and return where it leads; None when the campaign has no such link."""
    with site.engine.connect() as connection:
        send = connection.execute(
            select(sends.c.id).where(sends.c.campaign == click.campaign)
        ).scalar()
    if send is None:
        return None
    targets = _targets(site.engine, send, site.config.public_base_url)
    if not 0 <= click.link < len(targets):
        return None
    subscriber = None
    if click.per_subscriber and who:
        try:
            subscriber = site.links.verify("unsubscribe", who.rsplit("/", 1)[-1]).subscriber
        except BadLink:
            subscriber = None  # still a click: counted, not attributed
    count_click(site.engine, send, click.link, targets[click.link], subscriber)
    return targets[click.link]


async def click(request: Request) -> Response:
    site = site_of(request)
    try:
        parsed = _tracker(site).click(request.path_params["token"])
    except BadClick:
        return await _not_found(request)
    target = await site.db(_follow, site, parsed, request.query_params.get("s"))
    if target is None:
        return await _not_found(request)
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


async def opened(request: Request) -> Response:
    site = site_of(request)
    try:
        campaign = _tracker(site).opened(request.path_params["token"])
    except BadClick:
        return await _not_found(request)
    await site.db(note_by_campaign, site.engine, campaign, "opened", None)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


async def _not_found(request: Request) -> Response:
    return site_of(request).message(request, 404, "Not found", "There is nothing at this address.")
