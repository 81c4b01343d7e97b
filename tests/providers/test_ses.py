"""Amazon SES v2 provider against an SES double that recomputes the SigV4 signature:
SendBulkEmail and SendEmail bodies, each recipient's copy, per-entry statuses,
throttling retried, the daily quota pausing the send, configuration."""

from __future__ import annotations

import email.header
import json

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status
from campaign.providers.ses import SESProvider
from tests.providers.samples import batch, message, passed, running
from tests.servers.ses import ACCESS_KEY, SECRET_KEY, error, ses

ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def decoded(address: str) -> str:
    return str(email.header.make_header(email.header.decode_header(address)))


async def test_bulk_request_is_signed_and_templated() -> None:
    service = ses()
    messages = batch(3)
    async with running(service, SESProvider, {"configuration_set": "events"}, ENV) as provider:
        results = await provider.send(messages)
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/v2/email/outbound-bulk-emails")
    assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/ses/aws4_request" in request.headers["authorization"]
    assert request.headers["x-amz-date"].endswith("Z")
    body = request.json()
    assert (
        body["FromEmailAddress"]
        == "Colorado Human Trafficking Council <newsletter@news.example.org>"
    )
    assert body["ReplyToAddresses"] == ["chtc@example.org"]
    assert body["ConfigurationSetName"] == "events"
    assert body["DefaultEmailTags"] == [{"Name": "campaign", "Value": "may-2024"}]
    template = body["DefaultContent"]["Template"]
    assert template["TemplateData"] == "{}"
    assert template["TemplateContent"]["Subject"] == "CHTC news, May 2024"
    assert "/unsubscribe/{{h3}}" in template["TemplateContent"]["Html"]
    assert {h["Name"] for h in template["Headers"]} == {
        "List-Unsubscribe-Post",
        "List-Id",
        "X-Campaign",
    }
    entry = body["BulkEmailEntries"][0]
    assert entry["Destination"] == {"ToAddresses": ["Ann <reader0@example.com>"]}
    assert entry["ReplacementTags"] == [{"Name": "send_id", "Value": messages[0].send_id}]
    assert entry["ReplacementHeaders"] == [
        {"Name": "List-Unsubscribe", "Value": messages[0].headers["List-Unsubscribe"]},
        {"Name": "X-Campaign-Send-Id", "Value": messages[0].send_id},
    ]
    data = json.loads(
        entry["ReplacementEmailContent"]["ReplacementTemplate"]["ReplacementTemplateData"]
    )
    assert data["h0"] == "Ann"
    assert [(r.status, bool(r.provider_id)) for r in results] == [(Status.ACCEPTED, True)] * 3


async def test_each_recipient_receives_exactly_their_own_message() -> None:
    service = ses()
    messages = batch(SESProvider.max_batch)
    async with running(service, SESProvider, {}, ENV) as provider:
        await provider.send(messages)
    assert len(service.received) == 1
    for m, copy in zip(messages, service.delivered, strict=True):
        assert (decoded(copy.to), copy.subject, copy.html, copy.text) == (
            decoded(m.to),
            m.subject,
            m.html,
            m.text,
        )
        assert copy.headers == {"Reply-To": m.reply_to, **passed(m)}
        assert copy.metadata == {"campaign": m.campaign, "send_id": m.send_id}


async def test_one_message_goes_by_send_email() -> None:
    service = ses()
    m = message(3)  # a non-ASCII display name
    async with running(service, SESProvider, {}, ENV) as provider:
        (result,) = await provider.send([m])
    (request,) = service.received
    assert request.path == "/v2/email/outbound-emails"
    body = request.json()
    (to,) = body["Destination"]["ToAddresses"]
    assert to.isascii() and decoded(to) == "Zoë Šimková <reader3@example.com>"
    simple = body["Content"]["Simple"]
    assert simple["Body"]["Html"] == {"Data": m.html, "Charset": "UTF-8"}
    assert {h["Name"]: h["Value"] for h in simple["Headers"]} == passed(m)
    assert body["EmailTags"] == [
        {"Name": "campaign", "Value": "may-2024"},
        {"Name": "send_id", "Value": m.send_id},
    ]
    assert result.status == Status.ACCEPTED


async def test_session_token_is_signed_along() -> None:
    service = ses(token="session-token")
    async with running(
        service, SESProvider, {}, {**ENV, "AWS_SESSION_TOKEN": "session-token"}
    ) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.ACCEPTED
    assert service.received[0].headers["x-amz-security-token"] == "session-token"


async def test_entry_statuses_map_to_recipient_results() -> None:
    entries = [
        {"Status": "SUCCESS", "MessageId": "m-0"},
        {"Status": "MESSAGE_REJECTED", "Error": "Email address is on the suppression list"},
        {"Status": "TRANSIENT_FAILURE", "Error": "Try again"},
        {"Status": "ACCOUNT_THROTTLED", "Error": "Maximum sending rate exceeded."},
        {"Status": "ACCOUNT_DAILY_QUOTA_EXCEEDED", "Error": "Daily message quota exceeded."},
    ]
    service = ses().then(JSONResponse({"BulkEmailEntryResults": entries}))
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(batch(5))
    assert [r.status for r in results] == [
        Status.ACCEPTED,
        Status.REJECTED,
        Status.RETRY,
        Status.THROTTLED,
        Status.BLOCKED,
    ]
    assert results[0].provider_id == "m-0"
    assert "suppression list" in results[1].reason
    assert "Daily message quota exceeded. The send is paused" in results[4].reason


