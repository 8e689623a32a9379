"""A practice's locations and numbers: which practice a number reaches, and which number a text goes from.

A practice has its own texting number, its main one, and each of its locations has one more. Every
number belongs to exactly one practice (no number is both a practice's and a location's, here or at
another practice), so a text received at any of them is the practice's. Consent stays the practice's:
it is kept per practice and address, whichever number the address texted.

A text or call goes from, in this order: the number a delivery names (a keyword's confirmation goes
back from the number that was texted), the patient's location's number, the practice's number.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from consentry.crypto import decrypt
from consentry.errors import InvalidInput

from .addresses import normalize_phone, validate_timezone
from .models import Location, Practice

MAX_NAME = 100
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class TextingSender:
    """Who a text or call goes from: the number, and the Twilio Messaging Service it goes through, if any."""

    number: str
    messaging_service_sid: str = ""


def texting_sender(
    practice: Practice, locations: Iterable[Location], *, from_number: str = "", location_id: Any = None
) -> TextingSender:
    """The sender of a text or call of this practice: ``from_number`` when it is still one of the practice's
    numbers, else the number of the location ``location_id`` (the patient's), else the practice's number.

    ``locations`` are the practice's (read once by the caller for many deliveries)."""
    locations = list(locations)
    if from_number:
        if from_number == practice.texting_number:
            return TextingSender(from_number)
        for location in locations:
            if location.texting_number == from_number:
                return TextingSender(location.texting_number, location.twilio_messaging_service_sid)
    if location_id is not None:
        for location in locations:
            if location.pk == location_id:
                return TextingSender(location.texting_number, location.twilio_messaging_service_sid)
    return TextingSender(practice.texting_number)


def practice_for_number(number: str) -> tuple[Practice, Location | None] | None:
    """The practice a number (E.164) belongs to, and the location whose number it is (None: the practice's
    own number); None when no practice here has it.

    Read at every call, so a changed number, token or setting counts at once in every process: one raw
    read of the practice's row (and the location's, for a location's number) as stored. Only the models
    built from rows already seen are kept, with the Twilio auth token decrypted: a changed row (a new
    token is a new ciphertext) or a changed key builds them again. The caller gets its own copies."""
    with connection.cursor() as cursor:
        cursor.execute(_PRACTICE_ROW + "texting_number = %s", [number])
        practice_row = cursor.fetchone()
        location_row = None
        if practice_row is None:
            cursor.execute(_LOCATION_ROW + "texting_number = %s", [number])
            location_row = cursor.fetchone()
            if location_row is None:
                return None
            cursor.execute(_PRACTICE_ROW + "id = %s", [location_row[_LOCATION_PRACTICE]])
            practice_row = cursor.fetchone()
    rows = (practice_row, location_row, tuple(settings.ENCRYPTION_KEYS))
    known = _routes.get(number)
    if known is None or known[0] != rows:
        known = (rows, *_load(number, location_row is not None))
        if len(_routes) >= 1024:
            _routes.clear()
        _routes[number] = known
    _, practice, location = known
    return copy.copy(practice), copy.copy(location)


def _columns(model: Any) -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in model._meta.concrete_fields)


_PRACTICE_ROW = f"SELECT {_columns(Practice)} FROM {Practice._meta.db_table} WHERE "
_LOCATION_ROW = f"SELECT {_columns(Location)} FROM {Location._meta.db_table} WHERE "
_LOCATION_PRACTICE = [f.name for f in Location._meta.concrete_fields].index("practice")
# number -> ((the rows as read, the keys), the practice, its location): what was built from those rows.
_routes: dict[str, tuple[tuple, Practice, Location | None]] = {}


def _load(number: str, at_location: bool) -> tuple[Practice, Location | None]:
    if not at_location:
        return _token_opened(_token_sealed(Practice.objects.filter(texting_number=number)).get()), None
    found = _token_sealed(Location.objects.select_related("practice"), "practice__").get(texting_number=number)
    found.practice.sealed_token = found.sealed_token
    _token_opened(found.practice)
    return found.practice, found


def _token_sealed(queryset: QuerySet[Any], path: str = "") -> QuerySet[Any]:
    """The queryset with the auth token as stored (``sealed_token``), not decrypted at each load."""
    field = f"{path}twilio_auth_token"
    return queryset.defer(field).annotate(sealed_token=Cast(field, output_field=TextField()))


def _token_opened(practice: Practice) -> Practice:
    practice.twilio_auth_token = _opened(practice.sealed_token, tuple(settings.ENCRYPTION_KEYS))  # type: ignore[attr-defined]
    return practice


