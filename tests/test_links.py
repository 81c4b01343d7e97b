"""Signed links: cannot be forged, altered, or used for another purpose."""

from __future__ import annotations

import pytest

from campaign.links import BadLink, Links

links = Links("k" * 32, "https://news.example.org/")


def test_round_trip_and_url_shape() -> None:
    url = links.url("unsubscribe", "pub123", "2018-11-wsr-primer")
    assert url.startswith("https://news.example.org/unsubscribe/")
    claims = links.verify("unsubscribe", url.rsplit("/", 1)[1])
    assert (claims.subscriber, claims.campaign) == ("pub123", "2018-11-wsr-primer")
    assert links.view_url("x") == "https://news.example.org/archive/x"


def test_cross_purpose_tampered_and_forged_tokens_refused() -> None:
    token = links.token("unsubscribe", "pub123", "c")
    with pytest.raises(BadLink):
        links.verify("preferences", token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(BadLink):
        links.verify("unsubscribe", tampered)
    with pytest.raises(BadLink):
        Links("other-key" * 4, "https://x").verify("unsubscribe", token)
    with pytest.raises(BadLink):
        links.verify("unsubscribe", "not-a-token")


def test_expired_token_refused() -> None:
    old = Links("k" * 32, "https://x", max_age_days=1)
    token = old.token("forward", "p", "c")
    assert old.verify("forward", token).subscriber == "p"
    old.max_age = -1
    with pytest.raises(BadLink):
        old.verify("forward", token)
