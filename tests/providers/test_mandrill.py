"""Mandrill provider against a Mandrill double: one recipient's own message per call
(Mandrill cannot merge into headers), key in the body, statuses mapped, errors."""

from __future__ import annotations

import pytest
from starlette.responses import JSONResponse

from campaign.errors import ConfigError, ProviderError
from campaign.providers.base import Status
from campaign.providers.mandrill import MandrillProvider
from tests.providers.samples import message, passed, running
from tests.servers.mandrill import KEY, mandrill

ENV = {"MANDRILL_API_KEY": KEY}
API = "/api/1.0"


async def test_message_body() -> None:
    service = mandrill()
    m = message(1)
    async with running(service, MandrillProvider, {"subaccount": "news"}, ENV, API) as provider:
        (result,) = await provider.send([m])
    (request,) = service.received
    assert (request.method, request.path) == ("POST", "/api/1.0/messages/send.json")
    assert "authorization" not in request.headers
    assert request.json() == {
        "key": KEY,
        "message": {
            "html": m.html,
            "text": m.text,
            "subject": m.subject,
            "from_email": "newsletter@news.example.org",
            "from_name": "Colorado Human Trafficking Council",
            "to": [{"email": "reader1@example.com", "name": "Bob O'Neil", "type": "to"}],
            "headers": {**passed(m), "Reply-To": "chtc@example.org"},
            "preserve_recipients": False,
            "merge": False,
            "auto_text": False,
            "auto_html": False,
            "tags": ["may-2024"],
            "metadata": {"send_id": m.send_id, "campaign": "may-2024"},
            "subaccount": "news",
        },
    }
    assert result.status == Status.ACCEPTED and result.provider_id
    assert service.delivered[0].html == m.html


@pytest.mark.parametrize("queued", [False, True])
async def test_sent_and_queued_are_accepted(queued: bool) -> None:
    async with running(mandrill(queued=queued), MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.ACCEPTED


async def test_rejected_carries_the_reject_reason() -> None:
    service = mandrill(rejects={"reader0@example.com": "hard-bounce"})
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.REJECTED and result.reason == "mandrill rejected: hard-bounce"


async def test_invalid_address_is_rejected() -> None:
    async with running(mandrill(), MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0, to="nobody")])
    assert result.status == Status.REJECTED and "invalid" in result.reason


async def test_missing_status_is_unknown() -> None:
    service = mandrill().then(JSONResponse([]))
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        (result,) = await provider.send([message(0)])
    assert result.status == Status.UNKNOWN


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("Invalid_Key", "Invalid API key"),
        ("PaymentRequired", "PaymentRequired"),
        ("ValidationError", "ValidationError"),
        ("Unknown_Subaccount", "Unknown_Subaccount"),
    ],
)
async def test_errors_stop_the_send(name: str, match: str) -> None:
    service = mandrill().then(
        JSONResponse(
            {
                "status": "error",
                "code": -1,
                "name": name,
                "message": "Invalid API key" if name == "Invalid_Key" else "x",
            },
            500,
        )
    )
    async with running(service, MandrillProvider, {}, ENV, API) as provider:
        with pytest.raises(ProviderError, match=match):
            await provider.send([message(0)])


def test_configuration() -> None:
    assert MandrillProvider({}, ENV).base_url == "https://mandrillapp.com/api/1.0"
    assert MandrillProvider.max_batch == 1
    with pytest.raises(ConfigError, match="MANDRILL_API_KEY"):
        MandrillProvider({}, {})
