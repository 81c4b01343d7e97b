"""The public pages behind the links every message carries.

- /archive, /archive/<slug>, /archive/feed.atom: past campaigns, impersonal copies.
- /unsubscribe/<token>: GET asks and changes nothing (link scanners open every
  link); the page's POST unsubscribes from this list or from everything, or
  resubscribes; the RFC 8058 one-click POST (`List-Unsubscribe=One-Click`)
  unsubscribes from everything and answers 200, no redirect, no cookie.
- /preferences/<token>: lists, topics and name.
- /forward/<token>: the web copy to up to five friends, rate-limited.

A token that is forged, altered, of another purpose, expired, or whose subscriber
no longer exists gets the same 400 page, so no answer tells whether an address
is known. Forms carry a CSRF token bound to the link (see `csrf`). Nothing here
redirects.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from campaign.activity import note_by_campaign
from campaign.audience import addresses
from campaign.audience.models import Subscriber
from campaign.links import BadLink, Claims, Purpose
from campaign.message import CAMPAIGN_HEADER, Message
from campaign.web import durable
from campaign.web.csrf import FIELD as CSRF_FIELD
from campaign.web.forwards import claim_forward, strip_links
from campaign.web.site import Site
from campaign.web.webcopy import WebCopy

MAX_FRIENDS = 5
MAX_NOTE = 500
MAX_NAME = 100
ONE_CLICK = ("List-Unsubscribe", "One-Click")
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
"""Also recognised without a form content type: some senders of the POST omit it."""


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def masked(email: str) -> str:
    """j•••@example.org: enough for a person to recognise their address on a shared link."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


@dataclass(frozen=True, slots=True)
class LinkVisit:
    """A page opened through a subscriber's signed link, the link already checked."""

    site: Site
    claims: Claims
    subscriber: Subscriber
    token: str

    @property
    def csrf(self) -> str:
        """The CSRF token this link's forms carry."""
        return self.site.csrf.token(self.token)

    def genuine(self, form: FormData) -> bool:
        """The form was sent from this link's page (its CSRF token is bound to the link)."""
        return self.site.csrf.valid(self.token, _str(form.get(CSRF_FIELD)))

    async def reloaded(self) -> Subscriber:
        """The subscriber as stored now, after the page changed something."""
        return await self.site.db(self.site.store.get, self.subscriber.public_id) or self.subscriber

    def page_url(self, purpose: Purpose) -> str:
        """The subscriber's link to another of these pages, for the same campaign."""
        return f"/{purpose}/{self.site.links.token(purpose, self.subscriber.public_id, self.claims.campaign)}"


Endpoint = Callable[[Request], Awaitable[Response]]
LinkPage = Callable[[Request, LinkVisit], Awaitable[Response]]


def signed_link(purpose: Purpose) -> Callable[[LinkPage], Endpoint]:
    """A page behind a `purpose` link: it runs with the checked `LinkVisit`, and every bad
    link (forged, altered, of another purpose, expired, subscriber gone) gets the one 400 page."""

    def decorate(page: LinkPage) -> Endpoint:
        @functools.wraps(page)
        async def endpoint(request: Request) -> Response:
            site = site_of(request)
            token = request.path_params["token"]
            try:
                claims = site.links.verify(purpose, token)
            except BadLink:
                return bad_link(request)
            subscriber = await site.db(site.store.get, claims.subscriber)
            if subscriber is None or subscriber.status == "deleted":
                return bad_link(request)
            return await page(request, LinkVisit(site, claims, subscriber, token))

        return endpoint

    return decorate


def bad_link(request: Request) -> Response:
    return site_of(request).message(
        request,
        400,
        "This link does not work",
        "The link may be incomplete, altered or too old. Use the link in a recent email from us.",
    )


def refused_form(request: Request) -> Response:
    return site_of(request).message(
        request,
        403,
        "Please try again",
        "This form was not sent from its page, or the page was open too long. Open the link from the email again.",
    )


# ---------------------------------------------------------------- archive


async def archive_index(request: Request) -> Response:
    site = site_of(request)
    entries = await site.db(site.archive)
    return site.page(request, "index.html", entries=entries)


