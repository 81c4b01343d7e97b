"""`[signup]` and `[lists.<name>]` in campaign.toml: which lists have a hosted form, and how."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaign.signup.texts import texts

CAPTCHA_SECRET_ENV = "CAMPAIGN_CAPTCHA_SECRET"
CAPTCHA_VERIFY_URLS = {
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
    "friendly": "https://api.friendlycaptcha.com/api/v1/siteverify",
}
_FIELD = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ListSettings(BaseModel):
    """`[lists.<name>]`: a list with a hosted signup form at /subscribe/<name>."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(
        default=None, description="The form's heading; default: the list's name."
    )
    description: str | None = Field(default=None, description="A sentence under the heading.")
    topics: list[str] = Field(default_factory=list, description="Topics offered as checkboxes.")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description='Extra fields, name = label: city = "Your city" (stored like an import column).',
    )
    double_opt_in: bool = Field(
        default=True, description="Confirm by email before anyone is mailed (the default)."
    )
    welcome: str | None = Field(
        default=None,
        description="A campaign (slug) sent to each person who joins through the form.",
    )
    consent: str | None = Field(
        default=None,
        description="The consent sentence shown by the button and recorded; default: the language's.",
    )

    def consent_text(self, language: str, organisation: str, list_name: str) -> str:
        """The exact sentence shown by the button, and recorded with the consent."""
        return self.consent or texts(language)["consent"].format(org=organisation, list=list_name)

    @field_validator("fields")
    @classmethod
    def _field_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _FIELD.match(name) or name in ("email", "name"):
                raise ValueError(
                    f"field {name!r}: use lower-case letters, digits and _ (not email or name)"
                )
        return value


class SignupSettings(BaseModel):
    """`[signup]`: the limits and checks every hosted form shares."""

    model_config = ConfigDict(extra="forbid")

    confirm_days: int = Field(default=7, ge=1, description="A confirmation link works this long.")
    purge_unconfirmed_days: int = Field(
        default=14, ge=1, description="Unconfirmed signups are deleted after this many days."
    )
    min_fill_seconds: float = Field(
        default=3.0, ge=0, description="A hosted form sent back sooner is taken for a bot."
    )
    per_ip_per_hour: int = Field(default=20, ge=1, description="Signups per client IP per hour.")
    per_address_per_hour: int = Field(
        default=5, ge=1, description="Signups per email address per hour (the email: once an hour)."
    )
    captcha: Literal["none", "hcaptcha", "friendly"] = "none"
    captcha_sitekey: str = ""
    captcha_verify_url: str | None = Field(
        default=None, description="Default: the service's own siteverify URL."
    )

    @property
    def verify_url(self) -> str | None:
        if self.captcha == "none":
            return None
        return self.captcha_verify_url or CAPTCHA_VERIFY_URLS[self.captcha]
