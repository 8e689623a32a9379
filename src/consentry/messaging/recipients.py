"""Read what ``decide()`` needs: the practice's consent once, then one query per chunk of patients.

A broadcast reaches a whole practice, so this is the hot path of planning. One
joined query returns each patient's flags and contact points; rows stay in the
database's own representation (no model instances, no UUID objects) until the
few values that ``decide()`` needs are picked out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter

from django.db import connection

from consentry.consent import ledger
from consentry.consent.models import Block, ContactConsent, EmailState, SmsState
from consentry.consent.rules import ConsentState, Phone, Recipient
from consentry.errors import InvalidInput
from consentry.patients.models import ContactKind, ContactPoint, Location, Patient, PatientContact
from consentry.vocabulary import Channel, LineType, MarketingConsent, Status

from .models import Delivery, Message

_CHANNELS = {c.value: c for c in Channel}
_LINE_TYPES = {t.value: t for t in LineType}
_CONSENT = {c.value: c for c in MarketingConsent}
PHONE = ContactKind.PHONE.value


def db_id(value: uuid.UUID):
    """A UUID as this database stores it: Django's rule (hex text unless the database has a uuid type)."""
    return value if connection.features.has_native_uuid_field else value.hex


def db_id_function():
    """``db_id`` with the backend looked up once, for loops over many ids."""
    return (lambda value: value) if connection.features.has_native_uuid_field else (lambda value: value.hex)


_EMPTY_JSON: dict[str | None, object] = {"[]": (), "{}": {}, None: None}
_NO_CHANNELS: frozenset = frozenset()
_NO_PHONES: frozenset = frozenset()
_NO_OVERRIDES: dict = {}  # shared and never mutated: Recipient is frozen


def _json(value):
    """A JSON column's value: text on SQLite (mostly empty), already decoded on PostgreSQL."""
    if isinstance(value, str):
        return _EMPTY_JSON[value] if value in _EMPTY_JSON else json.loads(value)
    return value


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


class EveryPatient:
    """The audience "every patient of the practice": read from the database a chunk at a time while
    planning, never held as a list of ids."""

    def __repr__(self) -> str:
        return "EVERY_PATIENT"


EVERY_PATIENT = EveryPatient()


def parse_patient_ids(patient_ids: Sequence) -> list[uuid.UUID]:
    """Distinct patient ids in request order; a malformed id is a 422."""
    if not isinstance(patient_ids, (list, tuple)) or not patient_ids:
        raise InvalidInput("patient_ids", "at least one patient id is required")
    parsed: dict[uuid.UUID, None] = {}
    bad = []
    for value in patient_ids:
        if isinstance(value, uuid.UUID):
            parsed[value] = None
            continue
        try:
            parsed[uuid.UUID(str(value))] = None
        except ValueError:
            bad.append(str(value))
    if bad:
        bad = list(dict.fromkeys(bad))
        raise InvalidInput("patient_ids", f"{len(bad)} unknown patient(s): {_shown(bad)}")
    return list(parsed)


def _shown(values: list[str]) -> str:
    return ", ".join(values[:5]) + (" ..." if len(values) > 5 else "")


def id_chunks(practice_id: uuid.UUID, ids: list[uuid.UUID] | EveryPatient, size: int) -> Iterator[list]:
    """The audience's patient ids as the database has them, ``size`` at a time.

    Every patient of the practice is read through a chunked cursor (a server-side one on
    PostgreSQL), so no list of a whole practice's ids is ever built."""
    if not isinstance(ids, EveryPatient):
        to_db = db_id_function()
        for start in range(0, len(ids), size):
            yield [to_db(i) for i in ids[start : start + size]]
        return
    cursor = connection.chunked_cursor()
    try:
        # No ORDER BY: the practice's index hands the ids over without a sort.
        cursor.execute(f"SELECT id FROM {Patient._meta.db_table} WHERE practice_id = %s", [db_id(practice_id)])
        while rows := cursor.fetchmany(size):
            yield [row[0] for row in rows]
    finally:
        cursor.close()


