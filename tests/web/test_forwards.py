"""Forward limits under concurrency, and the note's link stripper."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from campaign.db import connect
from campaign.web.forwards import claim_forward, strip_links
from campaign.web.tables import forward_log


def bursts(url: str, who: list[tuple[str, str]], count: int) -> list[bool]:
    """Each (subscriber, ip) in `who` claims a forward of `count` at the same moment."""
    engine = connect(url)
    barrier = threading.Barrier(len(who))
    results: list[bool] = [False] * len(who)
    errors: list[BaseException] = []

    def one(index: int, subscriber: str, ip: str) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = claim_forward(
                engine, subscriber, ip, count, per_subscriber=5, per_ip=20
            )
        except BaseException as exc:  # surfaced below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, *w)) for i, w in enumerate(who)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def recorded(url: str) -> int:
    with connect(url).connect() as connection:
        return int(
            connection.execute(
                select(func.coalesce(func.sum(forward_log.c.recipients), 0))
            ).scalar_one()
        )


def test_twenty_bursts_from_one_link_stay_within_its_limit(db_url: str) -> None:
    results = bursts(db_url, [("one-link", f"ip-{i}") for i in range(20)], 2)
    assert sum(results) == 2  # 2 + 2 fit in 5; a third would make 6
    assert recorded(db_url) == 4


def test_twenty_bursts_from_one_address_stay_within_its_limit(db_url: str) -> None:
    results = bursts(db_url, [(f"link-{i}", "one-ip") for i in range(20)], 3)
    assert sum(results) == 6  # 6 x 3 = 18 fit in 20
    assert recorded(db_url) == 18


@pytest.mark.parametrize(
    "note",
    [
        "see https://evil.example/x now",
        "see evil.example now",
        "see www.evil.example now",
        "see 192.168.0.1:8080/login now",
        "see [2001:db8::1]/x now",
        "see exämple.de/pay now",
        "see пример.рф now",
        "see xn--e1afmkfd.xn--p1ai now",
        "see evil\u3002example now",
        "see ev\u200bil.example now",
        "see mailto:a@b.example now",
        "see javascript:alert(1) now",
        "see tel:+15551234 now",
        "see a@evil.example now",
    ],
)
def test_the_note_keeps_no_link(note: str) -> None:
    assert strip_links(note) == "see now"


def test_the_note_keeps_plain_text() -> None:
    text = "Hi Sam, 3.5 million people read this. Meet at 10:30, ok? e.g. Friday"
    assert strip_links(text) == text