async def test_a_batch_refused_for_the_daily_quota_pauses_the_send() -> None:
    entries = [
        {"Status": "ACCOUNT_DAILY_QUOTA_EXCEEDED", "Error": "Daily message quota exceeded."}
    ] * 2
    service = ses().then(JSONResponse({"BulkEmailEntryResults": entries}))
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.BLOCKED}
    assert "paused" in results[0].reason


@pytest.mark.parametrize(
    ("status", "kind"), [(400, "ThrottlingException"), (429, "TooManyRequestsException")]
)
async def test_daily_quota_error_pauses_the_send(status: int, kind: str) -> None:
    service = ses().then(error(status, kind, "Daily message quota exceeded."))
    async with running(service, SESProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="Daily message quota exceeded. The send is paused"):
            await provider.send(batch(2))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "ThrottlingException"),
        (429, "TooManyRequestsException"),
        (400, "LimitExceededException"),
    ],
)
async def test_maximum_sending_rate_is_retried(status: int, kind: str) -> None:
    service = ses().then(error(status, kind, "Maximum sending rate exceeded."))
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.THROTTLED}
    assert "Maximum sending rate exceeded" in results[0].reason


async def test_message_rejected_is_rejected_for_good() -> None:
    service = ses().then(error(400, "MessageRejected", "Message contains a virus."))
    async with running(service, SESProvider, {}, ENV) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.REJECTED and "virus" in result.reason


async def test_the_sandboxs_unverified_address_stops_the_send_in_ses_words() -> None:
    words = "Email address is not verified. The following identities failed the check"
    service = ses().then(error(400, "MessageRejected", words))
    async with running(service, SESProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="MessageRejected.*Email address is not verified"):
            await provider.send([message(0)])


async def test_a_bulk_entry_not_verified_blocks_the_rest() -> None:
    entries = [
        {"Status": "SUCCESS", "MessageId": "m-0"},
        {"Status": "MESSAGE_REJECTED", "Error": "Email address is not verified."},
    ]
    service = ses().then(JSONResponse({"BulkEmailEntryResults": entries}))
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(batch(2))
    assert [r.status for r in results] == [Status.ACCEPTED, Status.BLOCKED]


@pytest.mark.parametrize(
    "kind",
    [
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "BadRequestException",
    ],
)
async def test_account_and_request_errors_stop_the_send(kind: str) -> None:
    service = ses().then(error(400, kind, "Explained by SES."))
    async with running(service, SESProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match=f"{kind}.*Explained by SES"):
            await provider.send(batch(2))


async def test_wrong_region_signature_is_refused() -> None:
    async with running(ses(region="eu-west-1"), SESProvider, {}, ENV) as provider:
        with pytest.raises(ProviderError, match="403"):
            await provider.send(batch(2))
    async with running(
        ses(region="eu-west-1"), SESProvider, {"region": "eu-west-1"}, ENV
    ) as provider:
        results = await provider.send(batch(2))
    assert {r.status for r in results} == {Status.ACCEPTED}


async def test_handlebars_in_a_message_sends_it_alone_through_send_email() -> None:
    service = ses()
    messages = [message(0, text="{{name}}"), message(1), message(2)]
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 3
    assert [r.path for r in service.received] == [
        "/v2/email/outbound-bulk-emails",
        "/v2/email/outbound-emails",
    ]
    copies = {copy.to: copy for copy in service.delivered}
    for m in messages:
        assert (copies[m.to].subject, copies[m.to].html, copies[m.to].text) == (
            m.subject,
            m.html,
            m.text,
        )


async def test_a_brace_beside_a_tag_sends_the_batch_one_by_one() -> None:
    """`{` before a slot would make `{{{h0}}`, a different Handlebars tag."""
    service = ses()
    messages = [message(i, text=f"set {{{i}}} here") for i in range(3)]
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 3
    assert {r.path for r in service.received} == {"/v2/email/outbound-emails"}
    assert sorted(copy.text for copy in service.delivered) == [m.text for m in messages]


def test_configuration() -> None:
    assert SESProvider({}, ENV).base_url == "https://email.us-east-1.amazonaws.com"
    assert (
        SESProvider({"region": "eu-west-1"}, ENV).base_url
        == "https://email.eu-west-1.amazonaws.com"
    )
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        SESProvider({}, {"AWS_ACCESS_KEY_ID": ACCESS_KEY})
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID"):
        SESProvider({}, {"AWS_SECRET_ACCESS_KEY": SECRET_KEY})


async def test_a_backslash_beside_a_tag_sends_the_batch_one_by_one() -> None:
    """`\\` before a slot would make `\\{{h0}}`, which Handlebars prints as it is."""
    service = ses()
    messages = [message(i, text=f"path C:\\{i}x") for i in range(3)]
    async with running(service, SESProvider, {}, ENV) as provider:
        results = await provider.send(messages)
    assert [r.status for r in results] == [Status.ACCEPTED] * 3
    assert {r.path for r in service.received} == {"/v2/email/outbound-emails"}
