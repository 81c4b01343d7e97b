"""Headers as strict receivers want them: every .eml the outbox writes for the example, with
names in Arabic, Japanese and of 95 characters, parses with no defect under Python's
email.policy.default, and no header line passes 78 characters where it could be folded."""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from pathlib import Path

import pytest

from campaign.audience import Store
from campaign.config import load_config
from tests.conftest import run_cli

SLUG = "2018-11-wsr-primer"
LONG_NAME = "Maximiliane Éléonore " + "Quintana-" * 8 + "Östergaard-Wrightson"

NAMES = {
    "arabic@example.org": ("محمد عبد الرحمن", "الهاشمي"),
    "japanese@example.org": ("山田", "花子さん（東京事務所・広報担当）"),
    "long@example.org": (LONG_NAME[:60], LONG_NAME[60:]),
    "ascii.long@example.org": (
        "Bartholomew-Alexander Montgomery-Fitzwilliam",
        "Smythe, Jr. (Treasurer)",
    ),
}


def foldable(line: str) -> bool:
    """Whether `line` has whitespace where it could be folded (after the header's name and
    its first word, which stay together)."""
    words = line.strip(" \t").split(" ")
    return len([w for w in words if w]) > 2 or (line[:1] in " \t" and len(words) > 1)


def test_every_written_header_parses_cleanly_and_is_folded(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = workspace / "campaign.toml"
    toml.write_text(
        toml.read_text().replace(
            "[send]\n", '[send]\nunsubscribe_mailto = "unsubscribe@news.example.org"\n', 1
        )
    )
    assert (
        run_cli(capsys, "subscribers", "import", "samples/subscribers.csv", "--list", "newsletter")[
            0
        ]
        == 0
    )
    store = Store.open(load_config(workspace))
    for address, (first, last) in NAMES.items():
        store.subscribe(
            address, list_name="newsletter", source="test", first_name=first, last_name=last
        )
    assert len(f"{LONG_NAME[:60]} {LONG_NAME[60:]}") >= 95
    code, _out, err = run_cli(capsys, "send", SLUG, "--list", "newsletter", "--yes")
    assert code == 0, err
    files = sorted((workspace / "outbox" / SLUG).glob("*.eml"))
    assert len(files) == 9
    names = set()
    for path in files:
        raw = path.read_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert not parsed.defects, path
        for name, value in parsed.items():
            assert not value.defects, (path.name, name, value.defects)
        # RFC 2047's decoder (email.header) drops the whitespace between adjacent encoded-words,
        # as mail clients do; policy.default's address parser keeps it, so it is not used here.
        legacy = email.message_from_bytes(raw, policy=email.policy.compat32)
        to = str(email.header.make_header(email.header.decode_header(legacy["To"])))
        names.add(email.utils.parseaddr(to)[0])
        assert parsed["Precedence"] == "bulk"
        assert re.fullmatch(r"\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d \+0000", parsed["Date"])
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        for line in head.split("\r\n"):
            assert len(line) <= 78 or not foldable(line), (path.name, line)
        for word in re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head):
            assert len(word) <= 75, word
        assert len(str(parsed["List-Unsubscribe"])) > 78  # long enough that folding mattered
    full = {f"{first} {last}" for first, last in NAMES.values()}
    assert full <= names
