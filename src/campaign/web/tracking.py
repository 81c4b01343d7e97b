"""`/r/<token>` and `/o/<token>.gif` on `campaign serve`: tracked clicks and opens.

The redirect leads only to a link of the campaign the token names, read from the HTML
frozen with its send: a token naming anything else, or a forged one, gets the same 404
as an unknown address. Nothing about the client (address, agent, referrer) is kept.
"""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.activity import count_click, note_by_campaign
from campaign.clicks import BadClick, Click, Tracker, link_target
from campaign.links import BadLink
from campaign.send.ledger import get_send
from campaign.web.public import site_of
from campaign.web.site import Site

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1x1 GIF."""

NO_STORE = {"Cache-Control": "no-store"}


def _tracker(site: Site) -> Tracker:
    return Tracker.for_config(site.config)


def _follow(site: Site, click: Click, who: str | None) -> str | None:
    """Count the click and return where it leads; None when the campaign has no such link."""
    send = get_send(site.engine, click.campaign)
    if send is None:
        return None
    target = link_target(send.compiled.html, site.config.public_base_url, click.link)
    if target is None:
        return None
    subscriber = None
    if click.per_subscriber and who:
        try:
            subscriber = site.links.verify("unsubscribe", who.rsplit("/", 1)[-1]).subscriber
        except BadLink:
            subscriber = None  # still a click: counted, not attributed
    count_click(site.engine, send.id, click.link, target, subscriber)
    return target


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
