"""Gmail clips what arrives, so the size check counts links at their sent length."""

from __future__ import annotations

from campaign import placeholders
from campaign.compile.checks import sent_size


def test_link_tokens_count_at_the_length_of_a_signed_link() -> None:
    body = "<p>x</p>"
    unsubscribe = f'<a href="{placeholders.link("unsubscribe")}">u</a>'
    view = f'<a href="{placeholders.link("view")}">v</a>'
    base = "https://news.example.org"
    grown = sent_size(body + unsubscribe, base, "2018-11-wsr-primer") - len(body + unsubscribe)
    assert 60 < grown < 200  # a signed URL is much longer than its token
    assert sent_size(body + view, base, "slug") == len(body + view) - len(
        placeholders.link("view")
    ) + len(f"{base}/archive/slug")
    field = placeholders.field("first_name")
    assert sent_size(body + field, base, "slug") == len(body + field)
