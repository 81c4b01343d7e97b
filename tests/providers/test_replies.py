"""Replies every HTTP service can give, mapped the same way for each: a dropped
connection or a timeout is unknown (the batch may have gone out), an unreachable
service and a server error are retried, bad credentials stop the send without
ever showing the secret."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse, Response

from campaign.errors import ProviderError
from campaign.providers.base import HTTPProvider, Status
from campaign.providers.brevo import BrevoProvider
from campaign.providers.mailgun import MailgunProvider
from campaign.providers.mandrill import MandrillProvider
from campaign.providers.resend import ResendProvider
from campaign.providers.sendgrid import SendGridProvider
from campaign.providers.ses import SESProvider
from tests.providers.samples import batch, running
from tests.servers import brevo, free_port, mailgun, mandrill, resend, sendgrid, ses
from tests.servers.scripted import DROP, HANG, Service


@dataclass
class Case:
    double: Callable[[], Service]
    cls: type[HTTPProvider]
    options: dict[str, Any]
    env: dict[str, str]
    wrong_env: dict[str, str]
    server_error: Response
    suffix: str = ""

    def __str__(self) -> str:
        return self.cls.name


CASES = [
    Case(
        mailgun.mailgun,
        MailgunProvider,
        {"domain": mailgun.DOMAIN},
        {"MAILGUN_API_KEY": mailgun.KEY},
        {"MAILGUN_API_KEY": "key-Wrong-Secret"},
        JSONResponse({"message": "Internal error"}, 500),
    ),
    Case(
        sendgrid.sendgrid,
        SendGridProvider,
        {},
        {"SENDGRID_API_KEY": sendgrid.KEY},
        {"SENDGRID_API_KEY": "SG.Wrong-Secret"},
        JSONResponse({"errors": [{"message": "Internal error"}]}, 500),
    ),
    Case(
        ses.ses,
        SESProvider,
        {},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "Wrong-Secret"},
        ses.error(
            500, "InternalFailure", "The request processing has failed because of an unknown error."
        ),
    ),
    Case(
        resend.resend,
        ResendProvider,
        {},
        {"RESEND_API_KEY": resend.KEY},
        {"RESEND_API_KEY": "re_Wrong-Secret"},
        JSONResponse(
            {"statusCode": 500, "name": "application_error", "message": "Unexpected error"}, 500
        ),
    ),
    Case(
        brevo.brevo,
        BrevoProvider,
        {},
        {"BREVO_API_KEY": brevo.KEY},
        {"BREVO_API_KEY": "xkeysib-Wrong-Secret"},
        JSONResponse({"code": "internal_error", "message": "Internal error"}, 500),
    ),
    Case(
        mandrill.mandrill,
        MandrillProvider,
        {},
        {"MANDRILL_API_KEY": mandrill.KEY},
        {"MANDRILL_API_KEY": "md-Wrong-Secret"},
        JSONResponse(
            {
                "status": "error",
                "code": -1,
                "name": "GeneralError",
                "message": "An unexpected error occurred",
            },
            500,
        ),
        "/api/1.0",
    ),
]


def _size(case: Case) -> int:
    return min(2, case.cls.max_batch)


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


async def test_dropped_connection_is_unknown(case: Case) -> None:
    service = case.double().then(DROP)
    async with running(service, case.cls, case.options, case.env, case.suffix) as provider:
        results = await provider.send(batch(_size(case)))
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert len(service.delivered) == _size(case)  # it did go out: unknown is the honest answer


async def test_timeout_is_unknown(case: Case) -> None:
    service = case.double().then(HANG)
    async with running(service, case.cls, case.options, case.env, case.suffix) as provider:
        provider.client.timeout = httpx.Timeout(0.3)
        results = await provider.send(batch(_size(case)))
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert "ReadTimeout" in results[0].reason


async def test_unreachable_service_is_retried(case: Case) -> None:
    async with case.cls(
        {**case.options, "base_url": f"http://127.0.0.1:{free_port()}"}, case.env
    ) as provider:
        results = await provider.send(batch(_size(case)))
    assert {r.status for r in results} == {Status.RETRY}


async def test_server_error_is_retried(case: Case) -> None:
    service = case.double().then(case.server_error)
    async with running(service, case.cls, case.options, case.env, case.suffix) as provider:
        results = await provider.send(batch(_size(case)))
    assert {r.status for r in results} == {Status.RETRY}
    assert service.delivered == []


async def test_wrong_credentials_stop_the_send_without_showing_them(case: Case) -> None:
    async with running(
        case.double(), case.cls, case.options, case.wrong_env, case.suffix
    ) as provider:
        with pytest.raises(ProviderError) as info:
            await provider.send(batch(_size(case)))
    assert "Wrong-Secret" not in str(info.value)


async def test_results_are_one_per_message_in_order(case: Case) -> None:
    service = case.double()
    messages = batch(min(5, case.cls.max_batch))
    async with running(service, case.cls, case.options, case.env, case.suffix) as provider:
        results = await provider.send(messages)
    assert [r.send_id for r in results] == [m.send_id for m in messages]
    assert {r.status for r in results} == {Status.ACCEPTED} and all(r.provider_id for r in results)