async def archive_copy(request: Request) -> Response:
    site = site_of(request)
    copy = await site.db(site.web_copy, request.path_params["slug"])
    if copy is None:
        return site.message(request, 404, "Not found", "There is no campaign at this address.")
    return HTMLResponse(copy.html)


async def archive_feed(request: Request) -> Response:
    site = site_of(request)
    entries = await site.db(site.archive)
    updated = max((e.sent_at for e in entries), default=datetime(2000, 1, 1, tzinfo=UTC))
    response = site.templates.TemplateResponse(
        request,
        "feed.xml",
        {"entries": entries, "updated": updated, "view_url": site.links.view_url},
        media_type="application/atom+xml",
    )
    return response


# ---------------------------------------------------------------- unsubscribe


def _this_list(site: Site, claims: Claims, subscriber: Subscriber) -> str | None:
    """The list the message came from: as the ledger recorded it, else the one list the
    subscriber is on, else unknown (then the page offers only everything)."""
    recorded = site.campaign_list(claims.campaign) if claims.campaign else None
    if recorded:
        return recorded
    known = subscriber.lists | subscriber.unsubscribed_lists
    return next(iter(known)) if len(known) == 1 else None


async def _unsubscribe(visit: LinkVisit, source: str, list_name: str | None) -> None:
    """Unsubscribe the visitor (from `list_name`, or everything), durably even when the
    database is busy, and count it against the campaign whose link they followed."""
    site, claims, subscriber = visit.site, visit.claims, visit.subscriber
    await durable.write(
        site,
        "unsubscribe",
        public_id_or_email=subscriber.public_id,
        source=source,
        list_name=list_name,
        detail=f"campaign {claims.campaign}",
    )
    await site.db(note_by_campaign, site.engine, claims.campaign, "unsubscribed", subscriber.id)


@signed_link("unsubscribe")
async def unsubscribe(request: Request, visit: LinkVisit) -> Response:
    site, claims, subscriber = visit.site, visit.claims, visit.subscriber
    this_list = await site.db(_this_list, site, claims, subscriber)
    done = ""
    if request.method == "POST":
        body = await request.body()
        form = await request.form()  # an unreadable body is answered 400 by Starlette
        if form.get(ONE_CLICK[0]) == ONE_CLICK[1] or body.strip() == ONE_CLICK_BODY:
            # RFC 8058: the mail client posts this without the page; answer 200, plainly.
            await _unsubscribe(visit, "one-click", None)
            return PlainTextResponse("You are unsubscribed.\n")
        if not visit.genuine(form):
            return refused_form(request)
        action, scope = form.get("action"), form.get("scope")
        if action == "unsubscribe" and scope in ("list", "all"):
            list_name = this_list if scope == "list" else None
            await _unsubscribe(visit, "unsubscribe page", list_name)
            done = "unsubscribed"
        elif action == "resubscribe" and subscriber.status in ("subscribed", "unsubscribed"):
            # Back on this list too, if they had left it.
            list_name = this_list if this_list and this_list not in subscriber.lists else None
            await durable.write(
                site,
                "resubscribe",
                public_id=subscriber.public_id,
                source="unsubscribe page",
                list_name=list_name,
            )
            done = "resubscribed"
        else:
            return site.message(
                request, 400, "Bad request", "The form asked for something this page does not do."
            )
        subscriber = await visit.reloaded()
    return site.page(
        request,
        "unsubscribe.html",
        state=_unsubscribe_state(subscriber, this_list),
        address=masked(subscriber.email),
        this_list=this_list,
        done=done,
        csrf=visit.csrf,
        action=request.url.path,
        preferences_url=visit.page_url("preferences"),
    )


def _unsubscribe_state(subscriber: Subscriber, this_list: str | None) -> str:
    """subscribed: may be asked to unsubscribe; left_list: gets other mail, not this list;
    unsubscribed: gets nothing, may resubscribe; blocked: bounced or complained, for good."""
    if not subscriber.mailable:
        return "unsubscribed" if subscriber.status == "unsubscribed" else "blocked"
    if this_list and this_list not in subscriber.lists:
        return "left_list"
    return "subscribed"


