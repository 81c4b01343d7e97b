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

Which unknown deliveries Mandrill took (`known`) is asked of its message search
(messages/search.json: Lucene terms, by default over every indexed field, custom metadata
included), our send ids joined by OR, many a search: it "may be called up to 20 times per
minute". Metadata is searchable only once the account indexes its field (Settings > Custom
Metadata; metadata/list.json says which are `active`): without `send_id` indexed the search
finds nothing, so nothing is resent on its word. Messages stay searchable for 30 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
SEARCH_FIELD = "send_id"
"""The metadata field our send id rides in, which the account must index to search by it."""
SEARCH_IDS = 100
"""Send ids one search asks for (OR): its results stay far below the limit of 1,000."""
SEARCH_LIMIT = 1000
"""Most results one search gives (its `limit` maximum); a full page may hide more."""
SEARCHES = 19
"""Searches one `known` call makes at most: 20 calls a minute, one of them metadata/list."""
SEARCHABLE = timedelta(days=30)
"""How long Mandrill keeps a delivered message searchable."""
NOT_TAKEN = {"rejected", "canceled"}
"""Search states of messages Mandrill did not send: sent again, they get a definite answer."""


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

    async def known(self, unknown: Sequence[base.Unknown]) -> set[str]:
        """The message search by our send ids, a hundred a search, over the days the requests
        were made in (a day more each way: the search takes dates, and clocks differ)."""
        if not unknown:
            return set()
        oldest = min(u.since for u in unknown)
        if oldest < datetime.now(UTC) - SEARCHABLE:
            raise ProviderError(
                f"mandrill keeps messages searchable for {SEARCHABLE.days} days, and unknown "
                f"deliveries date from {oldest:%Y-%m-%d}; nothing was resent"
            )
        send_ids = [u.send_id for u in unknown]
        chunks = [send_ids[i : i + SEARCH_IDS] for i in range(0, len(send_ids), SEARCH_IDS)]
        if len(chunks) > SEARCHES:
            raise ProviderError(
                f"mandrill's message search takes 20 calls a minute: {len(send_ids)} unknown "
                f"deliveries are more than {SEARCHES * SEARCH_IDS} it can be asked about at once; "
                "nothing was resent"
            )
        await self._searchable()
        window = {
            "date_from": (oldest - timedelta(days=1)).date().isoformat(),
            "date_to": (max(u.until for u in unknown) + timedelta(days=1)).date().isoformat(),
        }
        found: set[str] = set()
        for chunk in chunks:
            query = " OR ".join(f'"{send_id}"' for send_id in chunk)
            body = {"key": self._key, "query": query, "limit": SEARCH_LIMIT, **window}
            results = await self.lookup("message search", "/messages/search.json", json=body)
            if not isinstance(results, list) or len(results) >= SEARCH_LIMIT:
                raise ProviderError(
                    f"mandrill's message search answered {str(results)[:200]}, which cannot "
                    "tell; nothing was resent"
                )
            wanted = set(chunk)
            for item in results:
                metadata = item.get("metadata") if isinstance(item, dict) else None
                send_id = metadata.get(SEARCH_FIELD) if isinstance(metadata, dict) else None
                if send_id in wanted and item.get("state") not in NOT_TAKEN:
                    found.add(send_id)
        return found

    async def _searchable(self) -> None:
        """Raise unless the account indexes `send_id`: else the search cannot find our messages,
        and every unknown delivery would be sent again."""
        fields = await self.lookup(
            "metadata fields", "/metadata/list.json", json={"key": self._key}
        )
        states = (
            {str(f.get("name")): f.get("state") for f in fields if isinstance(f, dict)}
            if isinstance(fields, list)
            else {}
        )
        if states.get(SEARCH_FIELD) != "active":
            now = f" (it is {states[SEARCH_FIELD]!r})" if SEARCH_FIELD in states else ""
            raise ProviderError(
                f"mandrill's message search cannot find our messages: the account does not "
                f"index the metadata field {SEARCH_FIELD!r}{now}; add it under Settings > Custom "
                "Metadata and run again once it is active; nothing was resent"
            )
