"""The hosted signup form and its confirmation link.

- GET /subscribe/<list>: the form (email, name, the list's topics and fields), in the
  organisation's look and campaign.toml's language. Only lists under [lists.<name>].
- POST /subscribe/<list> (form or JSON): the same answer whatever the address, so it
  tells no one who is subscribed. Posted cross-site by the pasted snippet too: the
  honeypot, the fill time and the rate limits stand in for a CSRF token.
- GET /confirm/<token>: a button, nothing changed (link scanners open every link);
  POST confirms.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from campaign.errors import CampaignError
from campaign.message import CAMPAIGN_HEADER, Message
from campaign.signup import flow
from campaign.signup.guard import (
    CAPTCHA_FIELDS,
    HONEYPOT,
    STARTED,
    FormTokens,
    captcha_parts,
    captcha_passed,
)
from campaign.signup.settings import CAPTCHA_SECRET_ENV, ListSettings
from campaign.signup.texts import texts
from campaign.signup.welcome import welcome_message
from campaign.web.public import site_of
from campaign.web.site import Site

log = logging.getLogger("campaign.web")

OUTBOX_CAMPAIGN = "signup"
"""The X-Campaign of confirmation emails (the outbox's folder for them)."""
MAX_EMAIL, MAX_NAME, MAX_FIELD = 320, 100, 200
"""The maxlength of the form's email, name and other fields (_signup_fields.html): a longer
value comes only from a hand-made request or the JSON API, and is refused, never cut."""


def consent_text(site: Site, list_name: str, settings: ListSettings) -> str:
    return settings.consent_text(site.config.language, site.config.organisation.name, list_name)


def confirm_serializer(site: Site) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(site.config.secret_key, salt="campaign.link.confirm")


def _page(
    request: Request, list_name: str, settings: ListSettings, status: int = 200, **extra: Any
) -> Response:
    site = site_of(request)
    words = texts(site.config.language)
    signup = site.config.signup
    context: dict[str, Any] = {
        "language": site.config.language,
        "t": words,
        "settings": settings,
        "heading": settings.title or words["title"].format(list=list_name),
        "consent": consent_text(site, list_name, settings),
        "action": f"/subscribe/{list_name}",
        "started": FormTokens(site.config.secret_key).hosted(list_name),
        "values": {},
        "errors": [],
    }
    csp = None
    if signup.captcha != "none":
        context["captcha_script"], context["captcha_widget"], csp = captcha_parts(signup)
    response = site.page(request, "subscribe.html", status, **(context | extra))
    response.headers["Cache-Control"] = "no-store"
    if csp:
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; img-src https: data:; style-src 'unsafe-inline' https:; {csp}; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    return response


def _answer(request: Request, json: bool, status: int, title: str, text: str) -> Response:
    site = site_of(request)
    if json:
        return JSONResponse({"ok": status < 400, "message": text}, status_code=status)
    response = site.page(
        request,
        "confirm.html",
        status,
        language=site.config.language,
        title=title,
        text=text,
        action=None,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _read(request: Request) -> tuple[dict[str, Any], bool]:
    """The submission as a dict (topics a list), and whether it came as JSON."""
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = None
        data = body if isinstance(body, dict) else {}
        topics = data.get("topics")
        data["topics"] = (
            [t for t in topics if isinstance(t, str)] if isinstance(topics, list) else []
        )
        return data, True
    form = await request.form()
    data = {key: value for key, value in form.items() if isinstance(value, str)}
    data["topics"] = [t for t in form.getlist("topic") if isinstance(t, str)]
    return data, False


def _text(data: dict[str, Any], key: str) -> str:
    """A submitted value on one line; whole: a CAPTCHA's answer runs past 1,000 characters."""
    value = data.get(key)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _too_long(words: dict[str, str], settings: ListSettings, values: dict[str, Any]) -> str | None:
    """The form error for the first value longer than its field allows, named by its label."""
    fields = [("email", words["email"], MAX_EMAIL), ("name", words["name"], MAX_NAME)]
    fields += [(key, label, MAX_FIELD) for key, label in settings.fields.items()]
    for key, label, limit in fields:
        if len(values[key]) > limit:
            return words["too_long"].format(field=label, length=len(values[key]), limit=limit)
    return None


async def subscribe(request: Request) -> Response:
    site = site_of(request)
    list_name = request.path_params["list"]
    settings = site.config.lists.get(list_name)
    if settings is None:
        return site.message(request, 404, "Not found", "There is nothing at this address.")
    if request.method == "GET":
        return _page(request, list_name, settings)
    words = texts(site.config.language)
    data, json = await _read(request)
    values: dict[str, Any] = {key: _text(data, key) for key in ("email", "name", *settings.fields)}
    values["topics"] = [t for t in data["topics"] if t in settings.topics]
    if error := _too_long(words, settings, values):
        return _form_error(request, json, list_name, settings, values, error)
    try:
        email = validate_email(values["email"], check_deliverability=False).normalized
    except EmailNotValidError:
        return _form_error(request, json, list_name, settings, values, words["invalid_email"])
    # One answer for every address (and for bots), so the form tells no one who is subscribed.
    done = (
        (words["check_title"], words["check_text"])
        if settings.double_opt_in
        else (words["thanks_title"], words["thanks_text"])
    )
    signup = site.config.signup
    if _text(data, HONEYPOT) or not FormTokens(site.config.secret_key).plausible(
        list_name, _text(data, STARTED), signup.min_fill_seconds
    ):
        log.info("signup to %s taken for a bot: nothing sent", list_name)
        return _answer(request, json, 200, *done)
    if signup.captcha != "none":
        secret = site.config.secret(CAPTCHA_SECRET_ENV, "verifying the signup CAPTCHA")
        answer = _text(data, CAPTCHA_FIELDS[signup.captcha])
        if not await captcha_passed(signup, secret, answer, site.webhooks.http):
            return _form_error(request, json, list_name, settings, values, words["captcha"])
    ip_hash = site.keyed_hash("ip", request.client.host if request.client else "unknown")
    if not await site.db(flow.within_limit, site.engine, f"ip:{ip_hash}", signup.per_ip_per_hour):
        return _answer(request, json, 429, words["slow_title"], words["slow_text"])
    address_key = f"address:{site.keyed_hash('address', email.lower())}"
    if not await site.db(flow.within_limit, site.engine, address_key, signup.per_address_per_hour):
        return _answer(request, json, 200, *done)
    await site.db(flow.purge, site.engine, timedelta(days=signup.purge_unconfirmed_days))
    given = flow.Signup(
        list_name=list_name,
        email=email,
        consent_text=consent_text(site, list_name, settings),
        ip_hash=ip_hash,
        name=values["name"],
        topics=values["topics"],
        fields={name: values[name] for name in settings.fields if values[name]},
    )
    if not settings.double_opt_in and await site.db(flow.subscribe_now, site.engine, given):
        await _welcome(site, list_name, email)
        return _answer(request, json, 200, *done)
    token = await site.db(flow.pending, site.engine, given)
    if token is not None and await site.send([confirmation_message(site, given, token)]):
        await site.db(flow.not_mailed, site.engine, token)
        return _answer(request, json, 502, words["unsent_title"], words["unsent_text"])
    return _answer(request, json, 200, *done)


def _form_error(
    request: Request,
    json: bool,
    list_name: str,
    settings: ListSettings,
    values: dict[str, Any],
    error: str,
) -> Response:
    """The form again with what was typed and what is wrong (JSON: the error)."""
    if json:
        return JSONResponse({"ok": False, "error": error}, status_code=400)
    return _page(request, list_name, settings, 400, values=values, errors=[error])


async def _welcome(site: Site, list_name: str, email: str) -> None:
    """Send the list's welcome campaign, if it has one; a failure is logged, the signup stands."""
    slug = site.config.lists[list_name].welcome if list_name in site.config.lists else None
    subscriber = await site.db(site.store.find, email) if slug else None
    if slug is None or subscriber is None:
        return
    try:
        message = await site.db(welcome_message, site.config, slug, list_name, subscriber)
    except CampaignError as exc:
        log.warning("welcome email %s not sent: %s", slug, exc)
        return
    if await site.send([message]):
        log.warning("welcome email %s not accepted by the mail service", slug)


def confirmation_message(site: Site, signup: flow.Signup, token: str) -> Message:
    """The email with the signed confirmation link, sent through the configured service."""
    config = site.config
    words = texts(config.language)
    org = config.organisation.name
    url = f"{config.public_base_url}/confirm/{confirm_serializer(site).dumps(token)}"
    text = words["mail_text"].format(org=org, url=url, days=config.signup.confirm_days)
    paragraphs = "".join(
        f'<p style="margin:0 0 12px">{escape(part)}</p>'
        if part != url
        else f'<p style="margin:0 0 12px"><a href="{escape(url)}" style="color:{escape(config.organisation.colour)}">{escape(words["confirm_button"])}</a></p>'
        for part in text.split("\n\n")
    )
    html = (
        '<!doctype html><html><body style="font-family:Arial,sans-serif;font-size:16px;'
        f'line-height:1.5;max-width:600px;margin:0 auto;padding:16px">{paragraphs}'
        f'<p style="color:#555;font-size:13px">{escape(org)} · {escape(config.organisation.address)}</p>'
        "</body></html>"
    )
    domain = parseaddr(config.defaults.from_)[1].rpartition("@")[2] or "localhost"
    return Message(
        send_id=f"confirm-{uuid.uuid4().hex}",
        campaign=OUTBOX_CAMPAIGN,
        from_=config.defaults.from_,
        to_email=signup.email,
        to_name=signup.name,
        subject=words["mail_subject"].format(org=org),
        html=html,
        text=text,
        reply_to=config.defaults.reply_to,
        headers={
            "Message-ID": make_msgid(domain=domain),
            "Date": formatdate(localtime=False),
            CAMPAIGN_HEADER: OUTBOX_CAMPAIGN,
        },
    )


async def confirm(request: Request) -> Response:
    site = site_of(request)
    words = texts(site.config.language)
    max_age = timedelta(days=site.config.signup.confirm_days)
    try:
        token = confirm_serializer(site).loads(
            request.path_params["token"], max_age=int(max_age.total_seconds())
        )
    except BadSignature:
        token = None
    bad = (words["bad_link_title"], words["bad_link_text"])
    if not isinstance(token, str):
        return _answer(request, False, 400, *bad)
    org = site.config.organisation.name
    if request.method == "GET":
        found = await site.db(flow.find_pending, site.engine, token)
        if found is None:
            return _answer(request, False, 400, *bad)
        response = site.page(
            request,
            "confirm.html",
            language=site.config.language,
            title=words["confirm_title"],
            text=words["confirm_text"].format(email=found.email, org=org),
            button=words["confirm_button"],
            action=request.url.path,
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    ip = request.client.host if request.client else "unknown"
    done = await site.db(
        flow.confirm, site.engine, token, site.keyed_hash("ip", ip), max_age=max_age
    )
    if done is None:
        return _answer(request, False, 400, *bad)
    await _welcome(site, done.list_name, done.email)
    return _answer(
        request,
        False,
        200,
        words["confirmed_title"],
        words["confirmed_text"].format(email=done.email, org=org),
    )