# ---------------------------------------------------------------- preferences


@signed_link("preferences")
async def preferences(request: Request, visit: LinkVisit) -> Response:
    site, subscriber = visit.site, visit.subscriber
    lists = sorted(subscriber.lists | subscriber.unsubscribed_lists)
    topics = sorted(await site.db(_topic_names, site))
    saved = False
    page: dict[str, Any] = {
        "subscriber": subscriber,
        "address": masked(subscriber.email),
        "lists": lists,
        "topics": topics,
        "csrf": visit.csrf,
        "action": request.url.path,
        "unsubscribe_url": visit.page_url("unsubscribe"),
        "errors": [],
    }
    if request.method == "POST":
        form = await request.form()
        if not visit.genuine(form):
            return refused_form(request)
        chosen_lists = {str(v) for v in form.getlist("list")} & set(lists)
        chosen_topics = {str(v) for v in form.getlist("topic")} & set(topics)
        first, last = (" ".join(_str(form.get(key)).split()) for key in ("first_name", "last_name"))
        errors = [
            error
            for label, value in (("First name", first), ("Last name", last))
            if (error := too_long(label, value, MAX_NAME))
        ]
        if errors:  # past the fields' maxlength: a hand-made request, refused rather than cut
            page["errors"] = errors
            return site.page(
                request, "preferences.html", 400, **page, names=(first, last), saved=False
            )
        # A new first or last name replaces the whole name, so the To header and the
        # greeting ({{ first_name }}) both follow it.
        changed = (first, last) != _names(subscriber)
        await durable.write(
            site,
            "preferences",
            public_id=subscriber.public_id,
            lists=sorted(chosen_lists),
            topics=sorted(chosen_topics),
            name="" if changed else None,
            first_name=first if changed else None,
            last_name=last if changed else None,
        )
        subscriber = await visit.reloaded()
        saved = True
    page["subscriber"] = subscriber
    return site.page(request, "preferences.html", **page, names=_names(subscriber), saved=saved)


def _names(subscriber: Subscriber) -> tuple[str, str]:
    """First and last name as the page shows them; from the name alone (first word, the rest)
    when the subscriber was imported with a name and nothing else."""
    if subscriber.first_name or subscriber.last_name:
        return subscriber.first_name, subscriber.last_name
    first, _, last = subscriber.name.partition(" ")
    return first, last


def _topic_names(site: Site) -> list[str]:
    return [name for name, _count in site.store.topics()]


# ---------------------------------------------------------------- forward to a friend


@dataclass
class ForwardForm:
    friends: list[str]
    name: str
    note: str
    errors: list[str]


def read_forward_form(form: FormData) -> ForwardForm:
    """The friends' addresses (validated, deduplicated), the sender's name and the note, or errors."""
    errors: list[str] = []
    friends: list[str] = []
    raw = [_str(v).strip() for v in form.getlist("friend")]
    for value in (v for v in raw if v):
        try:
            address = addresses.checked(value)
        except addresses.InvalidAddress:
            errors.append(f"“{value[:80]}” is not an email address.")
            continue
        if address not in friends:
            friends.append(address)
    if not friends and not errors:
        errors.append("Enter at least one address.")
    if len(friends) > MAX_FRIENDS:
        errors.append(f"Enter at most {MAX_FRIENDS} addresses.")
    note = _str(form.get("note")).replace("\r\n", "\n")  # a browser counts a line break as one
    name = " ".join(_str(form.get("name")).split())
    for label, value, limit in (("Your name", name, MAX_NAME), ("The note", note, MAX_NOTE)):
        if error := too_long(label, value, limit):
            errors.append(error)
    return ForwardForm(friends, " ".join(strip_links(name).split()), strip_links(note), errors)


