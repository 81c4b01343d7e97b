"""Abuse resistance without tracking: no cookie, no script of ours, no IP kept in clear.

- a honeypot field people never see (bots fill every field);
- a minimum fill time: the hosted form carries a signed timestamp, and a form sent
  back sooner than `min_fill_seconds` is taken for a bot (the pasted snippet has no
  render time: it carries a signed mark of its list instead, and relies on the rest);
- per-IP and per-address hourly limits (`flow.within_limit`);
- optionally a CAPTCHA service's verification (hCaptcha, Friendly Captcha).

A bot's submission gets the same answer as a person's, and nothing is sent.
"""

from __future__ import annotations

import logging
import time

import httpx
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup, escape

from campaign.signup.settings import SignupSettings

log = logging.getLogger("campaign.web")

HONEYPOT = "website"
"""The hidden field's name: a plausible one, so form-filling bots fill it."""
STARTED = "started"
"""The field holding the signed render time (hosted form) or the snippet's mark."""
CAPTCHA_FIELDS = {"hcaptcha": "h-captcha-response", "friendly": "frc-captcha-solution"}
MAX_FORM_AGE = 24 * 3600
"""A hosted form older than this is refused (as if too fast): reload the page."""
_CAPTCHA = {
    "hcaptcha": (
        "https://js.hcaptcha.com/1/api.js",
        '<div class="h-captcha" data-sitekey="{}"></div>',
        "script-src https://js.hcaptcha.com https://*.hcaptcha.com; "
        "frame-src https://*.hcaptcha.com; connect-src https://*.hcaptcha.com",
    ),
    "friendly": (
        "https://cdn.jsdelivr.net/npm/friendly-challenge@0.9.18/widget.module.min.js",
        '<div class="frc-captcha" data-sitekey="{}"></div>',
        "script-src https://cdn.jsdelivr.net 'wasm-unsafe-eval'; worker-src blob:; "
        "connect-src https://api.friendlycaptcha.com",
    ),
}


class FormTokens:
    """The signed value of the `started` field."""

    def __init__(self, secret_key: str) -> None:
        self._timed = URLSafeTimedSerializer(secret_key, salt="campaign.signup.form")
        self._snippet = URLSafeTimedSerializer(secret_key, salt="campaign.signup.snippet")

    def hosted(self, list_name: str) -> str:
        return str(self._timed.dumps(list_name))

    def snippet(self, list_name: str) -> str:
        return str(self._snippet.dumps(list_name))

    def plausible(self, list_name: str, value: str, min_seconds: float) -> bool:
        """A person could have filled the form of `list_name` that carried `value`."""
        try:
            signed, at = self._timed.loads(value, max_age=MAX_FORM_AGE, return_timestamp=True)
            return bool(signed == list_name) and time.time() - at.timestamp() >= min_seconds
        except BadSignature:
            pass
        try:
            return bool(self._snippet.loads(value) == list_name)
        except BadSignature:
            return False


async def captcha_passed(
    settings: SignupSettings,
    secret: str,
    answer: str,
    http: httpx.AsyncClient,
) -> bool:
    """Ask the CAPTCHA service whether `answer` (the widget's field) is a solved challenge."""
    url = settings.verify_url
    if url is None:
        return True
    if not answer:
        return False
    key = "response" if settings.captcha == "hcaptcha" else "solution"
    data = {"secret": secret, key: answer}
    if settings.captcha_sitekey:
        data["sitekey"] = settings.captcha_sitekey
    try:
        response = await http.post(url, data=data, timeout=10.0)
        return response.status_code == 200 and response.json().get("success") is True
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("captcha verification failed: %s", type(exc).__name__)
        return False


def captcha_parts(signup: SignupSettings) -> tuple[str, Markup, str]:
    """The CAPTCHA service's script URL, its widget's markup, and the CSP sources it needs."""
    script, widget, csp = _CAPTCHA[signup.captcha]
    return script, Markup(widget.format(escape(signup.captcha_sitekey))), csp
