"""Placeholder tokens: how a compiled campaign marks what each recipient fills in.

A layout asks for `{{ link('unsubscribe') }}` or `{{ field('first_name') }}`; compile
writes a token such as `{{{link:unsubscribe}}}` there. Tokens hold no spaces
(premailer percent-encodes spaces inside href values) and survive mjml and
premailer byte for byte, so personalisation is only string filling.
"""

from __future__ import annotations

import re
from typing import Literal

LINKS = ("view", "forward", "preferences", "unsubscribe")
"""The four links every message carries. `view` is the same for every recipient."""

Kind = Literal["link", "field"]

PATTERN = re.compile(r"\{\{\{(link|field):([A-Za-z_][A-Za-z0-9_]*)\}\}\}")
"""Matches one token; group 1 is the kind, group 2 the name."""


def token(kind: Kind, name: str) -> str:
    """The token for a link or a merge field, e.g. `{{{field:first_name}}}`."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"placeholder names are letters, digits and underscores: {name!r}")
    if kind == "link" and name not in LINKS:
        raise ValueError(f"unknown link {name!r}; known links: {', '.join(LINKS)}")
    return "{{{" + f"{kind}:{name}" + "}}}"


def link(name: str) -> str:
    return token("link", name)


def field(name: str) -> str:
    return token("field", name)


def found(text: str) -> set[str]:
    """The placeholders in `text`, as "kind:name" strings."""
    return {f"{m.group(1)}:{m.group(2)}" for m in PATTERN.finditer(text)}
