"""The HTML form `campaign form LIST` prints, to paste into the organisation's own website.

Plain HTML, no script (unless a CAPTCHA is on: then its service's widget script): it
posts cross-site to /subscribe/<list> on `public_base_url` and shows that page's
answer. The same fields as the hosted form (one template), with a signed mark of its
list in place of the render time; the website's own stylesheet styles it.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from campaign.config import Config
from campaign.errors import UserError
from campaign.signup.guard import FormTokens, captcha_parts
from campaign.signup.texts import texts
from campaign.web.site import TEMPLATES


def form_snippet(config: Config, list_name: str) -> str:
    settings = config.lists.get(list_name)
    if settings is None:
        known = ", ".join(sorted(config.lists)) or "none: add [lists.<name>] to campaign.toml"
        raise UserError(f"list {list_name!r} has no signup form (lists with a form: {known})")
    extra: dict[str, Any] = {}
    script = ""
    if config.signup.captcha != "none":
        url, extra["captcha_widget"], _ = captcha_parts(config.signup)
        script = f'<script src="{url}" async defer></script>\n'
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("_signup_fields.html").render(
        t=texts(config.language),
        settings=settings,
        consent=settings.consent_text(config.language, config.organisation.name, list_name),
        action=f"{config.public_base_url}/subscribe/{list_name}",
        started=FormTokens(config.secret_key).snippet(list_name),
        values={},
        **extra,
    )
    comment = f"<!-- {config.organisation.name}: signup form for {list_name} (campaign form) -->"
    return f"{comment}\n{script}{html}"
