"""A merge field in the subject reaches every service as each recipient's own subject:
non-ASCII, emoji and markup as typed, the fallback where the field is empty. Messages
are made by the personaliser from a compiled campaign, as the engine makes them, and
each service's double on loopback renders what its recipients get."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from campaign.audience.models import Recipient
from campaign.links import Links
from campaign.message import Message
from campaign.personalise import Personaliser
from campaign.placeholders import field
from campaign.providers import mailchimp as mc
from campaign.providers.base import Provider, Status
from campaign.providers.brevo import BrevoProvider
from campaign.providers.mailgun import MailgunProvider
from campaign.providers.mandrill import MandrillProvider
from campaign.providers.outbox import OutboxProvider
from campaign.providers.postmark import PostmarkProvider
from campaign.providers.resend import ResendProvider
from campaign.providers.sendgrid import SendGridProvider
from campaign.providers.ses import SESProvider
from campaign.providers.smtp import SMTPProvider
from tests.providers import samples
from tests.providers.test_mailchimp import compiled as mailchimp_compiled
from tests.providers.test_mailchimp import config as mailchimp_config
from tests.providers.test_smtp import Recorder, free_port
from tests.send.conftest import compiled
from tests.servers import (
    brevo,
    mailchimp,
    mailgun,
    mandrill,
    postmark,
    resend,
    sendgrid,
    serve,
    ses,
)
from tests.servers.scripted import Service

SUBJECT = f"{field('first_name', 'Friend')}, your digest 🎉"
PEOPLE = {
    "zoe@example.org": ("Zoë 🎉", "Zoë 🎉, your digest 🎉"),
    "bo@example.org": ("<b>Bo</b>", "<b>Bo</b>, your digest 🎉"),
    "nobody@example.org": ("", "Friend, your digest 🎉"),
}
LINKS = Links("k" * 32, "https://news.example.org")


def messages(cls: type[Provider]) -> list[Message]:
    """The three recipients' messages, made for `cls` as the engine makes them."""
    personaliser = Personaliser(
        compiled(subject=SUBJECT),
        LINKS,
        list_id="<news.news.example.org>",
        raw=cls.wants_raw,
        json=cls.wants_json,
    )
    return [
        personaliser.message(
            Recipient.of(i, f"public{i:016d}", address, "", first, "", {}), f"sid{i}"
        )
        for i, (address, (first, _)) in enumerate(PEOPLE.items())
    ]


def received(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """{address: subject} from (To value, subject) pairs, To values possibly encoded."""
    out = {}
    for to, subject in pairs:
        (address,) = [a for a in PEOPLE if a in to]
        out[address] = subject
    return out


@dataclass
class Scripted:
    name: str
    cls: type[Provider]
    double: Callable[[], Service]
    options: dict[str, Any]
    env: dict[str, str]
    suffix: str = ""

    def __str__(self) -> str:
        return self.name


SCRIPTED = [
    Scripted(
        "mailgun",
        MailgunProvider,
        mailgun.mailgun,
        {"domain": mailgun.DOMAIN},
        {"MAILGUN_API_KEY": mailgun.KEY},
    ),
    Scripted(
        "ses",
        SESProvider,
        ses.ses,
        {},
        {"AWS_ACCESS_KEY_ID": ses.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ses.SECRET_KEY},
    ),
    Scripted("resend", ResendProvider, resend.resend, {}, {"RESEND_API_KEY": resend.KEY}),
    Scripted("brevo", BrevoProvider, brevo.brevo, {}, {"BREVO_API_KEY": brevo.KEY}),
    Scripted(
        "sendgrid", SendGridProvider, sendgrid.sendgrid, {}, {"SENDGRID_API_KEY": sendgrid.KEY}
    ),
    Scripted(
        "mandrill",
        MandrillProvider,
        mandrill.mandrill,
        {},
        {"MANDRILL_API_KEY": mandrill.KEY},
        "/api/1.0",
    ),
]


async def send_all(provider: Provider, batch: list[Message]) -> None:
    for start in range(0, len(batch), provider.max_batch):
        results = await provider.send(batch[start : start + provider.max_batch])
        assert {r.status for r in results} == {Status.ACCEPTED}, results


@pytest.mark.parametrize("case", SCRIPTED, ids=str)
async def test_api_services_deliver_each_recipients_own_subject(case: Scripted) -> None:
    service = case.double()
    async with samples.running(service, case.cls, case.options, case.env, case.suffix) as provider:
        await send_all(provider, messages(case.cls))
    got = received([(copy.to, copy.subject) for copy in service.delivered])
    assert got == {address: subject for address, (_, subject) in PEOPLE.items()}


async def test_postmark_receives_each_recipients_own_subject() -> None:
    server = postmark.PostmarkServer(keep_payloads=True)
    with serve(server.app) as url:
        async with PostmarkProvider(
            {"base_url": url}, {"POSTMARK_SERVER_TOKEN": postmark.TOKEN}
        ) as provider:
            await send_all(provider, messages(PostmarkProvider))
    got = received([(m["To"], m["Subject"]) for batch in server.payloads for m in batch])
    assert got == {address: subject for address, (_, subject) in PEOPLE.items()}


def parsed_subjects(raws: list[bytes]) -> dict[str, str]:
    """{address: subject} of RFC 5322 messages, parsed as a mail client does."""
    out = {}
    for raw in raws:
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii() and b"\n " not in head.replace(b"\r\n ", b"")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        out[message["To"].addresses[0].addr_spec] = str(message["Subject"])
    return out


async def test_smtp_server_receives_each_recipients_own_subject() -> None:
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        async with SMTPProvider(
            {"host": "127.0.0.1", "port": controller.port, "security": "none"}, {}
        ) as provider:
            await send_all(provider, messages(SMTPProvider))
    finally:
        controller.stop()
    got = parsed_subjects([data for _, _, data in handler.received])
    assert got == {address: subject for address, (_, subject) in PEOPLE.items()}


async def test_outbox_files_carry_each_recipients_own_subject(tmp_path: Path) -> None:
    async with OutboxProvider({"directory": str(tmp_path)}, {}) as provider:
        await send_all(provider, messages(OutboxProvider))
    got = parsed_subjects([p.read_bytes() for p in sorted((tmp_path / "c1").glob("*.eml"))])
    assert got == {address: subject for address, (_, subject) in PEOPLE.items()}


async def test_mailchimp_subject_uses_merge_tags_with_the_fallback(tmp_path: Path) -> None:
    """Mailchimp holds the audience and fills its own merge tags: the subject line carries
    *|FNAME|* with the fallback as a conditional block, which each member sees filled."""
    service = mailchimp.mailchimp()
    with serve(service) as url:
        await mailchimp_run(tmp_path, url)
    (campaign,) = service.state["campaigns"].values()
    subject_line = campaign["settings"]["subject_line"]
    assert subject_line == "*|IF:FNAME|**|FNAME|**|ELSE:|*Friend*|END:IF|*, your digest 🎉"
    for first, subject in PEOPLE.values():
        assert mailchimp.merge(subject_line, {"FNAME": first}) == subject
    html = campaign["content"]["html"]
    assert mailchimp.merge(html, {"FNAME": ""}).count("Dear &lt;friend&gt;") == 1


async def mailchimp_run(tmp_path: Path, url: str) -> None:
    html = mailchimp_compiled().html.replace(field("first_name"), field("first_name", "<friend>"))
    c = mailchimp_compiled(subject=SUBJECT, html=html)
    await mc.run(mailchimp_config(tmp_path, url), c, test_addresses=None, at=None)
