"""The base of every request body the API reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ninja import Schema
from pydantic import ValidationInfo, field_validator

from consentry import text
from consentry.errors import InvalidInput

# Bounds of numeric query parameters: past them a database raises (integers
# wider than 64 bits), so they are a 422 instead.
MAX_OFFSET = 1_000_000_000
MAX_SEQ = 2**63 - 1


class In(Schema):
    """A request body: every string in it, however deep, is valid Unicode with no NUL (else a 422 naming it)."""

    @field_validator("*", mode="before")
    @classmethod
    def _storable_text(cls, value: Any, info: ValidationInfo) -> Any:
        if found := text.first_problem(value, info.field_name or ""):
            where, why = found
            raise ValueError(f"{where} {why}")
        return value


def as_utc(value: datetime | None, field: str) -> datetime | None:
    """A query's instant in UTC (one with no offset is read as UTC), so that any offset a client
    sends reaches the database as an instant it can store; a year out of range is a 422."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(field, "is out of range") from exc
