"""SMTP through aiosmtplib: STARTTLS or implicit TLS, with AUTH when a username is set.

Each `send` opens one connection and runs one mail transaction per message
(MAIL FROM, RCPT TO the one recipient, DATA with the bytes built once per campaign,
DKIM-signed when `[provider.dkim]` is set). A non-ASCII address goes with SMTPUTF8
when the server announces it; else that recipient fails, with the reason.
The server's replies say what happened to each message: 2xx accepted (its reply,
often "queued as ...", is the provider id), 4xx failed for now (retried), 5xx for
the recipient (at RCPT, or after DATA: one recipient per transaction) a hard
bounce, which the engine suppresses at once as a webhook's would be. A connection
lost before DATA means the message was not taken (retry); lost during DATA, it may
have been (unknown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any, ClassVar, Literal

import aiosmtplib

from campaign import mime
from campaign.config import SECRET_KEY_ENV
from campaign.dkim_signer import DKIMOptions, Signer
from campaign.errors import ConfigError, ProviderError
from campaign.mailbox import verp
from campaign.message import Message
from campaign.providers.base import Options, Provider, Result, Status

PASSWORD_ENV = "SMTP_PASSWORD"


class SMTPOptions(Options):
    host: str
    port: int | None = None
    """Default 587 with STARTTLS, 465 with TLS, 25 without."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    """With a username, the password comes from the environment variable SMTP_PASSWORD."""
    timeout: float = 30.0
    return_path: str | None = None
    """The envelope sender (where bounces go); default the From address."""
    verp: bool = False
    """Per-recipient return paths: return_path's local part, "+", a signed send id
    (bounces+<token>@domain), so `campaign mailbox` matches a bounce that quotes nothing
    of the original. Needs return_path, a mailbox that takes plus addresses, and
    CAMPAIGN_SECRET_KEY."""
    ca_file: str | None = None
    """Certificates to trust besides the system's (a private relay's own CA)."""
    local_hostname: str | None = None
    """The name this machine gives in EHLO; default the local host's fully qualified name.
    Set it to the sending host's public name (the one its IP address resolves back to):
    receivers score a greeting of "localhost" as spam."""
    dkim: DKIMOptions | None = None
    """`[provider.dkim]`: sign every message (key_file, selector, domain); see campaign.dkim_signer."""


_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class SMTPProvider(Provider):
    name = "smtp"
    max_batch = 100
    wants_raw = True
    smtputf8 = True  # decided per server, in `_one`, once EHLO has said whether it announces it
    Options: ClassVar[type[Options]] = SMTPOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options: Any = self.options
        self.password = self.secret(PASSWORD_ENV) if options.username else None
        if options.verp and not options.return_path:
            raise ConfigError("[provider] verp = true needs return_path (bounces@your-domain)")
        self.verp_key = self.secret(SECRET_KEY_ENV) if options.verp else None
        self.signer = (
            Signer.load(options.dkim, self.path(options.dkim.key_file)) if options.dkim else None
        )

    def _client(self) -> aiosmtplib.SMTP:
        options: Any = self.options
        return aiosmtplib.SMTP(
            hostname=options.host,
            port=options.port or _PORTS[options.security],
            username=options.username,
            password=self.password,
            timeout=options.timeout,
            use_tls=options.security == "tls",
            start_tls=options.security == "starttls",
            cert_bundle=str(self.path(options.ca_file)) if options.ca_file else None,
            local_hostname=options.local_hostname,
        )

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        client = self._client()
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # the extensions (SMTPUTF8) before the first MAIL
                await client.ehlo()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ProviderError(
                f"the SMTP server refused the login ({exc.code}): {exc.message}"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
                raise ProviderError(
                    f"the SMTP server refused the session ({exc.code}): {exc.message}"
                ) from None
            return [
                Result(m.send_id, Status.RETRY, reason=f"SMTP server unreachable: {_describe(exc)}")
                for m in batch
            ]
        results: list[Result] = []
        try:
            for message in batch:
                if not client.is_connected:
                    results.append(
                        Result(
                            message.send_id,
                            Status.RETRY,
                            reason="SMTP connection lost before sending",
                        )
                    )
                    continue
                results.append(
                    await self._one(
                        client,
                        message,
                        accepted_before=any(r.status is Status.ACCEPTED for r in results),
                    )
                )
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return results

    async def _one(
        self, client: aiosmtplib.SMTP, message: Message, *, accepted_before: bool
    ) -> Result:
        options: Any = self.options
        sender = options.return_path or parseaddr(message.from_)[1]
        if self.verp_key is not None:
            sender = verp.return_path(sender, self.verp_key, message.send_id)
        utf8 = not (sender.isascii() and message.to_email.isascii())
        if utf8 and not client.supports_extension("smtputf8"):
            return Result(
                message.send_id,
                Status.REJECTED,
                reason=f"{message.to_email}: a non-ASCII address needs SMTPUTF8, "
                "which this SMTP server does not announce",
            )
        envelope: dict[str, Any] = {"encoding": "utf-8", "options": ["SMTPUTF8"]} if utf8 else {}
        raw = message.raw if message.raw is not None else mime.render(message)
        if self.signer is not None:  # ~15 ms of RSA per message: off the event loop
            raw = await asyncio.to_thread(self.signer.sign, raw)
        try:
            await client.mail(sender, **envelope)
            await client.rcpt(message.to_email, encoding=envelope.get("encoding", "ascii"))
        except aiosmtplib.SMTPSenderRefused as exc:
            await _reset(client)
            if exc.code >= 500 and not accepted_before:
                raise ProviderError(
                    f"the SMTP server refused the sender {sender} ({exc.code}): {exc.message}"
                ) from None
            return _from_reply(message, exc.code, exc.message, permanent=Status.REJECTED)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            return _from_reply(message, exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Result(
                message.send_id, Status.RETRY, reason=f"SMTP connection lost: {_describe(exc)}"
            )
        try:
            response = await client.data(raw)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(client)
            return _from_reply(message, exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Result(
                message.send_id,
                Status.UNKNOWN,
                reason=f"SMTP connection lost during DATA: {_describe(exc)}",
            )
        return Result(message.send_id, Status.ACCEPTED, provider_id=response.message[:255])


def _from_reply(
    message: Message, code: int, text: str, *, permanent: Status = Status.BOUNCED
) -> Result:
    """4xx: retried. 5xx: `permanent` (a bounce, except for a refused sender)."""
    reason = f"SMTP {code}: {text}"[:500]
    if 400 <= code < 500:
        return Result(message.send_id, Status.RETRY, reason=reason)
    return Result(message.send_id, permanent, reason=reason)


async def _reset(client: aiosmtplib.SMTP) -> None:
    """RSET after a refused step, so the next message starts a clean transaction."""
    if client.is_connected:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
