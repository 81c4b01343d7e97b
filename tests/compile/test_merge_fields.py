"""Merge fields at build: the tag syntax with fallbacks, tokens in the subject, preheader and
layouts, and the warnings (unknown filters, fields no subscriber has) at their lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from campaign import placeholders
from campaign.audience import Store
from campaign.audience.importer import import_csv
from campaign.compile import build
from campaign.compile.kinds import BLOCKS, PARTIALS
from campaign.config import load_config
from campaign.errors import BuildError
from campaign.placeholders import markdown_merge_tags
from tests.compile.test_pipeline import write_campaign
from tests.conftest import own_layout

FRIEND = placeholders.field("first_name", "friend")


def test_a_fallback_travels_in_the_token_as_letters_digits_and_escapes() -> None:
    assert markdown_merge_tags('Dear {{ first_name | default("friend") }},') == (
        "Dear {{{field:first_name:friend}}},"
    )
    assert markdown_merge_tags("{{first_name|default('dear friend')}}") == (
        "{{{field:first_name:dear%20friend}}}"
    )
    token = markdown_merge_tags('{{ first_name | default("Zoë <b>\\"1\\"</b> 🎉") }}')
    assert " " not in token and "<" not in token and '"' not in token
    match = placeholders.PATTERN.fullmatch(token)
    assert match is not None and placeholders.fallback(match) == 'Zoë <b>"1"</b> 🎉'
    assert markdown_merge_tags('{{ first_name | default("") }}') == "{{{field:first_name}}}"
    assert placeholders.shown(token) == '{{ first_name | default("Zoë <b>\\"1\\"</b> 🎉") }}'


def test_unknown_filters_are_warned_and_ignored() -> None:
    warnings: list[str] = []
    assert markdown_merge_tags("{{ first_name | upper }}", warnings) == "{{{field:first_name}}}"
    assert markdown_merge_tags('{{ unsubscribe_url | default("x") }}', warnings) == (
        "{{{link:unsubscribe}}}"
    )
    assert warnings == [
        "unknown filter 'upper' in '{{ first_name | upper }}' is ignored:"
        ' merge fields take only | default("text")',
        "a link has no fallback: default() in '{{ unsubscribe_url | default(\"x\") }}' is ignored",
    ]


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("{{ first name }}", "is not a merge tag"),
        ("{{ first_name | }}", "is not a merge tag"),
        (
            "{{ first_name | default(friend) }}",
            'default takes one text in quotes: default("friend")',
        ),
        ('{{ first_name | default("a", true) }}', "default takes one text in quotes"),
        ("{{ first_name | default }}", "default takes one text in quotes"),
    ],
)
def test_tags_that_cannot_be_read_are_errors(tag: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        markdown_merge_tags(tag)


def test_tokens_with_fallbacks_survive_markdown_link_targets() -> None:
    """markdown-it percent-encodes the braces in a link target; the build restores them."""
    from markdown_it import MarkdownIt

    source = markdown_merge_tags('[me](https://e.org/?n={{ first_name | default("a b") }})')
    rendered = MarkdownIt("commonmark").render(source)
    assert "%7B%7B%7Bfield:first_name:a%20b%7D%7D%7D" in rendered
    assert 'href="https://e.org/?n={{{field:first_name:a%20b}}}"' in placeholders.restore(rendered)


MERGE_YAML = (
    "subject: '{{ first_name | default(\"Friend\") }}, your digest 🎉'\n"
    "preheader: 'Hello {{ first_name | default(\"friend\") }}'\n"
    "layout: newsletter\n"
    "sections:\n"
    "  - kind: spotlight\n"
    "    title: Hello\n"
    "    body_file: body.md\n"
)


def test_subject_preheader_and_body_get_tokens(workspace: Path) -> None:
    write_campaign(
        workspace,
        "merge",
        MERGE_YAML,
        {"body.md": 'Dear {{ first_name | default("friend") }},\n\nNews.\n'},
    )
    compiled = build(load_config(workspace), "merge")
    assert compiled.subject == placeholders.field("first_name", "Friend") + ", your digest 🎉"
    assert compiled.preheader == f"Hello {FRIEND}"
    assert f"Dear {FRIEND}," in compiled.html and f"Dear {FRIEND}," in compiled.text
    assert re.search(
        rf"<title>\s*{re.escape(compiled.subject)}\s*</title>", compiled.html
    )  # mj-title: filled per recipient
    assert f"Hello {FRIEND}" in compiled.html  # mj-preview
    assert not compiled.warnings


def test_a_layout_asks_for_a_field_with_a_fallback(workspace: Path) -> None:
    layout = own_layout(workspace)
    template = layout / "layout.mjml.j2"
    template.write_text(
        template.read_text().replace(
            "{% for section in sections %}",
            "<mj-section><mj-column><mj-text>Hi {{ field('first_name', default='reader & co') }}"
            "</mj-text></mj-column></mj-section>\n{% for section in sections %}",
        )
    )
    compiled = build(load_config(workspace), "2018-11-wsr-primer")
    assert "Hi {{{field:first_name:reader%20%26%20co}}}" in compiled.html


def test_bad_tag_in_the_subject_is_an_error_at_its_line(workspace: Path) -> None:
    write_campaign(
        workspace,
        "bad-subject",
        "layout: newsletter\npreheader: p\nsubject: '{{ first name }} news'\nsections: []\n",
    )
    with pytest.raises(BuildError) as info:
        build(load_config(workspace), "bad-subject")
    assert (
        "campaigns/bad-subject/campaign.yaml:3: error: '{{ first name }}' is not a merge tag"
        in (str(info.value))
    )


def test_unknown_filters_and_fields_are_warned_at_their_lines(workspace: Path) -> None:
    partial = own_layout(workspace) / PARTIALS / "spotlight.mjml.j2"  # overrides the library's
    partial.parent.mkdir(exist_ok=True)
    lines = (BLOCKS / "spotlight.mjml.j2").read_text().splitlines()
    lines.insert(
        2, "{# asks for {{ field('member_since') }} #}<mj-raw>{{ field('member_since') }}</mj-raw>"
    )
    partial.write_text("\n".join(lines) + "\n")
    write_campaign(
        workspace,
        "warned",
        MERGE_YAML.replace("Hello {{", "Hello {{ frist_name }} {{"),
        {"body.md": "Dear {{ first_name | capitalize }},\n\nYour city: {{ city }}.\n"},
    )
    config = load_config(workspace)
    warnings = build(config, "warned").warnings
    assert (
        "campaigns/warned/body.md:1: warning: unknown filter 'capitalize' in"
        " '{{ first_name | capitalize }}' is ignored" in "\n".join(warnings)
    )
    unknown = {w.split(": warning: ")[0]: w for w in warnings if "no subscriber has" in w}
    assert set(unknown) == {
        "campaigns/warned/campaign.yaml:2",  # frist_name, in the preheader
        "campaigns/warned/body.md:3",  # city
        "layouts/newsletter/partials/spotlight.mjml.j2:3",  # member_since
    }
    assert "'frist_name'" in unknown["campaigns/warned/campaign.yaml:2"]

    # Once the audience has a column, its field is known.
    csv = workspace / "people.csv"
    csv.write_text("email,first_name,city\nann@example.org,Ann,Lyon\n")
    import_csv(Store.open(config), csv, "newsletter")
    after = [w for w in build(config, "warned").warnings if "no subscriber has" in w]
    assert len(after) == 2 and not any("'city'" in w for w in after)


def test_core_fields_never_open_the_database(workspace: Path) -> None:
    write_campaign(
        workspace, "core", MERGE_YAML, {"body.md": "{{ name }} {{ last_name }} {{ email }}\n"}
    )
    assert not build(load_config(workspace), "core").warnings
    assert not (workspace / "campaign.db").exists()


GREETING = "greeting"


def write_greeting(workspace: Path) -> str:
    """A campaign greeting each reader by name, with fallbacks in the subject, preheader and body."""
    write_campaign(
        workspace,
        GREETING,
        MERGE_YAML,
        {
            "body.md": (
                'Dear {{ first_name | default("friend") }},\n\n'
                'From {{ city | default("<somewhere>") }}: news.\n'
            )
        },
    )
    return GREETING


def test_a_tag_in_a_plain_text_field_is_warned_at_its_line(workspace: Path) -> None:
    write_campaign(
        workspace,
        "literal",
        MERGE_YAML.replace("title: Hello", 'title: Hello {{ first_name | default("you") }}'),
        {"body.md": "News.\n"},
    )
    (warning,) = build(load_config(workspace), "literal").warnings
    assert warning == (
        "campaigns/literal/campaign.yaml:6: warning: '{{ first_name | default(\"you\") }}' is sent"
        " as typed: merge tags are filled in Markdown fields, the subject and the preheader"
        " (in a layout: field('name'))"
    )
