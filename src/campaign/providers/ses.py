"""Amazon SES v2: SendEmail for one message, SendBulkEmail for up to 50.

SendBulkEmail takes one inline template (subject, text, HTML with `{{name}}`
replacement tags; SES does not HTML-escape replacement values, and ours are already
escaped) and, per recipient, its replacement data, its own headers
(ReplacementHeaders: List-Unsubscribe...) and tags (`send_id`, which SES event
publishing reports back). Requests are signed with SigV4 by httpx-auth's AWS4Auth.

Values are data: a recipient whose own values hold `{{` goes alone through SendEmail,
which SES sends as it is (providers.substituting). Throttling ("Maximum sending rate exceeded") holds the
send without using up attempts. Refusals of the account (the sandbox's "Email address is
not verified", a suspended or paused account, an unverified MAIL FROM domain, the daily
quota) stop the send with SES's words, everyone not sent still pending; the error names
are SES v2's (botocore's sesv2 model: SendEmail errors and BulkEmailStatus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from email.utils import formataddr
from typing import Any, ClassVar

import httpx
from httpx_auth import AWS4Auth

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import passed_headers, sender, shared, split_headers
from campaign.providers.substituting import SubstitutingProvider

THROTTLED = {
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
}
ACCOUNT_ERRORS = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
}
"""SendEmail errors no message of the send gets past."""
RETRY_STATUSES = {"TRANSIENT_FAILURE", "FAILED"}
REJECTED_STATUSES = {"MESSAGE_REJECTED", "INVALID_PARAMETER"}
NOT_VERIFIED = "not verified"
"""In a MessageRejected: the sandbox (or an unverified sender), not the recipient."""
DAILY_QUOTA = "Daily message quota exceeded"
PAUSED = (
    f"ses: {DAILY_QUOTA}. The send is paused; run `campaign send` again when the "
    "24-hour quota has room, and it resumes where it stopped."
)


class Options(base.HTTPOptions):
    """`base_url` defaults to https://email.{region}.amazonaws.com."""

    region: str = "us-east-1"
    configuration_set: str | None = None
    """Configuration set for event publishing (bounces, complaints) to SNS."""


def _address(value: str) -> str:
    """An address SES takes: a non-ASCII display name RFC 2047-encoded."""
    name, email = sender(value)
    return formataddr((name, email), charset="utf-8") if name else email