def text_id_function():
    """A patient id as the database returned it -> its canonical text (as the API shows it)."""
    if connection.features.has_native_uuid_field:
        return str
    return lambda value: f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def missing_patients(practice_id: uuid.UUID, ids: list[uuid.UUID], chunk: int) -> list[str]:
    """The ids that name no patient of this practice, in request order (one read per chunk; nothing
    else is kept)."""
    table = Patient._meta.db_table
    owner, to_db = db_id(practice_id), db_id_function()
    missing: list[str] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            # Filter on the primary key alone: it is the index that fits,
            # whatever statistics the planner has.
            cursor.execute(
                f"SELECT id, practice_id FROM {table} WHERE id IN ({_placeholders(len(part))})",
                [to_db(i) for i in part],
            )
            found = {pk for pk, practice in cursor.fetchall() if practice == owner}
            missing += [str(i) for i in part if to_db(i) not in found]
    return missing


def check_patients_belong(practice_id: uuid.UUID, ids: list[uuid.UUID], chunk: int) -> None:
    """Every id names a patient of this practice, or nothing is planned."""
    if missing := missing_patients(practice_id, ids, chunk):
        raise InvalidInput("patient_ids", f"{len(missing)} unknown patient(s): {_shown(missing)}")


@dataclass(frozen=True)
class Needs:
    """What of a patient a message's decisions read; the rest is not selected.

    ``zone``: where the patient is, for quiet hours; ``preferred``: their preferred phone;
    ``notification``: their notification settings (channel opt-outs, per-type overrides, removed phones).
    """

    zone: bool = True
    preferred: bool = True
    notification: bool = True


EVERYTHING = Needs()


# Selected for every request: (0) the patient, their do-not-contact flag and marketing consent, and one
# contact point (3) its position in their list, address, kind, line type and validity (NULL for a
# patient with none).
_ALWAYS = (
    "p.id", "p.do_not_contact", "p.marketing_consent", "pc.position", "cp.address", "cp.kind", "cp.line_type", "cp.valid"
)  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    """The joined read's columns for a request, and where the optional ones are in its rows (None: not
    selected). A column that is not needed is left out rather than selected as NULL: the driver would
    still build a value for it in every row."""

    columns: tuple[str, ...]
    owner: int | None  # the patient's practice
    preferred: int | None  # the patient's preferred phone, then the contact point's id
    notification: int | None  # the patient's channel opt-outs, per-type overrides, removed phones
    zone: int | None  # the patient's zone, their location's, then the contact point's
    order: Callable[[tuple], tuple]  # sort key of a patient's rows: by position, then as the database lists the points


@lru_cache(maxsize=32)
def _layout(needs: Needs, owner: bool) -> _Layout:
    columns = list(_ALWAYS)

    def add(needed: bool, *names: str) -> int | None:
        if not needed:
            return None
        columns.extend(names)
        return len(columns) - len(names)

    owner_at = add(owner, "p.practice_id")
    preferred = add(needs.preferred, "p.preferred_phone_id", "cp.id")
    notification = add(
        needs.notification, "p.channel_opt_outs", "p.notification_overrides", "p.notification_phones_removed"
    )
    zone = add(needs.zone, "p.timezone", "l.timezone", "cp.timezone")
    order: Callable[[tuple], tuple] = itemgetter(3, 4)
    if preferred is not None:
        order = itemgetter(3, preferred + 1, 4)
    return _Layout(tuple(columns), owner_at, preferred, notification, zone, order)


def _select(layout: _Layout) -> str:
    """The joined read without its ``WHERE``: one row per patient and contact point (one with NULL
    contact columns for a patient without any)."""
    p, pc, cp = Patient._meta.db_table, PatientContact._meta.db_table, ContactPoint._meta.db_table
    location = f"LEFT JOIN {Location._meta.db_table} l ON l.id = p.location_id" if layout.zone is not None else ""
    return f"""
        SELECT {", ".join(layout.columns)}
        FROM {p} p
        LEFT JOIN {pc} pc ON pc.patient_id = p.id
        LEFT JOIN {cp} cp ON cp.id = pc.contact_point_id
        {location}
    """


def _chunk_sql(n: int, layout: _Layout) -> str:
    # No ORDER BY: rows are grouped per patient in Python, which is cheaper
    # than the temporary B-tree a sort would need. Filtered on the primary key
    # alone (the practice is checked in Python): with the practice in the WHERE
    # clause, SQLite may walk the practice's whole index for every chunk.
    return f"{_select(layout)} WHERE p.id IN ({_placeholders(n)})"


