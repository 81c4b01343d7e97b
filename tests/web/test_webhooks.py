"""Webhooks: each service's signature or secret checked as its documentation describes,
events normalised into the audience's suppressions, replays counted once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from campaign.audience import Store, Subscriber
from campaign.config import Config
from campaign.web.app import create_app
from campaign.web.webhooks import mandrill_signature
from tests.web.conftest import BASE_URL, WEBHOOK_ENV, make_config

Request = tuple[dict[str, str], bytes]

NOW = int(time.time())
"""Mandrill's event times: its signed `ts` must be within the replay window."""


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def status_of(store: Store, email: str) -> tuple[str, str | None, int]:
    found = store.find(email)
    assert found is not None
    return found.status, found.suppressed, found.soft_bounces


async def post(client: httpx.AsyncClient, service: str, request: Request) -> httpx.Response:
    headers, body = request
    return await client.post(f"/webhooks/{service}", headers=headers, content=body)


# ---------------------------------------------------------------- request builders, one per service


def postmark(
    record: dict[str, Any], credentials: str = WEBHOOK_ENV["POSTMARK_WEBHOOK_AUTH"]
) -> Request:
    return {"Authorization": basic(credentials), "Content-Type": "application/json"}, json.dumps(
        record
    ).encode()


def postmark_bounce(email: str, kind: str = "HardBounce", bounce_id: int = 42) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver",
        "Details": "smtp;550 5.1.1 user unknown",
        "Email": email,
        "From": "newsletter@news.example.org",
        "BouncedAt": "2024-01-01T10:00:00Z",
        "Inactive": True,
        "CanActivate": True,
        "MessageStream": "outbound",
        "Metadata": {"send_id": "s-1"},
    }


def mailgun(
    event_data: dict[str, Any], key: str = WEBHOOK_ENV["MAILGUN_WEBHOOK_SIGNING_KEY"]
) -> Request:
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    payload = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }
    return {"Content-Type": "application/json"}, json.dumps(payload).encode()


