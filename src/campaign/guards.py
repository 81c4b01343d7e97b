"""What a build may read: bounded YAML, and images that are images.

A campaign folder may come from anyone on the team (or a shared drive), so what it
holds is checked before it is used, each problem a clear error at its file and line:

- YAML: at most `MAX_YAML_BYTES`, nesting at most `MAX_DEPTH` deep, at most `MAX_ALIASES`
  aliases and `MAX_NODES` values once aliases are expanded (a few KB of aliases can
  otherwise stand for gigabytes), no NUL characters, and file names of sane length.
- Images: the bytes must start like a PNG, JPEG, GIF or WebP, whatever the name says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from campaign.errors import BuildError, Diagnostic, Location

MAX_YAML_BYTES = 1024 * 1024
MAX_DEPTH = 40
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_FILE_NAME = 255
"""Characters at most in a value naming a file or folder (layout, body_file, image, kind)."""
FILE_KEYS = frozenset({"layout", "body_file", "image", "kind"})

IMAGE_MAGIC = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "GIF": (b"GIF87a", b"GIF89a"),
}


class YamlLimit(yaml.MarkedYAMLError):
    """A YAML file past one of the limits above, at the mark where it went past."""


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth and aliases while it composes the document."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimit(
                    problem=f"more than {MAX_ALIASES} aliases (*name): write the values out",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimit(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def parse_yaml(path: Path, shown: str) -> tuple[yaml.Node | None, Any]:
    """The root node and data of the YAML file at `path`, within every limit; else a BuildError
    at the line (`shown` is how messages name the file)."""

    def fail(message: str, line: int | None = None) -> BuildError:
        return BuildError([Diagnostic("error", message, Location(shown, line))])

    if (size := path.stat().st_size) > MAX_YAML_BYTES:
        raise fail(f"the file is {size:,} bytes; a YAML file may be {MAX_YAML_BYTES:,} at most")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise fail("not valid UTF-8") from None
    if (nul := text.find("\x00")) >= 0:
        raise fail("a NUL character, which no text file holds", text.count("\n", 0, nul) + 1)
    loader = LimitedLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_nodes(root, fail)
        data = loader.construct_document(root) if root is not None else None
    except YamlLimit as exc:
        raise fail(f"YAML too large: {exc.problem}", _line(exc.problem_mark)) from None
    except yaml.MarkedYAMLError as exc:
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise fail(
            f"YAML syntax error: {problem}", _line(exc.problem_mark or exc.context_mark)
        ) from None
    except yaml.reader.ReaderError as exc:
        raise fail(f"YAML error: {exc}", text.count("\n", 0, exc.position) + 1) from None
    except yaml.YAMLError as exc:
        raise fail(f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return root, data


def _check_nodes(root: yaml.Node, fail: Any) -> None:
    """Walk every node once (aliases share theirs) and count what they expand to."""
    expanded: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in expanded:
            return expanded[id(node)]
        expanded[id(node)] = 1  # a recursive alias counts once
        total = 1
        if isinstance(node, yaml.ScalarNode):
            if "\x00" in node.value:
                raise fail("a NUL character in a value", _line(node.start_mark))
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
                if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode):
                    if problem := _value_problem(key.value, value.value):
                        raise fail(problem, _line(value.start_mark))
        if total > MAX_NODES:
            raise fail(
                f"YAML too large: its aliases expand to more than {MAX_NODES:,} values",
                _line(node.start_mark),
            )
        expanded[id(node)] = total
        return total

    size(root)


def _value_problem(key: str, value: str) -> str | None:
    if key in FILE_KEYS and len(value) > MAX_FILE_NAME:
        return f"{key} is {len(value):,} characters long; a file name has at most {MAX_FILE_NAME}"
    return None


def image_problem(data: bytes, name: str) -> str | None:
    """Why the bytes of image file `name` are not an image an email may show (None if they are)."""
    if any(data.startswith(m) for magics in IMAGE_MAGIC.values() for m in magics):
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return None
    return f"image {name} is not a PNG, JPEG, GIF or WebP image (its bytes say otherwise)"