def practice_consent(practice_id) -> ConsentState:
    """Every address of the practice whose consent is not the default, and every block.

    Read once per message: these rows are few next to a practice's addresses
    (only opt-outs, unsubscribes, bounces and blocks are stored), so one pass
    beats joining them into every recipient's row. A STOP stored and not yet
    read is an opt-out already.
    """
    owner = db_id(practice_id)
    stopped = ledger.stops_not_yet_read(practice_id)  # first: see consent_state()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT address, sms, email FROM {ContactConsent._meta.db_table} "
            "WHERE practice_id = %s AND (sms = %s OR email <> %s)",
            [owner, SmsState.OPTED_OUT.value, EmailState.SUBSCRIBED.value],
        )
        consent = cursor.fetchall()
        cursor.execute(f"SELECT number, categories FROM {Block._meta.db_table} WHERE practice_id = %s", [owner])
        blocks = {number: frozenset(_json(categories)) for number, categories in cursor.fetchall()}
    return ConsentState(
        sms_opted_out=frozenset(a for a, sms, _ in consent if sms == SmsState.OPTED_OUT) | stopped,
        email_unsubscribed=frozenset(a for a, _, email in consent if email == EmailState.UNSUBSCRIBED),
        email_bounced=frozenset(a for a, _, email in consent if email == EmailState.BOUNCED),
        blocks=blocks,
    )


def load_chunk(
    patient_ids: Iterable, category_key: str, needs: Needs = EVERYTHING, practice_id: uuid.UUID | None = None
) -> list[Recipient]:
    """Recipients of these patients, ``patient_id`` in the database's representation; with a
    ``practice_id``, only that practice's patients (an id of another practice is left out)."""
    ids = list(patient_ids)
    layout = _layout(needs, owner=practice_id is not None)
    with connection.cursor() as cursor:
        cursor.execute(_chunk_sql(len(ids), layout), ids)
        rows = cursor.fetchall()
    owner, at = (None, 0) if practice_id is None else (db_id(practice_id), layout.owner)
    patients: dict[object, list[tuple]] = {}  # patient id -> their rows
    for row in rows:
        if owner is not None and row[at] != owner:
            continue
        if (entry := patients.get(row[0])) is None:
            patients[row[0]] = [row]
        else:
            entry.append(row)
    return [_recipient(rows, category_key, layout) for rows in patients.values()]


def practice_patients(practice_id: uuid.UUID, category_key: str, needs: Needs, size: int) -> Iterator[list[Recipient]]:
    """Every patient of the practice as recipients, ``size`` at a time, in the order of ``id_chunks``.

    On SQLite one joined read walks the practice's index and brings each patient's contact points along,
    a fetch at a time: twice as fast as looking each chunk's patients up by id, and no list of them is
    built. ``ORDER BY p.rowid`` keeps a patient's rows together; the practice's index already hands the
    patients over in that order, so SQLite sorts nothing. Elsewhere (PostgreSQL might sort a whole
    practice for that order) the ids are read a chunk at a time and each chunk looked up by them."""
    if connection.vendor != "sqlite":
        for chunk_ids in id_chunks(practice_id, EVERY_PATIENT, size):
            yield load_chunk(chunk_ids, category_key, needs)
        return
    layout = _layout(needs, owner=False)
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(f"{_select(layout)} WHERE p.practice_id = %s ORDER BY p.rowid", [db_id(practice_id)])
        chunk: list[Recipient] = []
        patient: list[tuple] = []  # the rows of the patient being read
        while rows := cursor.fetchmany(size):
            for row in rows:
                if patient and row[0] != patient[0][0]:
                    chunk.append(_recipient(patient, category_key, layout))
                    if len(chunk) == size:
                        yield chunk
                        chunk = []
                    patient = [row]
                else:
                    patient.append(row)
        if patient:
            chunk.append(_recipient(patient, category_key, layout))
        if chunk:
            yield chunk
    finally:
        cursor.close()