def resend(
    payload: dict[str, Any],
    secret: str = WEBHOOK_ENV["RESEND_WEBHOOK_SECRET"],
    msg_id: str = "msg_2Zb",
    at: float | None = None,
) -> Request:
    body = json.dumps(payload).encode()
    timestamp = str(int(at if at is not None else time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        "svix-signature": f"v1,bm90LXRoaXM= v1,{signature}",
    }
    return headers, body


def brevo(payload: dict[str, Any], token: str = WEBHOOK_ENV["BREVO_WEBHOOK_TOKEN"]) -> Request:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, json.dumps(
        payload
    ).encode()


def mandrill(
    events: list[dict[str, Any]], key: str = WEBHOOK_ENV["MANDRILL_WEBHOOK_KEY"]
) -> Request:
    params = [("mandrill_events", json.dumps(events))]
    signature = mandrill_signature(key, f"{BASE_URL}/webhooks/mandrill", params)
    headers = {
        "X-Mandrill-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return headers, urlencode(params).encode()


class SendGridKeys:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def request(self, events: list[dict[str, Any]], at: float | None = None) -> Request:
        body = json.dumps(events).encode()
        timestamp = str(int(at if at is not None else time.time()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }, body


def sns_now() -> str:
    """SNS's Timestamp format, for now: it is signed, and checked against the replay window."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
)


class SNS:
    """Plays Amazon SNS: a signing key with its certificate, served at an amazonaws URL."""

    topic = WEBHOOK_ENV["SES_SNS_TOPIC_ARN"]

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.cert_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        self.requests: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if str(request.url) == CERT_URL:
            return httpx.Response(200, content=self.cert_pem)
        if (
            request.url.host == "sns.us-east-1.amazonaws.com"
            and request.url.params.get("Action") == "ConfirmSubscription"
        ):
            return httpx.Response(200, content=b"<ConfirmSubscriptionResponse/>")
        return httpx.Response(404)

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        fields = (
            ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
            if message["Type"] == "Notification"
            else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
        )
        text = "".join(f"{k}\n{message[k]}\n" for k in fields if k in message)
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": CERT_URL,
        }

    def notification(
        self, ses_event: dict[str, Any], message_id: str = "sns-1", **overrides: Any
    ) -> Request:
        message = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.topic,
            "Message": json.dumps(ses_event),
            "Timestamp": sns_now(),
            **overrides,
        }
        return {
            "x-amz-sns-message-type": "Notification",
            "Content-Type": "text/plain; charset=UTF-8",
        }, json.dumps(self.sign(message)).encode()


def ses_bounce(
    email: str, bounce_type: str = "Permanent", feedback: str = "fb-1"
) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "feedbackId": feedback,
            "bouncedRecipients": [{"emailAddress": email, "status": "5.1.1"}],
        },
        "mail": {
            "messageId": "0100018c-ses",
            "headers": [{"name": "X-Campaign-Send-Id", "value": "s-9"}],
        },
    }


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def sendgrid_keys() -> SendGridKeys:
    return SendGridKeys()


@pytest.fixture
def sns() -> SNS:
    return SNS()


@pytest.fixture
def config(workspace: Any, db_url: str, sendgrid_keys: SendGridKeys) -> Config:
    return make_config(workspace, db_url, SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid_keys.public)


@pytest.fixture
def app(config: Config, sns: SNS) -> Any:
    return create_app(config, transport=httpx.MockTransport(sns.handler))


# ---------------------------------------------------------------- the same promises for every service


def cases(keys: SendGridKeys, sns: SNS, email: str) -> dict[str, tuple[Request, Request]]:
    """Per service: a request reporting a hard bounce of `email`, and the same with a bad signature."""
    good = {
        "postmark": postmark(postmark_bounce(email)),
        "mailgun": mailgun(
            {
                "event": "failed",
                "severity": "permanent",
                "id": "mg-1",
                "recipient": email,
                "reason": "bounce",
                "message": {"headers": {"message-id": "m1@mg"}},
            }
        ),
        "sendgrid": keys.request(
            [
                {
                    "event": "bounce",
                    "type": "bounce",
                    "email": email,
                    "sg_event_id": "sg-1",
                    "sg_message_id": "abc.filter",
                    "reason": "550 unknown",
                    "send_id": "s-1",
                }
            ]
        ),
        "ses": sns.notification(ses_bounce(email)),
        "resend": resend(
            {
                "type": "email.bounced",
                "created_at": "2024-01-01T10:00:00Z",
                "data": {
                    "email_id": "re-1",
                    "to": [email],
                    "bounce": {"type": "Permanent", "message": "x"},
                },
            }
        ),
        "brevo": brevo(
            {
                "event": "hard_bounce",
                "email": email,
                "id": 1,
                "message-id": "<b1@brevo>",
                "ts_event": 1,
            }
        ),
        "mandrill": mandrill(
            [
                {
                    "event": "hard_bounce",
                    "_id": "md-1",
                    "ts": NOW,
                    "msg": {"_id": "md-1", "email": email, "metadata": {"send_id": "s-1"}},
                }
            ]
        ),
    }
    other_keys, other_sns = SendGridKeys(), SNS()
    forged_sns_headers, forged_sns_body = other_sns.notification(ses_bounce(email))
    bad = {
        "postmark": postmark(postmark_bounce(email), credentials="postmark:wrong"),
        "mailgun": mailgun(json.loads(good["mailgun"][1])["event-data"], key="wrong"),
        "sendgrid": other_keys.request(json.loads(good["sendgrid"][1])),
        "ses": (forged_sns_headers, forged_sns_body),
        "resend": resend(json.loads(good["resend"][1]), secret="whsec_d3Jvbmc="),
        "brevo": brevo(json.loads(good["brevo"][1]), token="wrong"),
        "mandrill": (mandrill([], key="wrong")[0], good["mandrill"][1]),
    }
    return {service: (good[service], bad[service]) for service in good}


SERVICES = ["postmark", "mailgun", "sendgrid", "ses", "resend", "brevo", "mandrill"]

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
"""For checks that never reach the database's own behaviour (the replay test runs on both)."""


@sqlite_only
@pytest.mark.parametrize("service", SERVICES)
async def test_bad_signature_is_401_and_changes_nothing(
    service: str,
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
    sns: SNS,
) -> None:
    _good, bad = cases(sendgrid_keys, sns, ana.email)[service]
    response = await post(client, service, bad)
    assert response.status_code == 401
    assert status_of(store, ana.email) == ("subscribed", None, 0)
    unsigned = await client.post(
        f"/webhooks/{service}", content=bad[1], headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert status_of(store, ana.email) == ("subscribed", None, 0)


@pytest.mark.parametrize("service", SERVICES)
async def test_hard_bounce_suppresses_and_a_replay_counts_once(
    service: str,
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
    sns: SNS,
) -> None:
    good, _bad = cases(sendgrid_keys, sns, ana.email)[service]
    first = await post(client, service, good)
    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": 1, "replayed": 0}
    assert status_of(store, ana.email) == ("bounced", "bounced", 0)
    again = await post(client, service, good)
    assert again.json() == {"recorded": 0, "replayed": 1}
    bounces = [e for e in store.history(ana.email) if e["kind"] == "bounce_hard"]
    assert len(bounces) == 1


async def test_soft_bounces_are_counted_and_the_third_suppresses(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
) -> None:
    for n in (1, 2):
        response = await post(
            client, "postmark", postmark(postmark_bounce(ana.email, "SoftBounce", bounce_id=n))
        )
        assert response.json()["recorded"] == 1
    replay = await post(
        client, "postmark", postmark(postmark_bounce(ana.email, "SoftBounce", bounce_id=2))
    )
    assert replay.json() == {"recorded": 0, "replayed": 1}
    assert status_of(store, ana.email) == ("subscribed", None, 2)
    await post(client, "postmark", postmark(postmark_bounce(ana.email, "Transient", bounce_id=3)))
    assert status_of(store, ana.email) == ("bounced", "bounced", 3)


EventCase = tuple[str, Callable[[str, SendGridKeys, SNS], Request], tuple[str, str | None]]

COMPLAINTS_AND_UNSUBSCRIBES: list[EventCase] = [
    (
        "postmark",
        lambda e, k, s: postmark(
            {"RecordType": "SpamComplaint", "ID": 7, "Email": e, "MessageID": "m"}
        ),
        ("complained", "complained"),
    ),
    (
        "postmark",
        lambda e, k, s: postmark(
            {
                "RecordType": "SubscriptionChange",
                "MessageID": "m",
                "Recipient": e,
                "SuppressSending": True,
                "SuppressionReason": "ManualSuppression",
                "ChangedAt": "2024-01-01T10:00:00Z",
            }
        ),
        ("unsubscribed", "unsubscribed"),
    ),
    (
        "mailgun",
        lambda e, k, s: mailgun({"event": "complained", "id": "mg-c", "recipient": e}),
        ("complained", "complained"),
    ),
    (
        "mailgun",
        lambda e, k, s: mailgun({"event": "unsubscribed", "id": "mg-u", "recipient": e}),
        ("unsubscribed", "unsubscribed"),
    ),
    (
        "sendgrid",
        lambda e, k, s: k.request([{"event": "spamreport", "email": e, "sg_event_id": "c1"}]),
        ("complained", "complained"),
    ),
    (
        "sendgrid",
        lambda e, k, s: k.request(
            [{"event": "group_unsubscribe", "email": e, "sg_event_id": "u1"}]
        ),
        ("unsubscribed", "unsubscribed"),
    ),
    (
        "ses",
        lambda e, k, s: s.notification(
            {
                "eventType": "Complaint",
                "mail": {"messageId": "x"},
                "complaint": {"feedbackId": "c-1", "complainedRecipients": [{"emailAddress": e}]},
            }
        ),
        ("complained", "complained"),
    ),
    (
        "resend",
        lambda e, k, s: resend({"type": "email.complained", "data": {"email_id": "r", "to": [e]}}),
        ("complained", "complained"),
    ),
    (
        "brevo",
        lambda e, k, s: brevo({"event": "spam", "email": e, "message-id": "<m>", "ts_event": 2}),
        ("complained", "complained"),
    ),
    (
        "brevo",
        lambda e, k, s: brevo(
            {"event": "unsubscribed", "email": e, "message-id": "<m>", "ts_event": 3}
        ),
        ("unsubscribed", "unsubscribed"),
    ),
    (
        "mandrill",
        lambda e, k, s: mandrill(
            [{"event": "spam", "_id": "x", "ts": NOW, "msg": {"_id": "x", "email": e}}]
        ),
        ("complained", "complained"),
    ),
    (
        "mandrill",
        lambda e, k, s: mandrill(
            [{"event": "unsub", "_id": "x", "ts": NOW + 1, "msg": {"_id": "x", "email": e}}]
        ),
        ("unsubscribed", "unsubscribed"),
    ),
]


@sqlite_only
@pytest.mark.parametrize(
    ("service", "build", "expected"),
    COMPLAINTS_AND_UNSUBSCRIBES,
    ids=[f"{c[0]}-{c[2][0]}" for c in COMPLAINTS_AND_UNSUBSCRIBES],
)
async def test_complaints_and_unsubscribes(
    service: str,
    build: Callable[[str, SendGridKeys, SNS], Request],
    expected: tuple[str, str | None],
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
    sns: SNS,
) -> None:
    response = await post(client, service, build(ana.email, sendgrid_keys, sns))
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 1
    assert status_of(store, ana.email)[:2] == expected


async def test_deliveries_change_no_status(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sendgrid_keys: SendGridKeys,
) -> None:
    response = await post(
        client,
        "sendgrid",
        sendgrid_keys.request(
            [
                {
                    "event": "delivered",
                    "email": ana.email,
                    "sg_event_id": "d1",
                    "sg_message_id": "abc.x",
                },
                {"event": "open", "email": ana.email, "sg_event_id": "o1"},
            ]
        ),
    )
    assert response.json() == {"recorded": 1, "replayed": 0}
    assert status_of(store, ana.email) == ("subscribed", None, 0)


async def test_events_without_an_address_are_skipped(
    client: httpx.AsyncClient, store: Store, ana: Subscriber
) -> None:
    response = await post(
        client, "mailgun", mailgun({"event": "unsubscribed", "id": "mg-x", "recipient": "nobody"})
    )
    assert response.json() == {"recorded": 0, "replayed": 0}


async def test_resend_refuses_an_old_timestamp(
    client: httpx.AsyncClient, store: Store, ana: Subscriber
) -> None:
    payload = {"type": "email.complained", "data": {"email_id": "r", "to": [ana.email]}}
    response = await post(client, "resend", resend(payload, at=time.time() - 3600))
    assert response.status_code == 401
    assert status_of(store, ana.email) == ("subscribed", None, 0)


async def test_sns_subscription_is_confirmed_through_its_url(
    client: httpx.AsyncClient, sns: SNS, app: Any
) -> None:
    subscribe_url = (
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={sns.topic}&Token=tok"
    )
    message = sns.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "c-1",
            "Token": "tok",
            "TopicArn": sns.topic,
            "Message": "You have chosen to subscribe",
            "SubscribeURL": subscribe_url,
            "Timestamp": sns_now(),
        }
    )
    response = await client.post("/webhooks/ses", content=json.dumps(message))
    assert response.status_code == 200
    assert sns.requests == [CERT_URL, subscribe_url]
    assert app.state.site.webhooks.confirmed == [sns.topic]


async def test_sns_refuses_other_topics_and_certificates_off_amazon(
    client: httpx.AsyncClient,
    store: Store,
    ana: Subscriber,
    sns: SNS,
) -> None:
    _headers, other_topic = sns.notification(
        ses_bounce(ana.email), TopicArn="arn:aws:sns:us-east-1:999:theirs"
    )
    assert (await client.post("/webhooks/ses", content=other_topic)).status_code == 401
    message = json.loads(sns.notification(ses_bounce(ana.email))[1])
    for url in (
        "https://sns.us-east-1.amazonaws.com.evil.test/cert.pem",
        "http://sns.us-east-1.amazonaws.com/c.pem",
        "https://evil.test/sns.us-east-1.amazonaws.com/c.pem",
    ):
        response = await client.post(
            "/webhooks/ses", content=json.dumps({**message, "SigningCertURL": url})
        )
        assert response.status_code == 401
    assert sns.requests == []
    assert status_of(store, ana.email) == ("subscribed", None, 0)


async def test_sns_certificate_from_configured_file(
    workspace: Any,
    db_url: str,
    sns: SNS,
    store: Store,
    ana: Subscriber,
) -> None:
    cert_file = workspace / "sns.pem"
    cert_file.write_bytes(sns.cert_pem)
    app = create_app(
        make_config(workspace, db_url, SES_SNS_SIGNING_CERT=str(cert_file)),
        transport=httpx.MockTransport(lambda r: httpx.Response(500)),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        response = await post(client, "ses", sns.notification(ses_bounce(ana.email, "Transient")))
    await app.state.site.aclose()
    assert response.json() == {"recorded": 1, "replayed": 0}
    assert status_of(store, ana.email) == ("subscribed", None, 1)


async def test_unknown_service_and_unset_secret(
    workspace: Any,
    db_url: str,
    store: Store,
    ana: Subscriber,
) -> None:
    app = create_app(make_config(workspace, db_url, MAILGUN_WEBHOOK_SIGNING_KEY=""))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        assert (await client.post("/webhooks/nope", content=b"{}")).status_code == 404
        unset = await post(
            client,
            "mailgun",
            mailgun({"event": "complained", "id": "x", "recipient": ana.email}, key=""),
        )
        assert unset.status_code == 401
        assert (await client.head("/webhooks/mandrill")).status_code == 200
    await app.state.site.aclose()
    assert status_of(store, ana.email) == ("subscribed", None, 0)
