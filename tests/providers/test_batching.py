"""`shared`: the body batch APIs send once, recovered exactly from finished messages."""

from __future__ import annotations

import random

import pytest

from campaign.providers.batching import (
    Unsendable,
    UnsupportedFeature,
    fit_name,
    shared,
    split_headers,
    transport_address,
)
from tests.providers.samples import batch, message


def exact(texts: list[str]) -> None:
    body = shared(texts)
    assert [body.fill(i) for i in range(len(texts))] == texts
    assert all(len(values) == body.slots for values in body.values)


def test_equal_texts_have_no_slots() -> None:
    body = shared(["same"] * 3)
    assert body.parts == ["same"] and body.slots == 0


def test_slots_are_the_links_and_names_and_the_rest_is_shared() -> None:
    texts = [m.html for m in batch(6)]
    body = shared(texts)
    exact(texts)
    assert body.slots == 4  # name, forward, preferences, unsubscribe tokens
    assert sum(map(len, body.parts)) > 0.95 * len(texts[0])
    assert body.render(lambda i: f"<{i}>").count("<3>") == 1


@pytest.mark.parametrize(
    "texts",
    [
        ["", "x"],
        ["x", ""],
        ["abc", "abd", "xbc"],
        ["a" * 50 + "X" + "b" * 50, "a" * 50 + "YY" + "b" * 50],
        [
            "start-A rest of a long common text here, long enough for an anchor",
            "start-BBB rest of a long common text here, long enough for an anchor",
        ],
        [
            "same beginning, then all different: " + "q" * 9000,
            "same beginning, then all different: " + "z" * 9000,
        ],
    ],
)
def test_edges_are_exact(texts: list[str]) -> None:
    exact(texts)


def test_random_texts_are_exact() -> None:
    rng = random.Random(5)
    common = [f"<td>{rng.random()}</td>" * rng.randint(1, 40) for _ in range(6)]
    for _ in range(50):
        texts = []
        for _ in range(rng.randint(1, 8)):
            pieces = [
                c + "".join(rng.choice('ab<>&"%{}') for _ in range(rng.randint(0, 12)))
                for c in common
            ]
            texts.append("".join(pieces))
        exact(texts)


def test_a_batch_with_two_senders_is_refused() -> None:
    with pytest.raises(UnsupportedFeature, match="different senders"):
        split_headers([message(0), message(1, from_="Other <o@example.org>")], "mailgun")


def test_headers_split_into_common_and_own() -> None:
    common, own = split_headers(batch(2), "sendgrid")
    assert set(common) == {"List-Unsubscribe-Post", "List-Id", "X-Campaign"}
    assert set(own[0]) == {"List-Unsubscribe", "X-Campaign-Send-Id"}


def test_transport_address_encodes_the_domain_and_refuses_a_non_ascii_local_part() -> None:
    assert transport_address("juergen@exämple.org", "ses") == "juergen@xn--exmple-cua.org"
    assert transport_address("Ann@Example.ORG", "ses") == "Ann@example.org"
    assert transport_address("jürgen@example.org", "smtp", smtputf8=True) == "jürgen@example.org"
    with pytest.raises(Unsendable, match="jürgen@example.org: ses cannot .*SMTPUTF8"):
        transport_address("jürgen@example.org", "ses")
    with pytest.raises(Unsendable, match="not an email address"):
        transport_address("nobody", "ses")
    with pytest.raises(Unsendable, match="a@ä..org: the domain is not a valid"):
        transport_address("a@ä..org", "ses")


def test_fit_name_cuts_with_an_ellipsis_and_drops_what_a_service_misreads() -> None:
    assert fit_name("A" * 200, 70) == "A" * 69 + "\u2026"
    assert fit_name("Ann", 70) == "Ann"
    assert fit_name("Doe, Jane", 70, ",;") == ""
