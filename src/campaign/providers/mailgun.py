"""Mailgun: POST /v3/{domain}/messages, up to 1,000 recipients per call.

A batch is one shared message with `recipient-variables`: Mailgun then sends each
`to` address its own copy, with `%recipient.KEY%` filled from that recipient's
variables, in the body, the subject and header fields alike. Without
recipient-variables every recipient would see the whole To list, so a request is
never built without them. Our send id reaches Mailgun's events as the custom
variable `send_id` (v:send_id, per recipient). A recipient whose own values hold
`%recipient` goes alone, without recipient-variables, so Mailgun carries it as it is
(providers.substituting).

A 403 is Mailgun refusing the account or domain, in its words ("not allowed to send
large batches yet", a sandbox domain's authorised recipients), not bad credentials
(that is 401). A 429 holds the send until the Retry-After or the date in its message
("try again after <date>").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers import base
from campaign.providers.batching import passed_headers, shared, split_headers
from campaign.providers.substituting import Clash, SubstitutingProvider

REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


class Options(base.HTTPOptions):
    """`base_url`, when set, overrides the region's API host."""

    domain: str
    """The sending domain as set up in Mailgun (e.g. mg.example.org)."""
    region: Literal["us", "eu"] = "us"


class MailgunProvider(SubstitutingProvider):
    name = "mailgun"
    max_batch = 1000
    markers = ("%recipient",)
    syntax = re.compile(r"%recipient[^%]*%?")
    Options: ClassVar[type[base.Options]] = Options
    default_base_url = REGIONS["us"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client.auth = httpx.BasicAuth("api", self.secret("MAILGUN_API_KEY"))

    @property
    def base_url(self) -> str:
        options: Options = self.options  # type: ignore[assignment]
        return (options.base_url or REGIONS[options.region]).rstrip("/")

    def _post(self, fields: list[tuple[str, str]]) -> httpx.Request:
        options: Options = self.options  # type: ignore[assignment]
        return self.client.build_request(
            "POST",
            f"/v3/{quote(options.domain, safe='')}/messages",
            files=[(name, (None, value)) for name, value in fields],
        )

    def _single(self, m: Message) -> httpx.Request:
        """One message as it is: no recipient-variables, so nothing in it is substituted."""
        fields = [("from", m.from_), ("to", m.to), ("subject", m.subject)]
        fields += [("text", m.text), ("html", m.html)]
        if m.reply_to:
            fields.append(("h:Reply-To", m.reply_to))
        fields += [(f"h:{name}", value) for name, value in passed_headers(m).items()]
        fields += [("v:send_id", m.send_id), ("v:campaign", m.campaign)]
        return self._post(fields)

    def build_request(self, batch: Sequence[Message]) -> httpx.Request:
        if len(batch) == 1:
            return self._single(batch[0])
        if len({m.to_email.lower() for m in batch}) != len(batch):
            raise Clash  # recipient-variables are keyed by address: one request each
        variables: list[dict[str, str]] = [{"send_id": m.send_id} for m in batch]
        fields: list[tuple[str, str]] = [("from", batch[0].from_)]
        fields += [("to", m.to) for m in batch]
        for field, prefix, texts in (
            ("subject", "s", [m.subject for m in batch]),
            ("text", "t", [m.text for m in batch]),
            ("html", "h", [m.html for m in batch]),
        ):
            body = shared(texts)
            fields.append((field, self.render(body, lambda i, p=prefix: f"%recipient.{p}{i}%")))  # type: ignore[misc]
            for values, own in zip(body.values, variables, strict=True):
                own.update({f"{prefix}{i}": value for i, value in enumerate(values)})
        common, own_headers = split_headers(batch, self.name)
        if batch[0].reply_to:
            fields.append(("h:Reply-To", batch[0].reply_to))
        fields += [(f"h:{name}", value) for name, value in common.items()]
        for name in own_headers[0]:
            fields.append((f"h:{name}", f"%recipient.h:{name}%"))
        for headers, own in zip(own_headers, variables, strict=True):
            own.update({f"h:{name}": value for name, value in headers.items()})
        fields += [("v:send_id", "%recipient.send_id%"), ("v:campaign", batch[0].campaign)]
        recipient_variables = {m.to_email: v for m, v in zip(batch, variables, strict=True)}
        fields.append(("recipient-variables", json.dumps(recipient_variables, ensure_ascii=False)))
        return self._post(fields)

    def read_error(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result] | None:
        if response.status_code == 403:
            raise ProviderError(f"mailgun refused the send (403): {self.error_message(response)}")
        return None

    def retry_after(self, response: httpx.Response) -> float | None:
        """Retry-After, else the date in Mailgun's words ("try again after <date>")."""
        seconds = super().retry_after(response)
        return (
            seconds
            if seconds is not None
            else base.retry_after_in_text(self.error_message(response))
        )

    def parse_response(
        self, batch: Sequence[Message], response: httpx.Response
    ) -> list[base.Result]:
        if response.status_code == 404:
            raise ProviderError(
                f"mailgun does not know the domain {self.options.domain!r} at {self.base_url} "  # type: ignore[attr-defined]
                '(check [provider] domain, and region = "eu" for EU domains)'
            )
        if response.status_code != 200:
            raise ProviderError(
                f"mailgun refused the batch ({response.status_code}): {self.error_message(response)}"
            )
        try:
            message_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                f"mailgun answered 200 without a message id: {response.text[:200]}"
            ) from None
        return [base.Result(m.send_id, base.Status.ACCEPTED, provider_id=message_id) for m in batch]
