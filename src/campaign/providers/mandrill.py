"""Mailchimp Transactional (Mandrill): POST /api/1.0/messages/send.json.

Mandrill's merge tags reach the subject and the body, but not custom headers nor
List-Unsubscribe (Mandrill's documentation says so), and every recipient needs their
own one-click unsubscribe header. So each request is one recipient's own message:
its body, its headers, our send id in `metadata`; `merge` is off, so nothing in our
content is read as a merge tag, and `preserve_recipients` is false. The key travels
in the body. Mandrill answers a status per recipient; errors come as HTTP 500 with
a JSON name (Invalid_Key, PaymentRequired, ValidationError, GeneralError...).

A status is read with its reason (Mailchimp Transactional API 1.3, messages/send):
`rejected` for `unsigned`, `invalid-sender` or `test-mode-limit` is the account's
problem, not the recipient's: the message stays pending and the send stops. `queued`
for a suspended or exhausted account is not sent: Mandrill holds it, so it is unknown
(neither sent nor sent again) and the send stops, in Mandrill's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import address_object, passed_headers, sender

ACCEPTED = {"sent", "queued", "scheduled"}
REJECTED = {"rejected", "invalid"}
ACCOUNT_REJECTS = {"unsigned", "invalid-sender", "test-mode-limit"}
"""reject_reason values that say the account or sending domain, not the recipient, is at fault."""
HELD_QUEUED = {
    "account-suspended",
    "monthly-limit-reached",
    "free-trial-sends-exhausted",
    "sending-suspended",
}
"""queued_reason values under which Mandrill holds the message rather than sending it."""
RETRYABLE_ERRORS = {"GeneralError", "ServiceUnavailable"}


class Options(base.HTTPOptions):
    subaccount: str | None = None


class MandrillProvider(base.HTTPProvider):
    name = "mandrill"
    max_batch = 1
    Options: ClassVar[type[base.Options]] = Options
    default_base_url = "https://mandrillapp.com/api/1.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key = self.secret("MANDRILL_API_KEY")

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        (m,) = batch
        from_name, from_email = sender(m.from_)
        headers = passed_headers(m)
        if m.reply_to:
            headers["Reply-To"] = m.reply_to
        message: dict[str, Any] = {
            "html": m.html,
            "text": m.text,
            "subject": m.subject,
            "from_email": from_email,
            "to": [{**address_object(m.to_email, m.to_name), "type": "to"}],
            "headers": headers,
            "preserve_recipients": False,
            "merge": False,
            "auto_text": False,
            "auto_html": False,
            "tags": [m.campaign],
            "metadata": {"send_id": m.send_id, "campaign": m.campaign},
        }
        if from_name:
            message["from_name"] = from_name
        if self.options.subaccount:  # type: ignore[attr-defined]
            message["subaccount"] = self.options.subaccount  # type: ignore[attr-defined]
        return self.client.build_request(
            "POST", "/messages/send.json", json={"key": self._key, "message": message}
        )

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        try:
            body = response.json()
            name, text = str(body["name"]), str(body.get("message", ""))
        except (ValueError, KeyError, TypeError):
            return None
        if name in RETRYABLE_ERRORS:
            return self._all(
                batch, base.Status.RETRY, f"mandrill {name}: {text}", self.retry_after(response)
            )
        raise ProviderError(f"mandrill refused the send ({name}): {text}")

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code != 200:
            raise ProviderError(
                f"mandrill refused the send ({response.status_code}): {self.error_message(response)}"
            )
        by_email = {str(item.get("email", "")).lower(): item for item in response.json()}
        results = []
        for m in batch:
            item = by_email.get(m.to_email.lower())
            item = item or {}
            status = item.get("status", "")
            reason = str(item.get("reject_reason") or item.get("queued_reason") or status)
            if status == "queued" and reason in HELD_QUEUED:
                words = f"mandrill queued the message and holds it: {reason} (fix the account)"
                results.append(
                    base.Result(
                        m.send_id,
                        base.Status.UNKNOWN,
                        provider_id=item.get("_id"),
                        reason=words,
                        stops=True,
                    )
                )
            elif status == "rejected" and reason in ACCOUNT_REJECTS:
                words = f"mandrill rejected the message: {reason} (the account or sending domain)"
                results.append(base.Result(m.send_id, base.Status.BLOCKED, reason=words))
            elif status in ACCEPTED:
                results.append(
                    base.Result(m.send_id, base.Status.ACCEPTED, provider_id=item.get("_id"))
                )
            elif status in REJECTED:
                results.append(
                    base.Result(
                        m.send_id, base.Status.REJECTED, reason=f"mandrill {status}: {reason}"
                    )
                )
            else:
                results.append(
                    base.Result(
                        m.send_id,
                        base.Status.UNKNOWN,
                        reason=f"mandrill answered {status or 'nothing'} for this recipient",
                    )
                )
        return results
