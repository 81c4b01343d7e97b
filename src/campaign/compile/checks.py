"""The final checks: a pure function over the finished HTML.

What a layout must put in every email (the unsubscribe link, the postal address), and
what would hurt it in the inbox (Gmail's 102 KB clipping, Google Fonts).
"""

from __future__ import annotations

import html as html_lib

from campaign import placeholders
from campaign.errors import Diagnostic, Location
from campaign.links import Links

MAX_HTML_BYTES = 102 * 1024
"""Gmail clips a message whose HTML is larger than this ("[Message clipped]"), hiding the footer."""
WARN_HTML_BYTES = 80 * 1024


def sent_size(html: str, public_base_url: str, slug: str) -> int:
    """The HTML's size as a recipient gets it: each link token counted at the length of a
    real signed link (merge fields at their token's length), since Gmail clips what arrives."""
    links = Links("size-estimate", public_base_url)
    typical_id = "x" * 22  # the length of a subscriber's public id
    size = len(html.encode("utf-8"))
    for match in placeholders.PATTERN.finditer(html):
        if match.group(1) == "link":
            name = match.group(2)
            url = links.view_url(slug) if name == "view" else links.url(name, typical_id, slug)  # type: ignore[arg-type]
            size += len(url) - len(match.group(0))
    return size


def check_html(
    html: str, *, address: str, public_base_url: str, slug: str, where: Location
) -> list[Diagnostic]:
    """Every problem of the finished HTML, each reported at `where` (the layout)."""
    found: list[Diagnostic] = []
    if placeholders.link("unsubscribe") not in html:
        found.append(
            Diagnostic(
                "error",
                "the email has no unsubscribe link: the layout must use {{ link('unsubscribe') }}",
                where,
            )
        )
    if address not in html and html_lib.escape(address, quote=False) not in html:
        found.append(
            Diagnostic(
                "error",
                "the email does not show the organisation's postal address (organisation.address in campaign.toml):"
                " the layout must show {{ organisation.address }}",
                where,
            )
        )
    size = sent_size(html, public_base_url, slug)
    if size > MAX_HTML_BYTES:
        found.append(
            Diagnostic(
                "error",
                f"the HTML is {size / 1024:.1f} KB: Gmail clips messages over 102 KB, hiding the unsubscribe link",
                where,
            )
        )
    elif size > WARN_HTML_BYTES:
        found.append(
            Diagnostic(
                "warning",
                f"the HTML is {size / 1024:.1f} KB, close to the 102 KB at which Gmail clips it",
                where,
            )
        )
    if "fonts.googleapis.com" in html:
        found.append(
            Diagnostic(
                "warning",
                "the email loads Google Fonts (mjml's default font): set font-family on mj-all in mj-attributes",
                where,
            )
        )
    return found
