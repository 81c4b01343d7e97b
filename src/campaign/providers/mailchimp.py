"""Mailchimp Marketing: the seed newsletter's own system, where Mailchimp holds the audience.

Not a batch provider: `campaign send` with `[provider] name = "mailchimp"`, after its
preflight and confirmation, calls `Mailchimp.send` (that is, `run`),
which creates a regular campaign for the configured audience (or, on a re-run,
updates the same one: its id is kept in .campaign/mailchimp.json), PUTs our compiled
HTML and text with Mailchimp's merge tags in place of our placeholders (after
inlining, so premailer never sees them), asks Mailchimp's send checklist, and then
sends a test, sends, or schedules on Mailchimp's quarter hour. Mailchimp's problem
details are shown in full.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from campaign.compiled import Compiled
from campaign.config import Config
from campaign.errors import ConfigError, Location, ProviderError, UserError
from campaign.placeholders import PATTERN, fallback
from campaign.providers.batching import sender

KEY_ENV = "MAILCHIMP_API_KEY"
STORE = Path(".campaign") / "mailchimp.json"
"""Mailchimp campaign id per campaign slug, under the workspace."""
QUARTER_HOUR = 15 * 60

LINK_TAGS = {
    "view": "*|ARCHIVE|*",
    "forward": "*|FORWARD|*",
    "preferences": "*|UPDATE_PROFILE|*",
    "unsubscribe": "*|UNSUB|*",
}
FIELD_TAGS = {
    "first_name": "*|FNAME|*",
    "last_name": "*|LNAME|*",
    "name": "*|FNAME|* *|LNAME|*",
    "email": "*|EMAIL|*",
}
"""Our merge fields as the audience fields every Mailchimp audience has (FNAME, LNAME)."""
PREVIEW_TAG = "*|MC_PREVIEW_TEXT|*"


class Options(BaseModel):
    """`[provider]` for Mailchimp (besides `name`)."""

    model_config = ConfigDict(extra="forbid")

    audience_id: str
    """The Mailchimp audience (list) id: Audience > Settings > Audience name and defaults."""
    base_url: str | None = None
    """Default https://{dc}.api.mailchimp.com/3.0, the data centre taken from the key's suffix."""


class MailchimpError(ProviderError):
    """Mailchimp refused a request; the message holds its problem details in full."""


def merge_tag(kind: str, name: str, default: str = "") -> str:
    """Mailchimp's merge tag for one of our placeholders; a fallback as a conditional block."""
    if kind == "link":
        return LINK_TAGS[name]
    tag = FIELD_TAGS.get(name) or f"*|{name.upper()}|*"
    if default:
        condition = tag[2 : tag.index("|*")]  # the first tag's name: FNAME
        return f"*|IF:{condition}|*{tag}*|ELSE:|*{default}*|END:IF|*"
    return tag


def with_merge_tags(text: str, preheader: str = "", *, is_html: bool = False) -> str:
    """Our placeholders replaced by Mailchimp's merge tags (and the preheader by its tag)."""
    if preheader:
        text = text.replace(html.escape(preheader, quote=False), PREVIEW_TAG, 1)
    escape = html.escape if is_html else str
    return PATTERN.sub(lambda m: merge_tag(m.group(1), m.group(2), escape(fallback(m))), text)


def quarter_hour(at: datetime) -> datetime:
    """`at` in UTC, moved forward to Mailchimp's next quarter hour (:00, :15, :30, :45)."""
    if at.tzinfo is None:
        raise ValueError("a schedule time needs a time zone")
    return datetime.fromtimestamp(math.ceil(at.timestamp() / QUARTER_HOUR) * QUARTER_HOUR, UTC)


def base_url_for(key: str) -> str:
    """https://us6.api.mailchimp.com/3.0 for a key ending in -us6."""
    dc = key.rsplit("-", 1)[-1] if "-" in key else ""
    if not re.fullmatch(r"[a-z]+[0-9]+", dc):
        raise ConfigError(
            f"{KEY_ENV} does not end in a data centre such as -us6 (set [provider] base_url instead)"
        )
    return f"https://{dc}.api.mailchimp.com/3.0"


