"""Text that can be stored and sent: valid Unicode with no NUL.

JSON may carry a lone surrogate (``"\\udfff"``), which no database column,
encryption key or provider can encode, and NUL, which PostgreSQL's text
columns refuse. Both are refused where text enters (the API, the CLI) with
the field named, so nothing is accepted now that crashes later; text from a
provider's webhook, which cannot be asked again, is scrubbed instead.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")


def problem(text: str) -> str | None:
    """Why this text cannot be kept, or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    if "\x00" in text:
        return "holds a NUL character"
    return None


def first_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first string in ``value`` (nested lists and dicts, keys included) that cannot be kept: (where, why)."""
    if isinstance(value, str):
        why = problem(value)
        return (path, why) if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (why := problem(key)):
                return f"{path} (a key)" if path else "(a key)", why
            if found := first_problem(item, where):
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if found := first_problem(item, f"{path}[{index}]"):
                return found
    return None


def scrub(value: Any) -> Any:
    """``value`` with lone surrogates replaced by U+FFFD and NUL removed, nested lists and dicts included."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value).replace("\x00", "") if problem(value) else value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