def _tag(value: str) -> str:
    """SES tag values: ASCII letters, digits, underscores and dashes, at most 256."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)[:256]


def _headers(headers: dict[str, str]) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in headers.items()]


class SESProvider(SubstitutingProvider):
    name = "ses"
    max_batch = 50
    markers = ("{{",)
    syntax = re.compile(r"\{\{[^}]*\}*")
    escape = "\\"
    """Handlebars: a backslash before a tag makes it literal."""
    Options: ClassVar[type[base.Options]] = Options

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        token = self.env.get("AWS_SESSION_TOKEN") or None
        self.client.auth = AWS4Auth(
            access_id=self.secret("AWS_ACCESS_KEY_ID"),
            secret_key=self.secret("AWS_SECRET_ACCESS_KEY"),
            region=self.options.region,  # type: ignore[attr-defined]
            service="ses",
            security_token=token,
        )

    @property
    def base_url(self) -> str:
        options: Options = self.options  # type: ignore[assignment]
        return (options.base_url or f"https://email.{options.region}.amazonaws.com").rstrip("/")

    def _common(self, message: Message) -> dict[str, Any]:
        options: Options = self.options  # type: ignore[assignment]
        payload: dict[str, Any] = {"FromEmailAddress": _address(message.from_)}
        if message.reply_to:
            payload["ReplyToAddresses"] = [_address(message.reply_to)]
        if options.configuration_set:
            payload["ConfigurationSetName"] = options.configuration_set
        return payload

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        if len(batch) == 1:
            return self._send_email(batch[0])
        common, own_headers = split_headers(batch, self.name)
        template: dict[str, str] = {}
        data: list[dict[str, str]] = [{} for _ in batch]
        for field, prefix, texts in (
            ("Subject", "s", [m.subject for m in batch]),
            ("Text", "t", [m.text for m in batch]),
            ("Html", "h", [m.html for m in batch]),
        ):
            body = shared(texts)
            template[field] = self.render(body, lambda i, p=prefix: f"{{{{{p}{i}}}}}")  # type: ignore[misc]
            for values, own in zip(body.values, data, strict=True):
                own.update({f"{prefix}{i}": value for i, value in enumerate(values)})
        payload = self._common(batch[0])
        payload["DefaultContent"] = {
            "Template": {
                "TemplateContent": template,
                "TemplateData": "{}",
                "Headers": _headers(common),
            }
        }
        payload["DefaultEmailTags"] = [{"Name": "campaign", "Value": _tag(batch[0].campaign)}]
        payload["BulkEmailEntries"] = [
            {
                "Destination": {"ToAddresses": [_address(m.to)]},
                "ReplacementEmailContent": {
                    "ReplacementTemplate": {
                        "ReplacementTemplateData": json.dumps(own, ensure_ascii=False)
                    }
                },
                "ReplacementHeaders": _headers(headers),
                "ReplacementTags": [{"Name": "send_id", "Value": _tag(m.send_id)}],
            }
            for m, own, headers in zip(batch, data, own_headers, strict=True)
        ]
        return self.client.build_request("POST", "/v2/email/outbound-bulk-emails", json=payload)

    def _send_email(self, message: Message) -> httpx.Request:
        payload = self._common(message)
        payload["Destination"] = {"ToAddresses": [_address(message.to)]}
        payload["Content"] = {
            "Simple": {
                "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": message.text, "Charset": "UTF-8"},
                    "Html": {"Data": message.html, "Charset": "UTF-8"},
                },
                "Headers": _headers(passed_headers(message)),
            }
        }
        payload["EmailTags"] = [
            {"Name": "campaign", "Value": _tag(message.campaign)},
            {"Name": "send_id", "Value": _tag(message.send_id)},
        ]
        return self.client.build_request("POST", "/v2/email/outbound-emails", json=payload)

    def _error(self, response: httpx.Response) -> tuple[str, str]:
        """(error type, message) of an AWS JSON error reply."""
        kind = response.headers.get("x-amzn-ErrorType", "")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        kind = kind or str(body.get("__type") or body.get("code") or "")
        message = str(body.get("message") or body.get("Message") or response.text[:300])
        return kind.split(":")[0].split("#")[-1], message

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        kind, message = self._error(response)
        if DAILY_QUOTA.lower() in message.lower():
            raise ProviderError(PAUSED)
        if kind in THROTTLED or "maximum sending rate exceeded" in message.lower():
            return self._all(
                batch,
                base.Status.THROTTLED,
                f"ses throttled: {kind}: {message}",
                self.retry_after(response),
            )
        if response.status_code >= 500 or response.status_code in (401, 403):
            return None
        if kind in ACCOUNT_ERRORS or (kind == "MessageRejected" and NOT_VERIFIED in message):
            raise ProviderError(f"ses refused the send ({kind}): {message}")
        if kind == "MessageRejected":
            return self._all(batch, base.Status.REJECTED, f"ses rejected the message: {message}")
        raise ProviderError(f"ses refused the request ({response.status_code} {kind}): {message}")

    def error_message(self, response: httpx.Response) -> str:
        kind, message = self._error(response)
        return f"{kind}: {message}" if kind else message

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        body = response.json()
        if len(batch) == 1 and "MessageId" in body:
            return [
                base.Result(batch[0].send_id, base.Status.ACCEPTED, provider_id=body["MessageId"])
            ]
        entries = body.get("BulkEmailEntryResults")
        if not isinstance(entries, list) or len(entries) != len(batch):
            raise ProviderError(
                f"ses answered without a result per recipient: {response.text[:300]}"
            )
        results = []
        for message, entry in zip(batch, entries, strict=True):
            status, error = entry.get("Status", ""), entry.get("Error") or entry.get("Status", "")
            reason = f"ses: {status}: {error}"
            if status == "SUCCESS":
                results.append(
                    base.Result(
                        message.send_id, base.Status.ACCEPTED, provider_id=entry.get("MessageId")
                    )
                )
            elif status == "ACCOUNT_THROTTLED":
                results.append(base.Result(message.send_id, base.Status.THROTTLED, reason=reason))
            elif status in RETRY_STATUSES:
                results.append(base.Result(message.send_id, base.Status.RETRY, reason=reason))
            elif status in REJECTED_STATUSES and NOT_VERIFIED not in str(error):
                results.append(base.Result(message.send_id, base.Status.REJECTED, reason=reason))
            else:
                # The account, not the recipient (ACCOUNT_SUSPENDED, ACCOUNT_SENDING_PAUSED,
                # MAIL_FROM_DOMAIN_NOT_VERIFIED, the daily quota, the sandbox...): stop the send.
                words = PAUSED if status == "ACCOUNT_DAILY_QUOTA_EXCEEDED" else reason
                results.append(base.Result(message.send_id, base.Status.BLOCKED, reason=words))
        return results
