"""The preview's endpoints, at module level: each reads the `Preview` and the templates from
`request.app.state` (see `campaign.web.preview.app`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jinja2 import Environment
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from campaign.audience.addresses import InvalidAddress
from campaign.audience.models import checked_email
from campaign.compiled import Compiled
from campaign.config import Config
from campaign.db import connect
from campaign.errors import CampaignError, UserError
from campaign.links import BadLink
from campaign.preflight import preflight
from campaign.providers import hosted
from campaign.providers.base import Status
from campaign.send import send_test as send_test_messages
from campaign.web.preview.state import Preview, emulate_dark
from campaign.web.public import MAX_FRIENDS, MAX_NOTE, masked
from campaign.web.watch import Event, event_stream
from campaign.web.webcopy import web_copy

log = logging.getLogger("campaign.web.preview")

PUBLIC_PAGES = ("archive", "forward", "preferences", "unsubscribe")
"""The public pages a message links to (see campaign.links); the preview has a stand-in for each."""

_MAIN = re.compile(r"<main\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class _PageSubscriber:
    """What the public pages' templates read of a subscriber."""

    name: str
    lists: frozenset[str]
    topics: frozenset[str] = frozenset()
    mailable: bool = True


def preview_of(request: Request) -> Preview:
    preview: Preview = request.app.state.preview
    return preview


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    """A preview page from templates/preview, with what every page shows."""
    preview = preview_of(request)
    preview.start_watching()
    templates: Environment = request.app.state.templates
    context.setdefault("slug", None)
    context.update(
        generation=preview.generation,
        config_error=preview.config_error,
        workspace=preview.config.workspace,
    )
    return HTMLResponse(templates.get_template(name).render(context), status_code=code)


def open_links_outside(html: str) -> str:
    """Links clicked inside the preview iframe open in a new tab, not inside the small frame."""
    base = '<base target="_blank">'
    html, count = re.subn(
        r"<head(\s[^>]*)?>", lambda m: m.group(0) + base, html, count=1, flags=re.IGNORECASE
    )
    return html if count else base + html


async def index(request: Request) -> Response:
    preview = preview_of(request)
    slugs = list(preview.folders())
    records = await preview.records(slugs)
    rows = []
    for slug in slugs:
        build = await preview.build(slug)
        rows.append((build, preview.status(records[slug], build)))
    sent = {slug for slug, (_, send) in records.items() if send is not None}
    return page(request, "index.html", rows=rows, start=preview.start_slug, sent=sent)


async def campaign_page(request: Request) -> Response:
    preview = preview_of(request)
    slug = request.path_params["slug"]
    build = await preview.build(slug)
    shown = preview.shown(slug)
    rendered = preview.render(shown) if shown else None
    records = await preview.records([slug])
    return page(
        request,
        "campaign.html",
        slug=slug,
        build=build,
        shown=shown,
        rendered=rendered,
        text=preview.for_browser(shown, rendered.message.text, _base(request))
        if shown and rendered
        else "",
        sample=preview.sample,
        scheme="dark" if request.cookies.get("preview_scheme") == "dark" else "light",
        status=preview.status(records[slug], build),
    )


async def email(request: Request) -> Response:
    preview = preview_of(request)
    slug = request.path_params["slug"]
    await preview.build(slug)
    shown = preview.shown(slug)
    if shown is None:
        raise HTTPException(404, f"{slug} has not built yet")
    html = open_links_outside(
        preview.for_browser(shown, preview.render(shown).message.html, _base(request))
    )
    if request.query_params.get("scheme") == "dark":
        html = emulate_dark(html)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def asset(request: Request) -> Response:
    preview = preview_of(request)
    slug, name = request.path_params["slug"], request.path_params["name"]
    await preview.build(slug)
    shown = preview.shown(slug)
    compiled = shown.compiled if shown else None
    if compiled is None:
        raise HTTPException(404, f"{slug} has not built yet")
    for item in compiled.assets:
        source = Path(item.path)
        if item.name == name and source.is_file():
            # The name holds a hash of the content: the browser may keep it.
            return FileResponse(source, headers={"Cache-Control": "max-age=86400, immutable"})
    raise HTTPException(404, f"No image {name!r} in {slug}")


async def events(request: Request) -> Response:
    preview = preview_of(request)
    preview.start_watching()
    topic = request.query_params.get("campaign") or None
    return event_stream(
        preview.broadcaster, topic, Event("hello", {"generation": preview.generation})
    )


