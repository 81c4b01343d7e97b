"""The store's contract with the send engine and the web pages, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import pytest

from campaign.audience import Recipient, Store
from campaign.db import connect
from campaign.errors import UserError


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(connect(db_url))


def add(store: Store, email: str, list_name: str = "news", **kw: object) -> str:
    return store.subscribe(email, list_name=list_name, source="test", **kw).public_id  # type: ignore[arg-type]


def emails(recipients: object) -> list[str]:
    return [r.email for r in recipients]  # type: ignore[attr-defined]


def test_recipients_stream_in_id_order_with_merge_fields(store: Store) -> None:
    add(store, " Jane@Example.ORG ", first_name="Jane", last_name="Doe", fields={"city": "Denver"})
    add(store, "bob@example.net", name="Bob B")
    first = list(store.recipients("news"))
    assert emails(first) == ["jane@example.org", "bob@example.net"]
    jane = first[0]
    assert isinstance(jane, Recipient) and jane.name == "Jane Doe"
    assert dict(jane.fields) == {
        "email": "jane@example.org",
        "name": "Jane Doe",
        "first_name": "Jane",
        "last_name": "Doe",
        "city": "Denver",
    }
    assert len(jane.public_id) >= 20 and jane.public_id != str(jane.id)
    assert store.count_recipients("news") == 2


def test_keyset_chunks_and_resume(store: Store) -> None:
    for i in range(7):
        add(store, f"p{i}@example.org")
    everyone = list(store.recipients("news", chunk=3))
    assert emails(everyone) == [f"p{i}@example.org" for i in range(7)]
    rest = list(store.recipients("news", after_id=everyone[3].id, chunk=2))
    assert emails(rest) == [f"p{i}@example.org" for i in range(4, 7)]


def test_unknown_list_or_topic_named_at_call(store: Store) -> None:
    add(store, "a@example.org", topics=["events"])
    with pytest.raises(UserError, match="'nope'"):
        store.recipients("nope")
    with pytest.raises(UserError, match="'rain'"):
        store.count_recipients("news", ["rain"])


def test_topics_narrow_to_anyone_who_chose_one(store: Store) -> None:
    add(store, "a@example.org", topics=["events"])
    add(store, "b@example.org", topics=["policy"])
    add(store, "c@example.org")
    assert emails(store.recipients("news", ["events", "policy"])) == [
        "a@example.org",
        "b@example.org",
    ]
    assert store.count_recipients("news", ["policy"]) == 1
    assert store.topics() == [("events", 1), ("policy", 1)]


def test_unsubscribe_everywhere_is_idempotent_and_suppresses(store: Store) -> None:
    jane = add(store, "jane@example.org")
    add(store, "jane@example.org", "other")
    jane_id = store.get(jane).id  # type: ignore[union-attr]
    store.unsubscribe(jane, source="web")
    store.unsubscribe("JANE@example.org", source="mailto")
    assert list(store.recipients("news")) == [] and list(store.recipients("other")) == []
    assert not store.is_mailable(jane_id) and store.mailable_ids([jane_id]) == set()
    found = store.find("jane@example.org")
    assert (
        found is not None and found.status == "unsubscribed" and found.suppressed == "unsubscribed"
    )
    assert [e["kind"] for e in store.history("jane@example.org")] == ["subscribed", "unsubscribed"]
    with pytest.raises(UserError, match="unsubscribed"):
        store.subscribe("jane@example.org", list_name="news", source="form")


def test_unsubscribe_from_one_list(store: Store) -> None:
    jane = add(store, "jane@example.org")
    add(store, "jane@example.org", "other")
    store.unsubscribe(jane, source="web", list_name="news")
    assert emails(store.recipients("other")) == ["jane@example.org"]
    assert list(store.recipients("news")) == []
    assert store.subscriber_lists(jane) == {"other"}
    jane_id = store.get(jane).id  # type: ignore[union-attr]
    assert store.is_mailable(jane_id) and store.is_mailable(jane_id, "other")
    assert not store.is_mailable(jane_id, "news") and not store.is_mailable(jane_id, "unknown")
    with pytest.raises(UserError, match="left list 'news'"):
        store.subscribe("jane@example.org", list_name="news", source="form")
    store.resubscribe(jane, source="web", list_name="news")
    assert store.subscriber_lists(jane) == {"news", "other"}


def test_unknown_address_is_suppressed_unknown_id_refused(store: Store) -> None:
    store.unsubscribe("stranger@example.org", source="mailto")
    with pytest.raises(UserError, match="stranger"):
        store.subscribe("Stranger@example.org", list_name="news", source="form")
    with pytest.raises(UserError, match="no subscriber"):
        store.unsubscribe("not-an-id", source="web")


def test_hard_bounce_suppresses_now_and_cannot_resubscribe(store: Store) -> None:
    jane = add(store, "jane@example.org")
    store.record_bounce("Jane@example.org", hard=True, source="postmark", detail="550 no such user")
    found = store.get(jane)
    assert found is not None and found.status == "bounced" and found.suppressed == "bounced"
    with pytest.raises(UserError, match="bounced"):
        store.resubscribe(jane, source="web")
    assert store.history("jane@example.org")[-1]["detail"] == "550 no such user"


def test_third_soft_bounce_suppresses(store: Store) -> None:
    jane = add(store, "jane@example.org")
    for _ in range(2):
        store.record_bounce("jane@example.org", hard=False, source="ses")
    assert store.get(jane).mailable  # type: ignore[union-attr]
    store.record_bounce("jane@example.org", hard=False, source="ses")
    assert store.get(jane).status == "bounced"  # type: ignore[union-attr]


def test_complaint_outranks_unsubscribe(store: Store) -> None:
    jane = add(store, "jane@example.org")
    store.unsubscribe(jane, source="web")
    store.record_complaint("jane@example.org", source="sendgrid")
    found = store.get(jane)
    assert found is not None and found.status == "complained" and found.suppressed == "complained"
    with pytest.raises(UserError):
        store.resubscribe(jane, source="web")
    store.record_bounce("jane@example.org", hard=True, source="x")
    assert store.get(jane).status == "complained"  # type: ignore[union-attr]


def test_resubscribe_after_own_unsubscribe(store: Store) -> None:
    jane = add(store, "jane@example.org")
    store.unsubscribe(jane, source="web")
    store.resubscribe(jane, source="preferences page")
    found = store.get(jane)
    assert found is not None and found.mailable and found.consent_source == "preferences page"
    assert emails(store.recipients("news")) == ["jane@example.org"]
    assert [e["kind"] for e in store.history("jane@example.org")][-1] == "resubscribed"


def test_set_preferences(store: Store) -> None:
    jane = add(store, "jane@example.org", topics=["events"])
    store.ensure_list("alerts")
    store.ensure_topic("policy")
    store.set_preferences(
        jane, lists={"alerts"}, topics={"policy"}, name="Jane\r\nBcc: x@evil.example"
    )
    assert store.subscriber_lists(jane) == {"alerts"} and store.subscriber_topics(jane) == {
        "policy"
    }
    assert store.get(jane).name == "Jane Bcc: x@evil.example"  # type: ignore[union-attr]
    assert store.lists() == [("alerts", 1), ("news", 0)]
    with pytest.raises(UserError, match="'ghost'"):
        store.set_preferences(jane, lists={"ghost"}, topics=set(), name=None)


def test_delete_erases_but_keeps_address_blocked(store: Store) -> None:
    jane = add(store, "jane@example.org", first_name="Jane", fields={"city": "Denver"})
    store.record_bounce(
        "jane@example.org", hard=False, source="ses", detail="mailbox of jane@example.org full"
    )
    jane_id = store.get(jane).id  # type: ignore[union-attr]
    store.delete("Jane@Example.org")
    assert store.get(jane) is None and store.find("jane@example.org") is None
    assert list(store.subscribers()) == [] and not store.is_mailable(jane_id)
    assert all(e["detail"] == "" for e in store.history("jane@example.org"))
    with pytest.raises(UserError, match="deleted"):
        store.subscribe("jane@example.org", list_name="news", source="form")


def test_times_are_aware_utc(store: Store) -> None:
    jane = store.get(add(store, "jane@example.org"))
    assert jane is not None and jane.created_at.tzinfo is UTC and jane.consent_at is not None


def test_mailable_ids_in_batches(store: Store) -> None:
    ids = [
        store.subscribe(f"p{i}@example.org", list_name="news", source="test").id for i in range(6)
    ]
    store.record_bounce("p1@example.org", hard=True, source="ses")
    store.unsubscribe("p2@example.org", source="web", list_name="news")
    assert store.mailable_ids([*ids, 9999, ids[0]], "news") == set(ids) - {ids[1], ids[2]}
    assert store.mailable_ids(ids) == set(ids) - {ids[1]}
    assert [s.email for s in store.subscribers(status="bounced")] == ["p1@example.org"]


def test_public_names() -> None:
    import campaign.audience

    assert campaign.audience.__all__ == sorted(campaign.audience.__all__)
    assert {"Recipient", "Store", "Subscriber"} <= set(campaign.audience.__all__)