def problem(response: httpx.Response) -> str:
    """Mailchimp's problem+json, in full: title, detail and each field error."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:300] or response.reason_phrase}"
    parts = [f"{body.get('status', response.status_code)} {body.get('title', '')}".strip()]
    if body.get("detail"):
        parts.append(str(body["detail"]))
    for error in body.get("errors") or []:
        parts.append(f"{error.get('field') or 'request'}: {error.get('message')}")
    return "; ".join(parts)


class _API:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise MailchimpError(
                f"mailchimp did not answer {method} {path}: {type(exc).__name__}. Run the command again: "
                "it checks the campaign's state in Mailchimp before doing anything"
            ) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise MailchimpError(f"mailchimp refused {method} {path}: {problem(response)}")
        return response.json() if response.content else None


def _load(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserError(
            "not a JSON object of campaign ids; fix or delete it", Location(path)
        ) from None
    if not isinstance(data, dict):
        raise UserError("not a JSON object of campaign ids; fix or delete it", Location(path))
    return {str(k): str(v) for k, v in data.items()}


def _save(path: Path, ids: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)


def _options(config: Config) -> Options:
    try:
        return Options.model_validate(config.provider.options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"[provider] for mailchimp: {problems}", Location(config.workspace / "campaign.toml")
        ) from None


class Mailchimp:
    """`campaign send`'s one entry point for Mailchimp (a `providers.HostedService`): called
    after preflight and confirmation, like every provider. Built from campaign.toml, it
    checks the options and the key without calling Mailchimp (what `--dry-run` needs)."""

    def __init__(self, config: Config, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.options = _options(config)
        config.secret(KEY_ENV, "the mailchimp provider")
        self.transport = transport

    @property
    def audience(self) -> str:
        return f"Mailchimp audience {self.options.audience_id} (Mailchimp holds its members)"

    async def send(
        self, compiled: Compiled, *, test_addresses: list[str] | None, at: datetime | None
    ) -> str:
        return await run(
            self.config, compiled, test_addresses=test_addresses, at=at, transport=self.transport
        )


async def run(
    config: Config,
    compiled: Compiled,
    *,
    test_addresses: list[str] | None,
    at: datetime | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Create or update the Mailchimp campaign for `compiled`, then test, send or schedule it.

    Returns the line `campaign send` prints.
    """
    options = _options(config)
    key = config.secret(KEY_ENV, "the mailchimp provider")
    when = quarter_hour(at) if at is not None else None
    if when is not None and when <= datetime.now(UTC):
        raise UserError(
            f"--at {when.isoformat()} has passed (Mailchimp schedules on the quarter hour, in UTC)"
        )
    from_name, from_email = sender(compiled.from_)
    settings = {
        "subject_line": with_merge_tags(compiled.subject),
        "preview_text": with_merge_tags(compiled.preheader),
        "title": compiled.slug,
        "from_name": from_name or from_email,
        "reply_to": from_email,
    }
    notes = []
    if compiled.reply_to and sender(compiled.reply_to)[1] != from_email:
        notes.append(
            f"Mailchimp sends From and Reply-To as one address: {from_email} (reply-to {compiled.reply_to} not used)"
        )
    content = {
        "html": with_merge_tags(compiled.html, compiled.preheader, is_html=True),
        "plain_text": with_merge_tags(compiled.text),
    }
    store = config.workspace / STORE
    ids = _load(store)
    async with httpx.AsyncClient(
        base_url=(options.base_url or base_url_for(key)).rstrip("/"),
        auth=httpx.BasicAuth("campaign", key),
        transport=transport,
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=httpx.Limits(max_connections=10),
    ) as client:
        api = _API(client)
        campaign_id = ids.get(compiled.slug)
        existing = (
            await api.call("GET", f"/campaigns/{campaign_id}", missing_ok=True)
            if campaign_id
            else None
        )
        recipients = {"list_id": options.audience_id}
        if existing is not None:
            status = existing.get("status")
            if status in ("sent", "sending"):
                raise UserError(
                    f"the Mailchimp campaign {campaign_id} for {compiled.slug} is already {status}; "
                    f"to send a new one, remove {compiled.slug} from {store}"
                )
            if status == "schedule":
                await api.call("POST", f"/campaigns/{campaign_id}/actions/unschedule")
            await api.call(
                "PATCH",
                f"/campaigns/{campaign_id}",
                {"recipients": recipients, "settings": settings},
            )
            verb = "updated"
        else:
            created = await api.call(
                "POST",
                "/campaigns",
                {"type": "regular", "recipients": recipients, "settings": settings},
            )
            campaign_id = str(created["id"])
            ids[compiled.slug] = campaign_id
            _save(store, ids)
            verb = "created"
        await api.call("PUT", f"/campaigns/{campaign_id}/content", content)
        checklist = await api.call("GET", f"/campaigns/{campaign_id}/send-checklist")
        if not checklist.get("is_ready"):
            items = [
                f"  {item.get('type')}: {item.get('heading')}: {item.get('details')}"
                for item in checklist.get("items", [])
                if item.get("type") != "success"
            ]
            raise UserError(
                "\n".join([f"Mailchimp says campaign {campaign_id} is not ready to send:", *items])
            )
        if test_addresses:
            await api.call(
                "POST",
                f"/campaigns/{campaign_id}/actions/test",
                {"test_emails": test_addresses, "send_type": "html"},
            )
            done = f"test sent to {', '.join(test_addresses)}"
        elif when is not None:
            await api.call(
                "POST",
                f"/campaigns/{campaign_id}/actions/schedule",
                {"schedule_time": when.isoformat().replace("+00:00", "Z")},
            )
            done = f"scheduled for {when:%Y-%m-%d %H:%M} UTC"
        else:
            await api.call("POST", f"/campaigns/{campaign_id}/actions/send")
            done = "sent to the audience"
    line = f"mailchimp: {verb} campaign {campaign_id} for {compiled.slug} (audience {options.audience_id}); {done}"
    return "\n".join([line, *notes])