async def public_page(request: Request) -> Response:
    """The public site's page as the sample subscriber sees it; its forms change nothing."""
    preview = preview_of(request)
    kind, rest = request.path_params["page"], request.path_params["rest"]
    if kind == "archive":
        await preview.build(rest)
        shown = preview.shown(rest)
        if shown is None or shown.compiled is None:
            raise HTTPException(404, f"{rest} has not built yet")
        copy = web_copy(shown.compiled, preview.links.view_url(rest))
        return HTMLResponse(preview.for_browser(shown, copy.html, _base(request)))
    if kind not in PUBLIC_PAGES:
        raise HTTPException(404, "No such page")
    try:
        claims = preview.links.verify(kind, rest)
    except BadLink:
        raise HTTPException(404, "This link was not made by this preview") from None
    sample = preview.sample
    assert sample is not None  # a preview link exists only once a page was rendered
    if request.method == "POST":
        return page(request, "page.html", kind=kind, claims=claims, sample=sample)
    await preview.build(claims.campaign)
    shown = preview.shown(claims.campaign)
    if shown is None or shown.compiled is None:
        raise HTTPException(404, f"{claims.campaign} has not built yet")
    config, base = preview.config, _base(request)
    context: dict[str, Any] = {
        "organisation": config.organisation,
        "colour": config.organisation.colour,
        "base_url": base,
        "address": masked(sample.recipient.email),
        "action": request.url.path,
        "csrf": "",
    }
    if kind == "unsubscribe":
        link = preview.links.url("preferences", sample.recipient.public_id, claims.campaign)
        context |= {"state": "subscribed", "this_list": sample.list_name, "done": ""}
        context["preferences_url"] = preview.for_browser(shown, link, base)
    elif kind == "preferences":
        link = preview.links.url("unsubscribe", sample.recipient.public_id, claims.campaign)
        subscriber = _PageSubscriber(sample.recipient.name, frozenset({sample.list_name}))
        fields = sample.recipient.fields
        context |= {
            "subscriber": subscriber,
            "names": (fields.get("first_name", ""), fields.get("last_name", "")),
            "lists": [sample.list_name],
            "topics": list(sample.topics),
        }
        context |= {"saved": False, "unsubscribe_url": preview.for_browser(shown, link, base)}
    else:
        copy = web_copy(shown.compiled, preview.links.view_url(claims.campaign))
        context |= {"copy": copy, "max_friends": MAX_FRIENDS, "max_note": MAX_NOTE}
        context |= {"errors": [], "values": {}}
    public_templates: Environment = request.app.state.public_templates
    templates: Environment = request.app.state.templates
    html = public_templates.get_template(f"{kind}.html").render(context)
    banner = templates.get_template("banner.html").render(kind=kind, claims=claims, sample=sample)
    return HTMLResponse(_MAIN.sub(lambda m: m.group(0) + banner, html, count=1))


async def send_test(request: Request) -> Response:
    preview = preview_of(request)
    slug = request.path_params["slug"]
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != _base(request):
        return JSONResponse(
            {"ok": False, "message": "Refused: the form was not sent from this preview."}, 403
        )
    form = await request.form()
    addresses = [a for a in re.split(r"[\s,;]+", str(form.get("addresses", ""))) if a]
    if not addresses:
        return JSONResponse({"ok": False, "message": "Type at least one address."}, 400)
    build = await preview.build(slug)
    if build.compiled is None:
        return JSONResponse({"ok": False, "message": f"{slug} does not build: fix it first."}, 409)
    try:
        message = await send_test_message(preview.config, build.compiled, addresses)
    except CampaignError as exc:
        return JSONResponse({"ok": False, "message": str(exc)}, 400)
    except Exception as exc:  # the form answers in JSON whatever happens
        log.exception("preview: sending a test failed")
        return JSONResponse(
            {"ok": False, "message": f"Internal error: {type(exc).__name__}: {exc}"}, 500
        )
    return JSONResponse({"ok": True, "message": message})


async def send_test_message(config: Config, compiled: Compiled, addresses: list[str]) -> str:
    """Send `compiled` to `addresses` by `campaign send --test`'s path; what to tell the user."""
    checked: list[str] = []
    for address in addresses:
        try:
            checked.append(checked_email(address))
        except InvalidAddress as exc:
            raise UserError(f"{address!r} is not an email address: {exc}") from None
    report = await preflight(
        config, compiled, config.campaigns_dir / compiled.slug, engine=connect(config.database_url)
    )
    report.raise_for_errors()
    service = hosted(config)
    if service is not None:
        return await service.send(compiled, test_addresses=checked, at=None)
    results = await send_test_messages(config, compiled, checked)
    refused = [
        f"{result.status}: {result.reason}"
        for result in results
        if result.status != Status.ACCEPTED
    ]
    if refused:
        raise UserError(
            f"{config.provider.name} did not take {len(refused)} of {len(results)}: "
            + "; ".join(refused)
        )
    ids = ", ".join(result.provider_id for result in results if result.provider_id)
    return f"Sent a test to {', '.join(checked)} through {config.provider.name}" + (
        f" ({ids})." if ids else "."
    )


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return page(request, "error.html", code=exc.status_code, detail=exc.detail)


async def crashed(request: Request, exc: Exception) -> Response:
    log.error("preview: %s failed", request.url.path, exc_info=exc)
    detail = escape(f"{type(exc).__name__}: {exc}")  # no template: it may be what failed
    return HTMLResponse(
        f"<!doctype html><title>Internal error</title><h1>Internal error</h1><pre>{detail}</pre>",
        500,
    )
