"""Webhooks no one can replay or forge: per service, a captured request replayed counts
once, its signature on a new body is refused, and a stale signed timestamp is refused.

Postmark and Brevo sign nothing (a shared secret, compared in constant time): a
replay of their request counts once (tests/web/test_webhooks.py), and they carry no
signed timestamp to age."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from campaign.audience import Store, Subscriber
from campaign.config import Config
from campaign.db import connect
from campaign.web.tables import webhook_tokens
from campaign.web.webhooks import SERVICES
from campaign.web.webhooks.recording import use_token
from tests.web import test_webhooks as hooks
from tests.web.conftest import WEBHOOK_ENV
from tests.web.test_webhooks import (
    NOW,
    SNS,
    Request,
    SendGridKeys,
    mandrill,
    post,
    resend,
    ses_bounce,
    status_of,
)

# The webhook tests' fixtures: the same app, SendGrid keys and SNS.
app, config, sendgrid_keys, sns = hooks.app, hooks.config, hooks.sendgrid_keys, hooks.sns

VICTIM = "victim@example.org"


def mailgun_at(event_data: dict[str, Any], at: float, token: str = "t" * 50) -> Request:
    key = WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"]
    timestamp = str(int(at))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    payload = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }
    return {"Content-Type": "application/json"}, json.dumps(payload).encode()


def sns_at(sns: SNS, email: str, at: float) -> Request:
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return sns.notification(ses_bounce(email), Timestamp=stamp.replace("+00:00", "Z"))


def bounce_at(service: str, email: str, at: float, keys: SendGridKeys, sns: SNS) -> Request:
    """A signed hard bounce of `email`, stamped `at`."""
    if service == "mailgun":
        return mailgun_at(
            {"event": "failed", "severity": "permanent", "id": "mg-1", "recipient": email}, at
        )
    if service == "sendgrid":
        event = {"event": "bounce", "type": "bounce", "email": email, "sg_event_id": "sg-1"}
        return keys.request([event], at=at)
    if service == "ses":
        return sns_at(sns, email, at)
    if service == "resend":
        payload = {
            "type": "email.bounced",
            "data": {"email_id": "re-1", "to": [email], "bounce": {"type": "Permanent"}},
        }
        return resend(payload, at=at)
    assert service == "mandrill"
    return mandrill(
        [{"event": "hard_bounce", "_id": "md-1", "ts": int(at), "msg": {"email": email}}]
    )


TIMESTAMPED = [name for name, service in SERVICES.items() if service.max_age is not None]


def test_every_service_that_signs_a_timestamp_has_a_window_of_minutes() -> None:
    assert sorted(TIMESTAMPED) == ["mailgun", "mandrill", "resend", "sendgrid", "ses"]
    assert all(60 <= (SERVICES[name].max_age or 0) <= 3600 for name in TIMESTAMPED)


@pytest.mark.parametrize("service", TIMESTAMPED)
@pytest.mark.parametrize("age", [-1, 1], ids=["stale", "future"])
async def test_a_timestamp_outside_the_window_is_refused(
    service: str,
    age: int,
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
    sns: SNS,
) -> None:
    window = SERVICES[service].max_age
    assert window is not None
    at = time.time() + age * (window + 60)
    response = await post(client, service, bounce_at(service, ana.email, at, sendgrid_keys, sns))
    assert response.status_code == 401
    assert status_of(store, ana.email) == ("subscribed", None, 0)
    inside = await post(
        client, service, bounce_at(service, ana.email, time.time() - 30, sendgrid_keys, sns)
    )
    assert inside.json() == {"recorded": 1, "replayed": 0}


def new_body(service: str, request: Request) -> Request:
    """`request`'s signature and headers on a payload that complains about VICTIM instead."""
    headers, body = request
    if service == "mailgun":
        payload = json.loads(body)
        payload["event-data"] = {"event": "complained", "id": "mg-2", "recipient": VICTIM}
        return headers, json.dumps(payload).encode()
    if service == "mandrill":
        events = [{"event": "spam", "_id": "x", "ts": NOW, "msg": {"email": VICTIM}}]
        return headers, mandrill(events)[1]
    return headers, body.replace(b"ana@example.org", VICTIM.encode())


SIGNED = ["mailgun", "sendgrid", "ses", "resend", "mandrill"]


@pytest.mark.parametrize("service", SIGNED)
async def test_a_captured_signature_on_a_new_body_is_refused(
    service: str,
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
    sns: SNS,
) -> None:
    store.subscribe(VICTIM, list_name="newsletter", source="test")
    captured = bounce_at(service, ana.email, time.time(), sendgrid_keys, sns)
    assert (await post(client, service, captured)).json() == {"recorded": 1, "replayed": 0}
    forged = await post(client, service, new_body(service, captured))
    assert forged.status_code == 401
    assert status_of(store, VICTIM) == ("subscribed", None, 0)
    replayed = await post(client, service, captured)
    assert replayed.json() == {"recorded": 0, "replayed": 1}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_used_tokens_are_pruned_after_the_window(config: Config) -> None:
    engine = connect(config.database_url)
    assert use_token(engine, "mailgun", "old", b"{}", 300)
    assert use_token(engine, "mailgun", "old", b"{}", 300)  # the service retrying
    assert not use_token(engine, "mailgun", "old", b"{ }", 300)
    with engine.begin() as connection:
        connection.execute(
            update(webhook_tokens).values(used_at=datetime.now(UTC) - timedelta(seconds=601))
        )
    assert use_token(engine, "mailgun", "new", b"{}", 300)
    with engine.connect() as connection:
        tokens = connection.execute(select(webhook_tokens.c.token)).scalars().all()
    assert tokens == ["new"]
