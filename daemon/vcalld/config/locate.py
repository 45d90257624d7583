"""Line numbers for TOML key paths, which `tomllib` does not report."""

from __future__ import annotations

import re

KeyPath = tuple[str | int, ...]

_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_OPENERS = {"[": 1, "{": 1, "]": -1, "}": -1}


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return [part.strip("\"'") for part in parts]


def _value_depth_change(line: str) -> int:
    """Net bracket depth a value line opens, ignoring brackets inside strings and comments."""
    depth = 0
    quote = ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        else:
            depth += _OPENERS.get(char, 0)
    return depth


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every table header and key in `text` to its 1-based line.

    Arrays of tables get their index in the path, as in a validation error's `loc`.
    Continuation lines of multi-line arrays and inline tables are skipped.
    """
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_counts: dict[KeyPath, int] = {}
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if depth > 0:
            depth += _value_depth_change(line)
            continue
        if match := _ARRAY_TABLE.match(line):
            base = tuple(_split_dotted(match.group(1)))
            index = array_counts.get(base, 0)
            array_counts[base] = index + 1
            table = (*base, index)
            lines.setdefault(base, number)
            lines[table] = number
        elif match := _TABLE.match(line):
            table = tuple(_split_dotted(match.group(1)))
            lines.setdefault(table, number)
        elif match := _KEY.match(line):
            path = (*table, *_split_dotted(match.group(1)))
            lines.setdefault(path, number)
            depth = _value_depth_change(line[match.end() :])
    return lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """Line of `path`, or of its nearest enclosing key or table; 1 when nothing encloses it."""
    for end in range(len(path), 0, -1):
        if (found := lines.get(path[:end])) is not None:
            return found
    return 1
