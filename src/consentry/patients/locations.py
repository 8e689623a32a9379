"""A practice's locations and numbers: which practice a number reaches, and which number a text goes from.

A practice has its own texting number, its main one, and each of its locations has one more. Every
number belongs to exactly one practice (no number is both a practice's and a location's, here or at
another practice), so a text received at any of them is the practice's. Consent stays the practice's:
it is kept per practice and address, whichever number the address texted.

A text or call goes from, in this order: the number a delivery names (a keyword's confirmation goes
back from the number that was texted), the patient's location's number, the practice's number.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

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


@dataclass(frozen=True)
class Route:
    """The practice a number reaches, and what a text received there needs of it: the auth token that signs the
    provider's webhook and what deciding whether the text asks to stop depends on. A value, so it is shared."""

    practice_id: uuid.UUID
    twilio_auth_token: str  # decrypted
    region: str
    keyword_languages: tuple[str, ...]
    reasonable_means: str
    location_id: Any = None  # None: the practice's own number
    # The columns as read (the token sealed), which ``still_current()`` compares with the database's.
    stored: tuple = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def pk(self) -> uuid.UUID:
        return self.practice_id

    def still_current(self) -> tuple[str, list[Any]]:
        """A SQL condition, and its values, that holds while the database routes the number as this route says:
        the same practice, the same token and the same settings (a statement that carries it does nothing if
        any of them changed since the route was read)."""
        number, practice_id, sealed, region, languages, reasonable_means, location_id = self.stored
        values = [practice_id, sealed, region, languages, reasonable_means]
        if location_id is None:
            return _CURRENT + _OWN_NUMBER, [*values, number]
        return _CURRENT + _LOCATIONS_NUMBER, [*values, location_id, number]


class RouteChanged(Exception):
    """A number's practice, token or settings changed since this process read its route: read it again."""


# The routes this process has read, by number: a text's route is read from the database only when it is not
# here, or when the one here did not verify or is no longer current (``Route.still_current()``, which the
# webhook's insert carries: a changed number, token or setting counts from the next text, in every process).
_ROUTES: dict[str, Route] = {}
MAX_ROUTES = 4096


def route_for_number(number: str, *, fresh: bool = False) -> Route | None:
    """Where a text received at a number (E.164) goes: its practice, its own number or one of its locations';
    None when no practice here has it.

    The route this process read last, unless ``fresh``: then one raw read of the few columns the route is made
    of (and of the location's row, for a location's number). Whoever acts on a kept route checks in the same
    statement that it is still current (``Route.still_current()``) and reads it ``fresh`` when it is not. The
    token's decryption is kept by its ciphertext and the keys (a new token is a new ciphertext; a key taken
    away no longer opens it)."""
    if not fresh and (route := _ROUTES.get(number)) is not None:
        return route
    route = _read_route(number)
    if route is None:
        _ROUTES.pop(number, None)
    else:
        if len(_ROUTES) >= MAX_ROUTES:
            _ROUTES.clear()
        _ROUTES[number] = route
    return route


def _read_route(number: str) -> Route | None:
    with connection.cursor() as cursor:
        cursor.execute(_ROUTE_BY + "texting_number = %s", [number])
        row = cursor.fetchone()
        location_id = None
        if row is None:
            cursor.execute(_LOCATION_BY_NUMBER, [number])
            location = cursor.fetchone()
            if location is None:
                return None
            location_id = location[0]
            cursor.execute(_ROUTE_BY + "id = %s", [location[1]])
            row = cursor.fetchone()
    practice_id, sealed, region, languages, reasonable_means = row
    return Route(
        practice_id=_PRACTICE_PK.to_python(practice_id),
        twilio_auth_token=_opened(sealed, tuple(settings.ENCRYPTION_KEYS)),
        region=region,
        keyword_languages=tuple(json.loads(languages) if isinstance(languages, str) else languages or ()),
        reasonable_means=reasonable_means,
        location_id=None if location_id is None else _LOCATION_PK.to_python(location_id),
        stored=(number, *row, location_id),
    )


def _column(model: Any, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


_ROUTE_COLUMNS = ("id", "twilio_auth_token", "region", "keyword_languages", "reasonable_means")
_ROUTE_BY = "SELECT {} FROM {} WHERE ".format(
    ", ".join(_column(Practice, name) for name in _ROUTE_COLUMNS), Practice._meta.db_table
)
_LOCATION_BY_NUMBER = (
    f"SELECT {_column(Location, 'id')}, {_column(Location, 'practice')} FROM {Location._meta.db_table} "
    f"WHERE {_column(Location, 'texting_number')} = %s"
)
_CURRENT = "EXISTS (SELECT 1 FROM {} WHERE {} = %s AND ".format(
    Practice._meta.db_table, " = %s AND ".join(_column(Practice, name) for name in _ROUTE_COLUMNS)
)
_OWN_NUMBER = f"{_column(Practice, 'texting_number')} = %s)"
_LOCATIONS_NUMBER = (
    f"EXISTS (SELECT 1 FROM {Location._meta.db_table} WHERE {_column(Location, 'id')} = %s AND "
    f"{_column(Location, 'texting_number')} = %s AND "
    f"{_column(Location, 'practice')} = {Practice._meta.db_table}.{_column(Practice, 'id')}))"
)
_PRACTICE_PK, _LOCATION_PK = Practice._meta.pk, Location._meta.pk


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
