"""Addresses as people type them, made canonical: E.164 phones, lowercased emails, time zones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import phonenumbers.timezone
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consentry.errors import InvalidInput

LINE_TYPES = ("mobile", "landline", "voip", "unknown")


@dataclass(frozen=True)
class NormalizedPhone:
    number: str  # E.164
    valid: bool
    timezone: str = ""  # when the numbering plan places the number in one zone


def normalize_phone(raw: str, *, region: str = "US", field: str = "number") -> NormalizedPhone:
    """E.164 for anything that can be a phone number; refuse what cannot.

    A number that has the shape of a phone number but is not assigned (the
    numbering plan says no such number exists) is kept and marked invalid, so
    the decision engine can report ``phone_invalid`` instead of dropping it.
    """
    parsed = _parsed(raw, region, field)
    zones = phonenumbers.timezone.time_zones_for_number(parsed)
    return NormalizedPhone(
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.is_valid_number(parsed),
        zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else "",
    )


def e164(raw: str, *, region: str = "US", field: str = "number") -> str:
    """Only the E.164 form of ``normalize_phone`` (a received text's numbers: nothing more is asked of them)."""
    if not isinstance(raw, str):
        raise InvalidInput(field, "a phone number is required")
    if _NANP_E164.fullmatch(raw):
        return raw
    return _e164(raw, region, field)


# A North American number written in E.164, with an area code that can begin one, is its own E.164 form, and
# a possible number, whatever the region (phonenumbers agrees: tests/unit/test_addresses.py). It is how
# carriers hand over nearly every sender: each STOP's sender is known without a parse (a tenth of its CPU).
_NANP_E164 = re.compile(r"\+1[2-9][0-9]{9}")


@lru_cache(maxsize=4096)  # numbers seen lately: a practice's own numbers arrive with every text
def _e164(raw: str, region: str, field: str) -> str:
    return phonenumbers.format_number(_parsed(raw, region, field), phonenumbers.PhoneNumberFormat.E164)


def _parsed(raw: str, region: str, field: str) -> phonenumbers.PhoneNumber:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "a phone number is required")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(field, f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(field, f"not a phone number: {raw!r}")
    return parsed


def normalize_email(raw: str, *, field: str = "email") -> str:
    if not isinstance(raw, str):
        raise InvalidInput(field, "an email address is required")
    email = raw.strip().lower()
    if len(email) > 254:  # RFC 5321: a forward path is at most 256 octets with its <>
        raise InvalidInput(field, "an email address is at most 254 characters")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput(field, f"not an email address: {raw!r}") from exc
    return email


def normalize_address(raw: str, *, region: str = "US", field: str = "address") -> str:
    """A phone number or an email address, normalized."""
    if isinstance(raw, str) and "@" in raw:
        return normalize_email(raw, field=field)
    return e164(raw, region=region, field=field)


def validate_timezone(name: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(field, f"unknown time zone {name!r}") from exc
    return name


def looks_like_phone(typed: str) -> bool:
    """Whether what someone typed in a search box is meant as a phone number: 7 or more digits and
    nothing but the characters phone numbers are written with."""
    return sum(c.isdigit() for c in typed) >= 7 and all(c.isdigit() or c in "+-(). " for c in typed)


def typed_phone(typed: str, region: str) -> str | None:
    """A phone number typed in any format, in E.164; None when it cannot be one."""
    try:
        return normalize_phone(typed, region=region, field="q").number
    except InvalidInput:
        return None
