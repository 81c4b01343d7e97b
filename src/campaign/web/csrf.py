"""CSRF protection without cookies: a signed token in a hidden field, bound to the link.

Every form of ours sits on a page reached through a signed link (/unsubscribe/<token>,
/preferences/<token>, /forward/<token>). The form carries a token that signs a hash
of that link token, so a form posted without it, with one from another link, or
with an old one (older than a day) is refused. No cookie, no session, no state.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, URLSafeTimedSerializer

FIELD = "csrf"
"""The hidden field's name in every form."""

MAX_AGE_SECONDS = 24 * 3600


class CSRF:
    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="campaign.web.csrf")

    @staticmethod
    def _binding(link_token: str) -> str:
        return hashlib.sha256(link_token.encode()).hexdigest()[:32]

    def token(self, link_token: str) -> str:
        """The hidden field's value for forms on the page of `link_token`."""
        return str(self._serializer.dumps(self._binding(link_token)))

    def valid(self, link_token: str, value: str | None) -> bool:
        """Whether `value` was issued for the page of `link_token` within the last day."""
        if not value:
            return False
        try:
            bound = self._serializer.loads(value, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return bool(bound == self._binding(link_token))
