"""The HTML pipeline: MJML -> HTML (mjml-python) -> CSS inlined (premailer) -> text (inscriptis).

Pure functions of their input; the build reports their failures at a layout line.
"""

from __future__ import annotations

import logging
import re

import cssutils  # type: ignore[import-untyped]
import mjml
import premailer  # type: ignore[import-untyped]
from inscriptis import get_text  # type: ignore[import-untyped]
from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]

from campaign.compile.mjml_check import mjml_error

# cssutils checks each property against its CSS profiles even when premailer is told not to
# validate (its merge of inline styles parses with cssutils' default), and the profiles' regexes
# compile anew in each process: 130 ms of a cold build. With no profiles nothing is checked, and
# nothing is lost: properties it does not know are kept as written.
cssutils.profile.removeProfile(all=True)

COLOR_SCHEME_META = (
    '<meta name="color-scheme" content="light dark">\n'
    '    <meta name="supported-color-schemes" content="light dark">'
)


def mjml_to_html(source: str) -> str:
    """MJML -> HTML with the colour-scheme meta tags, by MRML (the Rust port of MJML);
    MJML it cannot read raises MjmlError, which names the element and line it stopped at."""
    try:
        html = mjml.mjml2html(source)
    except ValueError as exc:
        raise mjml_error(exc, source) from exc
    if "<head>" not in html:
        raise ValueError("mjml produced no <head>")
    return html.replace("<head>", "<head>\n    " + COLOR_SCHEME_META, 1)


def inline_css(html: str) -> str:
    """premailer with the options email needs: no network, <style> kept with its !important
    (the responsive @media rules depend on both), no validation of mjml's CSS."""
    inlined = str(
        premailer.Premailer(
            html,
            allow_network=False,
            keep_style_tags=True,
            strip_important=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )
    # premailer drops the doctype; without it browsers render in quirks mode.
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined
    return squeeze(inlined)


def squeeze(html: str) -> str:
    """Drop indentation outside <pre>: Gmail clips at 102 KB. (MRML writes almost none; the
    layouts' HTML inside mj-text keeps its own, under 1 % of the example.)"""
    parts = re.split(r"(<pre[\s>].*?</pre>)", html, flags=re.DOTALL | re.IGNORECASE)
    return "".join(
        part if i % 2 else re.sub(r"\n[ \t]+", "\n", part) for i, part in enumerate(parts)
    )


def plain_text(html: str) -> str:
    """The text alternative: links as [text](url), image alt texts in brackets.

    inscriptis lays layout tables out as columns; email tables are only layout, so
    each line is trimmed and runs of blank lines become one.
    """
    raw = get_text(html, ParserConfig(display_links=True, display_images=True))
    lines = [line.strip() for line in raw.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
