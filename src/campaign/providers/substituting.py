"""Services that fill per-recipient values into one shared body: SES, SendGrid, Mailgun.

Merge values are data. A service expands its own template syntax wherever it sees it, so
a subscriber named `{{x}}` (SES), `{%x%}` (SendGrid) or `%recipient.x%` (Mailgun), put
into the shared body or its values, could be read as a tag; none of these services
documents an escape. So a message that holds the service's syntax anywhere goes alone,
through the service's request for one message, which carries it as it is (SES SendEmail,
a SendGrid personalization without substitutions, a Mailgun message without
recipient-variables). If the shared body of the others would still read as more than our
own tags (a brace next to a tag, say), they go one by one too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import ClassVar

from campaign.errors import ProviderError
from campaign.message import Message
from campaign.providers.base import HTTPProvider, Result, Status
from campaign.providers.batching import Shared


class Clash(Exception):
    """The shared body with our tags in it would read as other tags too: send one by one."""


HALTING = (Status.THROTTLED, Status.BLOCKED)
"""Answers after which the rest of a batch is not sent now."""


class SubstitutingProvider(HTTPProvider):
    syntax: ClassVar[re.Pattern[str]]
    """What the service reads as its own tag (at least every form our tags take)."""

    def exposed(self, message: Message) -> bool:
        """Whether the message holds text the service would read as its template syntax."""
        texts = (message.subject, message.html, message.text, *message.headers.values())
        return any(self.syntax.search(text) for text in texts)

    def render(self, body: Shared, tag: Callable[[int], str]) -> str:
        """The shared body with our tags; Clash when the service would read any other tag in it."""
        template = body.render(tag)
        if not body.slots:
            return template  # no values sent: the service substitutes nothing
        found = [m.group(0) for m in self.syntax.finditer(template)]
        if found != [tag(i) for i in range(body.slots)]:
            raise Clash
        return template

    async def send(self, batch: Sequence[Message]) -> list[Result]:
        together = [m for m in batch if not self.exposed(m)]
        groups = [together] if together else []
        groups += [[m] for m in batch if self.exposed(m)]
        results: dict[str, Result] = {}
        halt: Result | None = None
        while groups:
            group = groups.pop(0)
            if halt is not None:
                results.update({m.send_id: replace(halt, send_id=m.send_id) for m in group})
                continue
            try:
                answers = await super().send(group)
            except Clash:
                if len(group) == 1:
                    raise
                groups[:0] = [[m] for m in group]
                continue
            except ProviderError as exc:
                if not results:
                    raise
                # Part of the batch went out: keep those, and hold the rest back.
                answers = self._all(group, Status.BLOCKED, str(exc))
            results.update({r.send_id: r for r in answers})
            halt = next((r for r in answers if r.status in HALTING), None)
        return [results[m.send_id] for m in batch]
