"""The rule for text a task may hold, written once for every field (title, description, tags,
the search text): which characters are refused, as a validator naming what it found, and as the
character classes the published JSON Schema patterns are built from.

Refused: C0 controls (a description keeps tab and newlines: LF, or CR LF; a lone CR, which
makes a terminal write over the line, is refused), DEL and the C1
controls (U+0080-U+009F, among them the terminal's CSI U+009B); the bidirectional embedding,
override and isolate controls, which reorder how the text around them is shown (U+202A-U+202E,
U+2066-U+2069; the invisible marks U+200E, U+200F and U+061C stay, right-to-left text needs
them); the 66 noncharacters (U+FDD0-U+FDEF and the last two code points of every plane); and
lone surrogates, which are not characters at all and cannot be stored as UTF-8 (JSON can smuggle
them in as `\\ud800` escapes).
"""

from __future__ import annotations

import re

from pydantic_core import PydanticCustomError

# (first, last) code points of each kind, and how an error names the kind.
_C0 = [(0x00, 0x1F)]
_MULTILINE_C0 = [(0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F)]
_DEL_AND_C1 = [(0x7F, 0x9F)]
_BIDI = [(0x202A, 0x202E), (0x2066, 0x2069)]
_NONCHARACTERS = [(0xFDD0, 0xFDEF)] + [
    (plane + 0xFFFE, plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000)
]
_SURROGATES = [(0xD800, 0xDFFF)]


def _char(code: int) -> str:
    # `\uXXXX` reads the same in Python's `re` and in ECMA-262 (JSON Schema); a code point
    # beyond the BMP goes in as itself (one character to both, ECMA-262 with the `u` flag).
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


def _class(ranges: list[tuple[int, int]]) -> str:
    """The ranges as the inside of a regex character class."""
    return "".join(
        _char(first) if first == last else f"{_char(first)}-{_char(last)}" for first, last in ranges
    )


# Character classes (regex and JSON Schema syntax alike) of what a line of text may not hold...
REFUSED = _class(_C0 + _DEL_AND_C1 + _BIDI + _NONCHARACTERS)
# ... and what multi-line text (a description) may not: the same, but tab, LF and CR (CR only
# as the first half of a CR LF newline).
MULTILINE_REFUSED = _class(_MULTILINE_C0 + _DEL_AND_C1 + _BIDI + _NONCHARACTERS)
_CR, _LF = _char(0x0D), _char(0x0A)
# Multi-line text without a refused character, as a JSON Schema pattern (no lookahead, which
# some JSON Schema tools cannot compile).
MULTILINE_PATTERN = f"^(?:[^{MULTILINE_REFUSED}{_CR}]|{_CR}{_LF})*$"
# Text without a refused character, as a JSON Schema pattern. The published classes leave lone
# surrogates out: a JSON Schema string holds only characters, so no value can have one, and
# ECMA-262 validators (and the tools built on them) cannot compile such a range.
NO_REFUSED_PATTERN = f"^[^{REFUSED}]*$"

_line_refused = re.compile(f"[{REFUSED}{_class(_SURROGATES)}]")
_multiline_refused = re.compile(f"[{MULTILINE_REFUSED}{_class(_SURROGATES)}]|{_CR}(?!{_LF})")

# Each kind: its error type, what a message calls it, its code points.
_KINDS = [
    ("control_character", "a control character", _C0 + _DEL_AND_C1),
    ("bidi_control", "a bidirectional control character", _BIDI),
    ("noncharacter", "a Unicode noncharacter", _NONCHARACTERS),
    ("lone_surrogate", "a lone surrogate", _SURROGATES),
]


def refuse_characters(value: str, *, multiline: bool = False) -> None:
    """Raise the validation error of text holding a refused character, naming the first one
    found: its kind, code point and place."""
    found = (_multiline_refused if multiline else _line_refused).search(value)
    if found is None:
        return
    code = ord(found.group())
    kind, name = next(
        (kind, name)
        for kind, name, ranges in _KINDS
        if any(first <= code <= last for first, last in ranges)
    )
    allowed = ""
    if multiline and kind == "control_character":
        allowed = " (tab and newline, LF or CR LF, are allowed)"
    raise PydanticCustomError(
        kind,
        f"must not contain {name}: found U+{code:04X} at character {found.start() + 1}{allowed}",
    )
