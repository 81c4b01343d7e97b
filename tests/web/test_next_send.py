"""An unsubscribe by any path (the page, the one-click POST, a webhook) and a hard bounce
keep that subscriber out of the very next send, with the real send engine."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import httpx

from campaign.audience import Store, Subscriber
from campaign.compile import build
from campaign.config import Config
from campaign.links import Links
from campaign.send.engine import send_campaign
from tests.web.conftest import SLUG
from tests.web.test_pages import csrf_of
from tests.web.test_webhooks import mailgun, postmark, postmark_bounce


def recipients(workspace: Path, campaign: str) -> list[str]:
    folder = workspace / "outbox" / campaign
    return sorted(
        str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"])
        for p in folder.glob("*.eml")
    )


async def test_every_unsubscribe_path_holds_for_the_next_send(
    served: str,
    workspace: Path,
    config: Config,
    store: Store,
    ana: Subscriber,
    sent: str,
    links: Links,
) -> None:
    for name in ("carol", "dan", "eve"):
        store.subscribe(f"{name}@example.org", list_name="newsletter", source="test")
    bob = store.find("bob@example.org")
    assert bob is not None
    assert recipients(workspace, SLUG) == ["Ana <ana@example.org>", "Bob <bob@example.org>"]

    async with httpx.AsyncClient(base_url=served) as http:
        page_url = f"/unsubscribe/{links.token('unsubscribe', ana.public_id, SLUG)}"
        page = await http.get(page_url)
        by_page = await http.post(
            page_url, data={"csrf": csrf_of(page.text), "action": "unsubscribe", "scope": "list"}
        )
        assert by_page.status_code == 200

        one_click = await http.post(
            f"/unsubscribe/{links.token('unsubscribe', bob.public_id, SLUG)}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200

        headers, body = mailgun(
            {"event": "unsubscribed", "id": "mg-u1", "recipient": "carol@example.org"}
        )
        assert (await http.post("/webhooks/mailgun", headers=headers, content=body)).json()[
            "recorded"
        ] == 1
        headers, body = postmark(postmark_bounce("dan@example.org"))
        assert (await http.post("/webhooks/postmark", headers=headers, content=body)).json()[
            "recorded"
        ] == 1

    next_issue = build(config, SLUG).model_copy(update={"slug": "next-issue"})
    summary = await send_campaign(config, next_issue, list_name="newsletter")
    assert summary.sent == 1
    assert recipients(workspace, "next-issue") == ["eve@example.org"]
