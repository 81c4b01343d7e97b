"""Messages as the engine builds them, and the services' doubles running on loopback."""

from __future__ import annotations

import hashlib
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from campaign.message import Message
from campaign.providers.base import Provider
from tests.servers import serve
from tests.servers.scripted import Service

NAMES = [
    "Ann",
    "Bob O'Neil",
    "",
    "Zoë Šimková",
    '"><img src=x onerror=alert(1)>',
    "<script>x</script>",
]
BODY = "".join(
    f'<tr><td style="padding:8px;color:#1d4f91">Item {i}: Colorado Human Trafficking Council news &amp; events.</td></tr>'
    for i in range(60)
)


def _token(purpose: str, i: int) -> str:
    return hashlib.sha256(f"{purpose}{i}".encode()).hexdigest()


def message(
    i: int, *, campaign: str = "may-2024", to: str | None = None, **changes: Any
) -> Message:
    """Recipient i's message: their name, four links and headers, as personalisation fills them."""
    name = NAMES[i % len(NAMES)]
    base = "https://news.example.org"
    unsubscribe = f"{base}/unsubscribe/{_token('u', i)}"
    send_id = f"s{i:06d}-{_token('s', i)[:8]}"
    first = name.split(" ")[0] if name else "friend"
    page = (
        f"<html><head><style>td{{color:#333}}</style></head><body><p>Dear {html.escape(first)},</p>"
        f'<a href="{base}/archive/{campaign}">View in your browser</a><table>{BODY}</table>'
        f'<a href="{base}/forward/{_token("f", i)}">Forward</a> '
        f'<a href="{base}/preferences/{_token("p", i)}">Preferences</a> '
        f'<a href="{unsubscribe}">Unsubscribe</a></body></html>'
    )
    text = (
        f"Dear {first},\n\nView: {base}/archive/{campaign}\n\nNews.\n\nUnsubscribe: {unsubscribe}\n"
    )
    fields: dict[str, Any] = dict(
        send_id=send_id,
        campaign=campaign,
        from_="Colorado Human Trafficking Council <newsletter@news.example.org>",
        to_email=to or f"reader{i}@example.com",
        to_name=name,
        subject="CHTC news, May 2024",
        html=page,
        text=text,
        reply_to="chtc@example.org",
        headers={
            "Message-ID": f"<{send_id}@news.example.org>",
            "Date": "Wed, 01 May 2024 15:00:00 +0000",
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "CHTC news <news.example.org>",
            "X-Campaign": campaign,
            "X-Campaign-Send-Id": send_id,
        },
        merge={"first_name": first},
    )
    fields.update(changes)
    return Message(**fields)


def batch(n: int, start: int = 0, **changes: Any) -> list[Message]:
    return [message(i, **changes) for i in range(start, start + n)]


def passed(m: Message) -> dict[str, str]:
    """The headers a service gets: all but Date and Message-ID, which it stamps itself."""
    return {k: v for k, v in m.headers.items() if k not in ("Date", "Message-ID")}


@asynccontextmanager
async def running(
    service: Service,
    cls: type[Provider],
    options: dict[str, Any],
    env: dict[str, str],
    suffix: str = "",
) -> AsyncIterator[Provider]:
    """The provider, its base_url (plus `suffix`) pointed at `service` on loopback."""
    with serve(service) as url:
        async with cls({**options, "base_url": url + suffix}, env) as provider:
            yield provider