@lru_cache(maxsize=1024)
def _opened(sealed: str | None, keys: tuple[str, ...]) -> str:
    """An auth token decrypted (the keys are part of the key: a key taken away no longer opens it)."""
    return decrypt(sealed) if sealed else ""


def numbers_of(practice: Practice) -> list[tuple[str, str]]:
    """Every number of the practice, (number, what it is): its own first, then its locations' by name."""
    return [(practice.texting_number, practice.name)] + [
        (location.texting_number, location.name) for location in practice.locations.order_by("name", "pk")
    ]


def check_number_free(number: str, *, practice: Practice | None = None, location: Location | None = None) -> None:
    """Refuse a number another practice or location has (``practice`` or ``location``: the one being changed,
    which may keep its own)."""
    taken_by_practice = Practice.objects.filter(texting_number=number)
    if practice is not None:
        taken_by_practice = taken_by_practice.exclude(pk=practice.pk)
    taken_by_location = Location.objects.filter(texting_number=number)
    if location is not None:
        taken_by_location = taken_by_location.exclude(pk=location.pk)
    if taken_by_practice.exists() or taken_by_location.exists():
        raise InvalidInput("texting_number", f"{number} already belongs to a practice or a location")


def _clean(practice: Practice, values: dict, location: Location | None) -> dict:
    """The fields sent, checked; every value is checked before anything is written."""
    cleaned: dict = {}
    for field, value in values.items():
        if field == "name":
            name = " ".join(value.split()) if isinstance(value, str) else ""
            if not name:
                raise InvalidInput("name", "a location name is required")
            if len(name) > MAX_NAME:
                raise InvalidInput("name", f"is at most {MAX_NAME} characters")
            same = Location.objects.filter(practice=practice, name=name)
            if location is not None:
                same = same.exclude(pk=location.pk)
            if same.exists():
                raise InvalidInput("name", f"the practice already has a location named {name!r}")
            cleaned["name"] = name
        elif field == "texting_number":
            if not isinstance(value, str):
                raise InvalidInput("texting_number", "must be a phone number")
            number = normalize_phone(value, region=practice.region, field="texting_number").number
            check_number_free(number, location=location)
            cleaned["texting_number"] = number
        elif field == "timezone":
            if not isinstance(value, str):
                raise InvalidInput("timezone", "must be an IANA time zone such as America/Chicago")
            cleaned["timezone"] = validate_timezone(value) if value else practice.timezone
        elif field == "twilio_messaging_service_sid":
            sid = value.strip() if isinstance(value, str) else None
            if sid is None or (sid and not MESSAGING_SERVICE_SID.fullmatch(sid)):
                raise InvalidInput(field, "must be a Twilio Messaging Service SID: MG and 32 hexadecimal digits")
            cleaned[field] = sid
        else:
            raise InvalidInput(field, "is not a location setting")
    return cleaned


def _saved(save) -> Location:
    """Save, turning a lost race for a unique number or name into the 422 the checks give."""
    try:
        with transaction.atomic():
            return save()
    except IntegrityError:
        raise InvalidInput("texting_number", "already belongs to a practice or a location") from None


@transaction.atomic
def create_location(
    *, practice: Practice, name: str, texting_number: str, timezone: str = "", twilio_messaging_service_sid: str = ""
) -> Location:
    """A new location of the practice; its time zone defaults to the practice's."""
    cleaned = _clean(
        practice,
        {
            "name": name,
            "texting_number": texting_number,
            "timezone": timezone,
            "twilio_messaging_service_sid": twilio_messaging_service_sid,
        },
        None,
    )
    return _saved(lambda: Location.objects.create(practice=practice, **cleaned))


@transaction.atomic
def update_location(location: Location, values: dict) -> Location:
    """Change the fields given; all are checked first, and nothing is written on an error."""
    cleaned = _clean(location.practice, values, location)
    if not cleaned:
        return location
    for field, value in cleaned.items():
        setattr(location, field, value)

    def save() -> Location:
        location.save(update_fields=list(cleaned))
        return location

    return _saved(save)


@transaction.atomic
def delete_location(location: Location) -> None:
    """Delete a location. Its patients stay, with no location (texts go from the practice's number); texts
    received at its number stay in their conversations, and consent, the practice's, is unchanged."""
    location.delete()


def location_of(practice: Practice, location_id: Any, *, field: str = "location_id") -> Location:
    """The practice's location with this id; anything else (malformed, another practice's) is a 422 naming
    ``field``, the same for all, so that no other practice's location is confirmed to exist."""
    try:
        pk = uuid.UUID(str(location_id))
    except ValueError:
        raise InvalidInput(field, "no such location at this practice") from None
    location = Location.objects.filter(practice=practice, pk=pk).first()
    if location is None:
        raise InvalidInput(field, "no such location at this practice")
    return location
