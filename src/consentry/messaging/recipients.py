"""Read what ``decide()`` needs about a chunk of patients: one query per chunk.

A broadcast reaches a whole practice, so this is the hot path of planning. One
joined query returns each patient's flags, contact points and the current
consent of those addresses (the ledger's projection tables); rows stay in the
database's own representation (no model instances, no UUID objects) until the
few values that ``decide()`` needs are picked out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Iterable, Sequence

from django.db import connection

from consentry.consent.models import Block, ContactConsent, EmailState, SmsState
from consentry.consent.rules import Channel, ConsentState, LineType, MarketingConsent, Phone, Recipient
from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact
from consentry.patients.services import InvalidInput

_CHANNELS = {c.value: c for c in Channel}
_LINE_TYPES = {t.value: t for t in LineType}
_CONSENT = {c.value: c for c in MarketingConsent}


def db_id(value: uuid.UUID):
    """A UUID as this database stores it: Django's rule (hex text unless the database has a uuid type)."""
    return value if connection.features.has_native_uuid_field else value.hex


def db_id_function():
    """``db_id`` with the backend looked up once, for loops over many ids."""
    return (lambda value: value) if connection.features.has_native_uuid_field else (lambda value: value.hex)


_EMPTY_JSON = {"[]": (), "{}": {}, None: None}
_NO_CHANNELS: frozenset = frozenset()
_NO_OVERRIDES: dict = {}  # shared and never mutated: Recipient is frozen


def _json(value):
    """A JSON column's value: text on SQLite (mostly empty), already decoded on PostgreSQL."""
    if isinstance(value, str):
        return _EMPTY_JSON[value] if value in _EMPTY_JSON else json.loads(value)
    return value


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def parse_patient_ids(patient_ids: Sequence) -> list[uuid.UUID]:
    """Distinct patient ids in request order; a malformed id is a 422."""
    if not isinstance(patient_ids, (list, tuple)) or not patient_ids:
        raise InvalidInput("patient_ids", "at least one patient id is required")
    parsed, bad = [], []
    for value in dict.fromkeys(str(p) for p in patient_ids):
        try:
            parsed.append(uuid.UUID(value))
        except ValueError:
            bad.append(value)
    if bad:
        raise InvalidInput("patient_ids", f"{len(bad)} unknown patient(s): {_shown(bad)}")
    return parsed


def _shown(values: list[str]) -> str:
    return ", ".join(values[:5]) + (" ..." if len(values) > 5 else "")


def check_patients_belong(practice_id: uuid.UUID, ids: list[uuid.UUID], chunk: int) -> None:
    """Every id names a patient of this practice, or nothing is planned."""
    table = Patient._meta.db_table
    owner, to_db = db_id(practice_id), db_id_function()
    found = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), chunk):
            part = [to_db(i) for i in ids[start : start + chunk]]
            # Filter on the primary key alone: it is the index that fits,
            # whatever statistics the planner has.
            cursor.execute(f"SELECT id, practice_id FROM {table} WHERE id IN ({_placeholders(len(part))})", part)
            found.update(pk for pk, practice in cursor.fetchall() if practice == owner)
    missing = [str(i) for i in ids if to_db(i) not in found]
    if missing:
        raise InvalidInput("patient_ids", f"{len(missing)} unknown patient(s): {_shown(missing)}")


@dataclass
class Chunk:
    recipients: list[Recipient]
    state: ConsentState


def _chunk_sql(n: int) -> str:
    p, pc, cp = Patient._meta.db_table, PatientContact._meta.db_table, ContactPoint._meta.db_table
    cc, b = ContactConsent._meta.db_table, Block._meta.db_table
    return f"""
        SELECT p.id, p.do_not_contact, p.marketing_consent, pref.address, p.channel_opt_outs,
               p.notification_overrides, cp.address, cp.kind, cp.line_type, cp.valid,
               cc.sms, cc.email, b.categories
        FROM {p} p
        LEFT JOIN {pc} pc ON pc.patient_id = p.id
        LEFT JOIN {cp} cp ON cp.id = pc.contact_point_id
        LEFT JOIN {cp} pref ON pref.id = p.preferred_phone_id
        LEFT JOIN {cc} cc ON cc.practice_id = p.practice_id AND cc.address = cp.address
        LEFT JOIN {b} b ON b.practice_id = p.practice_id AND b.number = cp.address
        WHERE p.id IN ({_placeholders(n)})
        ORDER BY p.id, pc.position
    """


def load_chunk(patient_ids: Iterable, category_key: str) -> Chunk:
    """Recipients (``patient_id`` in the database's representation) and their addresses' consent."""
    ids = list(patient_ids)
    with connection.cursor() as cursor:
        cursor.execute(_chunk_sql(len(ids)), ids)
        rows = cursor.fetchall()
    opted_out, unsubscribed, bounced, blocks = set(), set(), set(), {}
    recipients: list[Recipient] = []
    current = None
    phones: list[Phone] = []
    emails: list[str] = []

    def close(row) -> None:
        opt_outs, overrides = _json(row[4]) or (), (_json(row[5]) or {}).get(category_key) or {}
        recipients.append(
            Recipient(
                patient_id=row[0],
                phones=tuple(phones),
                emails=tuple(emails),
                preferred_phone=row[3],
                do_not_contact=bool(row[1]),
                marketing_consent=_CONSENT[row[2]],
                channel_opt_outs=frozenset(_CHANNELS[c] for c in opt_outs) if opt_outs else _NO_CHANNELS,
                notification_overrides={(category_key, _CHANNELS[c]): bool(v) for c, v in overrides.items()}
                if overrides
                else _NO_OVERRIDES,
            )
        )

    for row in rows:
        if current is None or row[0] != current[0]:
            if current is not None:
                close(current)
            current, phones, emails = row, [], []
        address = row[6]
        if address is None:
            continue
        if row[7] == ContactKind.PHONE:
            phones.append(Phone(address, _LINE_TYPES[row[8]], bool(row[9])))
        else:
            emails.append(address)
        if row[10] == SmsState.OPTED_OUT:
            opted_out.add(address)
        if row[11] == EmailState.UNSUBSCRIBED:
            unsubscribed.add(address)
        elif row[11] == EmailState.BOUNCED:
            bounced.add(address)
        if row[12] is not None:
            blocks[address] = frozenset(_json(row[12]))
    if current is not None:
        close(current)
    return Chunk(recipients, ConsentState(frozenset(opted_out), frozenset(unsubscribed), frozenset(bounced), blocks))