def _recipient(rows: list[tuple], category_key: str, layout: _Layout) -> Recipient:
    """One patient's recipient from their rows of the joined read (one per contact point)."""
    row = rows[0]
    if len(rows) > 1:
        rows.sort(key=layout.order)
    zone = layout.zone
    # Where the recipient is, for quiet hours: their own zone, else their location's, else where their (first)
    # phone's number says, else (in the request) the practice's.
    timezone = (row[zone] or row[zone + 1]) if zone is not None else None
    # Their preferred phone's contact point, and where a row has its contact point's id.
    preferred_point, point_at = (None, 0) if layout.preferred is None else (row[layout.preferred], layout.preferred + 1)
    phones, emails, preferred = [], [], None
    for contact in rows:
        if (address := contact[4]) is None:
            continue  # a patient with no contact points
        if contact[5] == PHONE:
            phones.append(Phone(address, _LINE_TYPES[contact[6]], bool(contact[7])))
            if preferred_point is not None and contact[point_at] == preferred_point:
                preferred = address
            if zone is not None:
                # No zone of their own: where their (first) phone is.
                timezone = timezone or contact[zone + 2]
        else:
            emails.append(address)
    opt_outs = overrides = removed = None
    if (note := layout.notification) is not None:
        opt_outs, overrides, removed = (
            _json(row[note]),
            (_json(row[note + 1]) or {}).get(category_key),
            _json(row[note + 2]),
        )
    # By position, in the order of Recipient's fields: a broadcast builds one per patient, and keywords
    # would cost as much again.
    return Recipient(
        row[0],
        tuple(phones),
        tuple(emails),
        preferred,
        bool(row[1]),
        _CONSENT[row[2]],
        frozenset(_CHANNELS[c] for c in opt_outs) if opt_outs else _NO_CHANNELS,
        {(category_key, _CHANNELS[c]): bool(v) for c, v in overrides.items()} if overrides else _NO_OVERRIDES,
        frozenset(removed) if removed else _NO_PHONES,
        timezone or "",
    )


def recent_phone_sends(practice_id, now: datetime, kinds) -> dict[str, tuple[int, int]]:
    """Automated calls and texts per number in the last day and week, for frequency caps.

    Counts what was sent or is on its way (not what was skipped or failed).
    """
    counted = [Status.PENDING, Status.DEFERRED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED]
    # Rolling windows: the last 24 hours and the last 7 days before ``now``.
    day, week, until = (connection.ops.adapt_datetimefield_value(now - timedelta(days=n)) for n in (1, 7, 0))
    sql = f"""
        SELECT d.address, SUM(CASE WHEN d.created_at > %s THEN 1 ELSE 0 END), COUNT(*)
        FROM {Delivery._meta.db_table} d JOIN {Message._meta.db_table} m ON m.id = d.message_id
        WHERE d.practice_id = %s AND d.channel IN ('sms', 'voice') AND d.created_at > %s AND d.created_at <= %s
          AND d.status IN ({_placeholders(len(counted))}) AND m.kind IN ({_placeholders(len(kinds))})
        GROUP BY d.address
    """
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [day, db_id(practice_id), week, until, *[s.value for s in counted], *[k.value for k in kinds]]
        )
        return {address: (int(day_count), int(week_count)) for address, day_count, week_count in cursor.fetchall()}


# While a message is planned, SQLite reads every patient of its audience once: a bounded page cache
# and memory map keep the planner's memory flat however large the practice (the connection's own
# settings, a large cache and map for the app's other reads, come back afterwards).
PLAN_CACHE_KIB = 8 * 1024
PLAN_MMAP_BYTES = 0


@contextmanager
def bounded_cache() -> Iterator[None]:
    """SQLite's page cache and memory map bounded for one long read (no change on other databases)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (cache,) = cursor.fetchone()
        cursor.execute("PRAGMA mmap_size")
        mapped = cursor.fetchone()  # no row: a database that is not a file (in memory)
        cursor.execute(f"PRAGMA cache_size = {-PLAN_CACHE_KIB:d}")
        if mapped is not None:
            cursor.execute(f"PRAGMA mmap_size = {PLAN_MMAP_BYTES:d}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(cache):d}")
            if mapped is not None:
                cursor.execute(f"PRAGMA mmap_size = {int(mapped[0]):d}")