def too_long(label: str, value: str, limit: int) -> str | None:
    """The form error for a field longer than its `maxlength` (only a hand-made request
    sends one): named by its label, never cut short without a word."""
    if len(value) <= limit:
        return None
    return f"{label} is {len(value)} characters long; at most {limit} fit."


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def forward_message(site: Site, copy: WebCopy, friend: str, name: str, note: str) -> Message:
    """The web copy for one friend: no personal link of the forwarder's, the note as plain text."""
    organisation = site.config.organisation.name
    intro = f"{name or 'Someone'} thought you would like this email from {organisation}."
    outro = "You got this because someone forwarded it to you; you have not been added to any list."
    note_html = "".join(
        f'<p style="margin:0 0 8px">{_escape(line)}</p>'
        for line in note.split("\n")
        if line.strip()
    )
    banner = (
        '<div style="font-family:Arial,sans-serif;font-size:15px;line-height:1.5;max-width:600px;'
        'margin:0 auto;padding:16px;border-bottom:1px solid #ccc">'
        f'<p style="margin:0 0 8px">{_escape(intro)}</p>{note_html}'
        f'<p style="margin:0;color:#555;font-size:13px">{_escape(outro)}</p></div>'
    )
    body = re.search(r"<body\b[^>]*>", copy.html, re.IGNORECASE)
    html = (
        copy.html[: body.end()] + banner + copy.html[body.end() :] if body else banner + copy.html
    )
    text = "\n\n".join(part for part in (intro, note, outro, "-" * 40, copy.text) if part)
    domain = parseaddr(copy.from_)[1].rpartition("@")[2] or "localhost"
    send_id = f"fwd-{uuid.uuid4().hex}"
    return Message(
        send_id=send_id,
        campaign=copy.slug,
        from_=copy.from_,
        to_email=addresses.transport(friend, smtputf8=True),
        to_name="",
        subject=f"Fwd: {copy.subject}",
        html=html,
        text=text,
        reply_to=copy.reply_to,
        headers={
            "Message-ID": make_msgid(domain=domain),
            "Date": formatdate(localtime=False),
            CAMPAIGN_HEADER: copy.slug,
        },
    )


@signed_link("forward")
async def forward(request: Request, visit: LinkVisit) -> Response:
    site, subscriber = visit.site, visit.subscriber
    copy = await site.db(site.web_copy, visit.claims.campaign)
    if copy is None:
        return site.message(request, 404, "Not found", "This campaign is not in the archive.")
    context: dict[str, Any] = {
        "copy": copy,
        "csrf": visit.csrf,
        "action": request.url.path,
        "max_friends": MAX_FRIENDS,
        "max_note": MAX_NOTE,
        "errors": [],
        "values": {},
    }
    if request.method == "GET":
        return site.page(request, "forward.html", **context)
    form = await request.form()
    if not visit.genuine(form):
        return refused_form(request)
    parsed = read_forward_form(form)
    values = {
        "friends": [_str(v) for v in form.getlist("friend")],
        "name": _str(form.get("name")),
        "note": _str(form.get("note")),
    }
    if parsed.errors:
        return site.page(
            request, "forward.html", 400, **{**context, "errors": parsed.errors, "values": values}
        )
    recipients = [f for f in parsed.friends if not await site.db(site.suppressed, f)]
    ip = request.client.host if request.client else "unknown"
    allowed = await site.db(
        durable.retrying,
        claim_forward,
        site.engine,
        site.keyed_hash("subscriber", subscriber.public_id),
        site.keyed_hash("ip", ip),
        len(parsed.friends),
        per_subscriber=site.config.web.forward_per_subscriber_per_hour,
        per_ip=site.config.web.forward_per_ip_per_hour,
    )
    if not allowed:
        return site.message(
            request,
            429,
            "Please wait a while",
            "You have forwarded this as often as we allow in one hour. Please try again later.",
        )
    messages = [
        forward_message(site, copy, friend, parsed.name, parsed.note) for friend in recipients
    ]
    failed = await site.send(messages)
    if failed:
        return site.message(
            request,
            502,
            "Not sent",
            "We could not send your forward just now. Please try again later.",
        )
    await site.db(note_by_campaign, site.engine, visit.claims.campaign, "forwarded", None)
    return site.page(request, "forwarded.html", count=len(parsed.friends), copy=copy)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
