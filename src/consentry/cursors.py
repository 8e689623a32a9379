"""Opaque page cursors: the last key of a page, so the next page carries on after it."""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode

from consentry.errors import InvalidInput


def cursor_of(key: object) -> str:
    return urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def key_of(cursor: str, parse=str):
    """The key a cursor names, parsed (``uuid.UUID``, ``int``); ``InvalidInput`` for a cursor that no
    answer of ours gave."""
    try:
        return parse(urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "is not a cursor this API gave") from exc
