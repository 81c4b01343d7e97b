"""Click and open tracking: off unless `track_clicks` / `track_opens` asks for it.

With `track_clicks = "aggregate"` the HTML part's links (never the plain-text part's) point
at `/r/<token>` on `campaign serve`. The token is signed and names the campaign and the
link's number in the campaign's frozen HTML, nothing else: the redirect can only lead to a
link of that campaign, and no token tells who clicked. Under "per-subscriber" the link also
carries the recipient's unsubscribe token (already in the message's List-Unsubscribe
header), and the click is recorded against their public id.

With `track_opens = true` the message carries a 1x1 image whose token names the campaign
only: opens are counted, never per person.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from campaign.compiled import Compiled
from campaign.config import Config
from campaign.placeholders import link as placeholder

TrackClicks = Literal["off", "aggregate", "per-subscriber"]
TRACK_CLICKS: tuple[TrackClicks, ...] = ("off", "aggregate", "per-subscriber")

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s]+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class BadClick(Exception):
    """A tracking token that is forged, altered, or names no link of a sent campaign."""


@dataclass(frozen=True, slots=True)
class Click:
    campaign: str
    link: int
    """The link's number among `tracked_links` of the campaign's frozen HTML."""
    per_subscriber: bool


def tracked_links(compiled_html: str, public_base_url: str) -> list[str]:
    """The links a tracked message rewrites, numbered by first appearance: every http(s) link
    of an <a> in the HTML, as written there (HTML-escaped), except the public site's own."""
    found: dict[str, None] = {}
    for match in _HREF.finditer(compiled_html):
        url = match.group(3)
        if not url.startswith(public_base_url + "/"):
            found.setdefault(url, None)
    return list(found)


class Tracker:
    """Signs and checks click and open tokens with the workspace's key (own salts)."""

    def __init__(self, secret_key: str, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._clicks = URLSafeSerializer(secret_key, salt="campaign.click")
        self._opens = URLSafeSerializer(secret_key, salt="campaign.open")

    @classmethod
    def for_config(cls, config: Config) -> Tracker:
        return cls(config.secret_key, config.public_base_url)

    def click_url(self, click: Click) -> str:
        token = self._clicks.dumps([click.campaign, click.link, int(click.per_subscriber)])
        return f"{self.base_url}/r/{token}"

    def click(self, token: str) -> Click:
        try:
            campaign, number, per_subscriber = self._clicks.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise BadClick("invalid") from None
        if not isinstance(campaign, str) or type(number) is not int or per_subscriber not in (0, 1):
            raise BadClick("invalid")
        return Click(campaign, number, bool(per_subscriber))

    def open_url(self, campaign: str) -> str:
        return f"{self.base_url}/o/{self._opens.dumps(campaign)}.gif"

    def opened(self, token: str) -> str:
        try:
            campaign = self._opens.loads(token.removesuffix(".gif"))
        except (BadSignature, ValueError, TypeError):
            raise BadClick("invalid") from None
        if not isinstance(campaign, str):
            raise BadClick("invalid")
        return campaign

    def track(self, compiled: Compiled) -> Compiled:
        """`compiled` as a tracked send mails it; unchanged when tracking is off."""
        mode = compiled.track_clicks
        html_part = compiled.html
        if mode != "off":
            numbers = {url: n for n, url in enumerate(tracked_links(html_part, self.base_url))}
            per_subscriber = mode == "per-subscriber"
            who = "?s=" + placeholder("unsubscribe") if per_subscriber else ""

            def rewrite(match: re.Match[str]) -> str:
                number = numbers.get(match.group(3))
                if number is None:
                    return match.group(0)
                url = self.click_url(Click(compiled.slug, number, per_subscriber)) + who
                return f"{match.group(1)}{match.group(2)}{url}{match.group(2)}"

            html_part = _HREF.sub(rewrite, html_part)
        if compiled.track_opens:
            pixel = (
                f'<img src="{html.escape(self.open_url(compiled.slug))}" width="1" height="1" '
                'alt="" style="display:block;border:0;width:1px;height:1px">'
            )
            html_part, count = _BODY_END.subn(pixel + "</body>", html_part, count=1)
            if not count:
                html_part += pixel
        return compiled.model_copy(update={"html": html_part})
