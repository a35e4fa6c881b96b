"""The rule for text a task may hold, written once: which characters are refused (control
characters, and lone surrogates, which cannot be stored as UTF-8), as a validator and as the
character classes the published JSON Schema patterns are built from."""

from __future__ import annotations

import re

from pydantic_core import PydanticCustomError

# Character classes (regex and JSON Schema syntax alike).
CONTROL = "\\x00-\\x1f\\x7f"
# Multi-line text (a description) may hold tab, line feed and carriage return.
MULTILINE_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
# JSON can smuggle lone surrogates in as `\ud800` escapes.
SURROGATE = "\\ud800-\\udfff"
# Text without control characters, as a JSON Schema pattern.
NO_CONTROL_PATTERN = f"^[^{CONTROL}]*$"

_line_control = re.compile(f"[{CONTROL}{SURROGATE}]")
_multiline_control = re.compile(f"[{MULTILINE_CONTROL}{SURROGATE}]")


def refuse_control_characters(value: str, *, multiline: bool = False) -> None:
    """Raise the validation error of text holding a refused character."""
    if multiline:
        if _multiline_control.search(value):
            raise PydanticCustomError(
                "control_character",
                "must not contain control characters other than tab and newline",
            )
    elif _line_control.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
