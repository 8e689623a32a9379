"""Append to the consent ledger, read the current state, prove the chain.

One function writes: ``record()``. It appends the event with the hash of the
previous event of the practice and updates the projection in the same
transaction, so the current state can never disagree with the ledger.

Longer than most modules on purpose: the writer, the projection it keeps, its replay and the
chain's verification are one concern, and each is checked against the others.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from consentry import bulk, text
from consentry.events import emit
from consentry.keywords.models import InboundMessage
from consentry.patients.categories import CHANNELS
from consentry.patients.models import Patient, Practice

from .models import Block, ConsentEvent, ConsentNote, ContactConsent, EmailState, SmsState, Subject
from .rules import ConsentState, PracticeId

# What a ledger event keeps as evidence: JSON, names and ids only (free text goes in a note).
Evidence = dict[str, Any]

GENESIS = "0" * 64
# SQLite accepts 32766 bound parameters; stay far below on every backend.
IN_CHUNK = 2000


def _canonical(
    *,
    practice_id: PracticeId,
    seq: int,
    subject: str,
    address: str,
    state: str,
    source: str,
    actor: str,
    evidence: Evidence,
    created_at: datetime,
    prev_hash: str,
) -> bytes:
    payload = {
        "practice": str(practice_id),
        "seq": seq,
        "subject": subject,
        "address": address,
        "state": state,
        "source": source,
        "actor": actor,
        "evidence": evidence,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": prev_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: ConsentEvent) -> str:
    return hashlib.sha256(
        _canonical(
            practice_id=event.practice_id,
            seq=event.seq,
            subject=event.subject,
            address=event.address,
            state=event.state,
            source=event.source,
            actor=event.actor,
            evidence=event.evidence,
            created_at=event.created_at,
            prev_hash=event.prev_hash,
        )
    ).hexdigest()


def patient_subject(patient_id: object) -> str:
    return f"patient:{patient_id}"


def notification_state(
    overrides: dict[str, dict[str, bool]], channel_opt_outs: Iterable[str], phones_removed: Iterable[str]
) -> str:
    """A patient's notification settings as one canonical JSON text: a ``notifications`` event's state.

    Canonical (keys sorted, channels in their own order, phones sorted), so that equal settings are
    equal texts, whichever order they were given in.
    """
    order = {channel: i for i, channel in enumerate(CHANNELS)}
    return json.dumps(
        {
            "channel_opt_outs": sorted(set(channel_opt_outs), key=lambda c: order.get(c, len(order))),
            "overrides": {key: dict(sorted(overrides[key].items())) for key in sorted(overrides)},
            "phones_removed": sorted(set(phones_removed)),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def read_notification_state(state: str) -> tuple[dict[str, dict[str, bool]], list[str], list[str]]:
    """(overrides, channel opt-outs, phones removed) of a ``notifications`` event's state."""
    value = json.loads(state)
    return value["overrides"], value["channel_opt_outs"], value["phones_removed"]


def patient_notification_state(patient: Patient) -> str:
    return notification_state(
        patient.notification_overrides, patient.channel_opt_outs, patient.notification_phones_removed
    )


def lock(practice_id: PracticeId) -> None:
    """Serialize consent changes of one practice until the transaction ends.

    Take it before reading the state a change depends on ("already opted
    out: record nothing"), so two changes arriving at once cannot both read
    the old state. PostgreSQL: a row lock on the practice; SQLite's
    IMMEDIATE transactions are serialized already (the write lock is taken at
    BEGIN), so there it reads nothing.
    """
    if connection.vendor == "sqlite":
        return
    Practice.objects.select_for_update().only("id").get(pk=practice_id)


# No savepoint inside a caller's transaction: the append is part of the caller's change, and an error
# in it undoes the whole change (a savepoint would cost two statements for a rollback nobody takes).
@transaction.atomic(savepoint=False)
def record(
    *,
    practice: Practice,
    subject: Subject,
    address: str,
    state: str,
    source: str,
    actor: str,
    evidence: Evidence | None = None,
    note: str = "",
    now: datetime | None = None,
) -> ConsentEvent:
    """Append one consent change and apply it to the projection.

    ``note`` is free text that explains the change (a staff member's reason):
    it is stored encrypted beside the ledger and the event's evidence names it.
    """
    lock(practice.pk)  # appends to one practice's chain are serialized
    # What a provider's webhook sent may hold text no column can store; the
    # API and the CLI refuse it, and here it is scrubbed rather than lost.
    evidence, actor, note = text.scrub(dict(evidence or {})), text.scrub(actor), text.scrub(note)
    if note:
        evidence["note"] = ConsentNote.objects.create(practice_id=practice.pk, text=note).pk
    head = ConsentEvent.objects.filter(practice_id=practice.pk).order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
    event = ConsentEvent(
        practice_id=practice.pk,
        seq=seq,
        subject=subject,
        address=address,
        state=state,
        source=source,
        actor=actor,
        evidence=evidence,
        created_at=now or datetime.now(UTC),
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event)
    event.save()
    _project(event)
    emit.consent_changed(event)  # the practice's webhook endpoints hear of it, if it has any
    return event


@dataclass(frozen=True)
class Change:
    """One change for ``record_many()``: what ``record()`` takes, less what the whole batch shares."""

    subject: Subject
    address: str
    state: str
    evidence: Evidence = field(default_factory=dict)


@transaction.atomic
def record_many(
    *, practice: Practice, changes: Sequence[Change], source: str, actor: str, now: datetime | None = None
) -> list[ConsentEvent]:
    """Append many changes, in order, and apply them to the projection: what ``record()`` does for
    each, in a few statements (an import of thousands of rows). Same chain, same projection, no notes.

    As with ``record()``, read the state the changes depend on ("already opted out") after ``lock()``.
    """
    lock(practice.pk)
    actor = text.scrub(actor)
    head = ConsentEvent.objects.filter(practice_id=practice.pk).order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (head[0], head[1]) if head else (0, GENESIS)
    created_at = now or datetime.now(UTC)
    events = []
    for change in changes:
        seq += 1
        event = ConsentEvent(
            practice_id=practice.pk,
            seq=seq,
            subject=change.subject,
            address=change.address,
            state=change.state,
            source=source,
            actor=actor,
            evidence=text.scrub(dict(change.evidence)),
            created_at=created_at,
            prev_hash=prev_hash,
        )
        event.hash = prev_hash = event_hash(event)
        events.append(event)
    columns = [f.attname for f in ConsentEvent._meta.concrete_fields if not f.primary_key]
    bulk.insert_rows(ConsentEvent, [{name: getattr(event, name) for name in columns} for event in events])
    if events:
        ids = dict(
            ConsentEvent.objects.filter(practice_id=practice.pk, seq__gte=events[0].seq).values_list("seq", "pk")
        )
        for event in events:
            event.pk = ids[event.seq]
            event._state.adding, event._state.db = False, ConsentEvent.objects.db
    _project_many(practice.pk, events)
    emit.consents_changed(practice.pk, events)
    return events


def _project_many(practice_id: PracticeId, events: list[ConsentEvent]) -> None:
    """``_project()`` of each event, in order, with one write per table and chunk for addresses and
    patients' flags (the last event of each address or patient decides, as it would one by one)."""
    contacts: dict[str, dict[str, Any]] = {}  # address -> the fields its events set
    flags: dict[tuple[str, str], Any] = {}  # (patient field, patient id) -> value
    for event in events:
        if event.subject in (Subject.SMS, Subject.EMAIL):
            fields = contacts.setdefault(event.address, {})
            fields["sms" if event.subject == Subject.SMS else "email"] = event.state
            fields["last_event"] = event
        elif event.subject == Subject.MARKETING:
            flags[("marketing_consent", _patient_id(event.address))] = event.state
        elif event.subject == Subject.DO_NOT_CONTACT:
            flags[("do_not_contact", _patient_id(event.address))] = event.state == "on"
        else:  # blocks and notification settings: one by one
            _project(event)
    addresses = list(contacts)
    existing: dict[str, ContactConsent] = {}
    for start in range(0, len(addresses), IN_CHUNK):
        chunk = addresses[start : start + IN_CHUNK]
        existing.update(
            (row.address, row) for row in ContactConsent.objects.filter(practice_id=practice_id, address__in=chunk)
        )
    changed: list[ContactConsent] = []
    new: list[ContactConsent] = []
    for address, fields in contacts.items():
        row = existing.get(address) or ContactConsent(practice_id=practice_id, address=address)
        for name, value in fields.items():
            setattr(row, name, value)
        (changed if row.pk else new).append(row)
    ContactConsent.objects.bulk_update(changed, ["sms", "email", "last_event"], batch_size=IN_CHUNK)
    ContactConsent.objects.bulk_create(new, batch_size=IN_CHUNK)
    by_value: dict[tuple[str, Any], list[str]] = {}
    for (name, patient_id), value in flags.items():
        by_value.setdefault((name, value), []).append(patient_id)
    updated_at = events[-1].created_at if events else None
    for (name, value), patient_ids in by_value.items():
        for start in range(0, len(patient_ids), IN_CHUNK):
            Patient.objects.filter(pk__in=patient_ids[start : start + IN_CHUNK]).update(
                **{name: value, "updated_at": updated_at}
            )


def _project(event: ConsentEvent) -> None:
    if event.subject in (Subject.SMS, Subject.EMAIL):
        field = "sms" if event.subject == Subject.SMS else "email"
        # One upsert (INSERT ... ON CONFLICT DO UPDATE): the row's other state keeps its value, or its
        # default on a new row.
        row = ContactConsent(practice_id=event.practice_id, address=event.address, last_event=event)
        setattr(row, field, event.state)
        ContactConsent.objects.bulk_create(
            [row], update_conflicts=True, unique_fields=["practice", "address"], update_fields=[field, "last_event"]
        )
    elif event.subject == Subject.BLOCK:
        categories = json.loads(event.state)
        if categories:
            Block.objects.update_or_create(
                practice_id=event.practice_id,
                number=event.address,
                defaults={"categories": categories, "last_event": event},
            )
        else:
            Block.objects.filter(practice_id=event.practice_id, number=event.address).delete()
    elif event.subject == Subject.MARKETING:
        Patient.objects.filter(pk=_patient_id(event.address)).update(
            marketing_consent=event.state, updated_at=event.created_at
        )
    elif event.subject == Subject.DO_NOT_CONTACT:
        Patient.objects.filter(pk=_patient_id(event.address)).update(
            do_not_contact=event.state == "on", updated_at=event.created_at
        )
    elif event.subject == Subject.NOTIFICATIONS:
        overrides, opt_outs, removed = read_notification_state(event.state)
        Patient.objects.filter(pk=_patient_id(event.address)).update(
            notification_overrides=overrides,
            channel_opt_outs=opt_outs,
            notification_phones_removed=removed,
            updated_at=event.created_at,
        )


def _patient_id(address: str) -> str:
    return address.removeprefix("patient:")


# --- reads -----------------------------------------------------------------


def stops_not_yet_read(practice_id: PracticeId, numbers: Sequence[str] | None = None) -> set[str]:
    """The numbers among these (None: any) whose STOP (or clear request to stop) was received and not yet read
    by a worker.

    Such a text already is the opt-out: the webhook answered once it was stored. Read it before the ledger's
    projection: a text read in between is then seen in one or the other, never in neither.
    """
    unread = InboundMessage.objects.filter(practice_id=practice_id, processed_at__isnull=True, asks_to_stop=True)
    if numbers is not None:
        unread = unread.filter(from_number__in=numbers)
    return set(unread.values_list("from_number", flat=True))


def consent_state(practice_id: PracticeId, addresses: Iterable[str]) -> ConsentState:
    """The consent state of these addresses, for ``decide()``: the ledger's, and the STOPs not yet read.

    One statement per chunk of addresses (a dispatch chunk's whole consent check): the numbers' unread
    STOPs (``stops_not_yet_read()``), their projection and their blocks, read in one snapshot, so a text
    read meanwhile is seen either unread or in the ledger, never in neither.
    """
    addresses = list(dict.fromkeys(addresses))
    opted_out: set[str] = set()
    unsubscribed: set[str] = set()
    bounced: set[str] = set()
    blocks: dict[str, frozenset[str]] = {}
    if not addresses:
        return ConsentState(frozenset(), frozenset(), frozenset(), blocks)
    practice = Practice._meta.pk.get_db_prep_value(practice_id, connection)
    with connection.cursor() as cursor:
        for start in range(0, len(addresses), IN_CHUNK):
            chunk = addresses[start : start + IN_CHUNK]
            numbers = [a for a in chunk if "@" not in a]
            params: list[Any] = [practice, *chunk, practice, *chunk]
            if numbers:
                params += [practice, True, *numbers]
            cursor.execute(_state_sql(len(chunk), len(numbers)), params)
            for what, address, first, second in cursor.fetchall():
                if what == _STOP:
                    opted_out.add(address)
                elif what == _BLOCK:
                    blocks[address] = frozenset(json.loads(first))
                else:
                    if first == SmsState.OPTED_OUT:
                        opted_out.add(address)
                    if second == EmailState.UNSUBSCRIBED:
                        unsubscribed.add(address)
                    elif second == EmailState.BOUNCED:
                        bounced.add(address)
    return ConsentState(frozenset(opted_out), frozenset(unsubscribed), frozenset(bounced), blocks)


_CONTACT, _BLOCK, _STOP = 0, 1, 2


def _state_sql(n_addresses: int, n_numbers: int) -> str:
    """``consent_state()``'s read of one chunk: (what, address, and two values) per row found."""
    addresses = ", ".join(["%s"] * n_addresses)
    sql = (
        f"SELECT {_CONTACT}, address, sms, email FROM {ContactConsent._meta.db_table} "
        f"WHERE practice_id = %s AND address IN ({addresses}) "
        f"UNION ALL SELECT {_BLOCK}, number, CAST(categories AS TEXT), '' FROM {Block._meta.db_table} "
        f"WHERE practice_id = %s AND number IN ({addresses})"
    )
    if n_numbers:
        # What stops_not_yet_read() reads (the index on unread texts serves it).
        sql += (
            f" UNION ALL SELECT {_STOP}, from_number, '', '' FROM {InboundMessage._meta.db_table} "
            f"WHERE practice_id = %s AND processed_at IS NULL AND asks_to_stop = %s "
            f"AND from_number IN ({', '.join(['%s'] * n_numbers)})"
        )
    return sql


@dataclass(frozen=True)
class AddressStatus:
    address: str
    sms: str
    email: str
    blocked_categories: list[str]


def address_status(practice_id: PracticeId, address: str) -> AddressStatus:
    stopped = "@" not in address and bool(stops_not_yet_read(practice_id, [address]))
    row = ContactConsent.objects.filter(practice_id=practice_id, address=address).values("sms", "email").first()
    block = Block.objects.filter(practice_id=practice_id, number=address).values_list("categories", flat=True).first()
    return AddressStatus(
        address=address,
        sms=SmsState.OPTED_OUT if stopped else row["sms"] if row else SmsState.OPTED_IN,
        email=row["email"] if row else EmailState.SUBSCRIBED,
        blocked_categories=sorted(block or []),
    )


def notes(events: Iterable[ConsentEvent]) -> dict[int, str]:
    """The notes these events name, by event id (decrypted: for the practice's own eyes)."""
    wanted = {e.pk: e.evidence.get("note") for e in events if isinstance(e.evidence, dict) and e.evidence.get("note")}
    texts = dict(ConsentNote.objects.filter(pk__in=set(wanted.values())).values_list("pk", "text"))
    return {event_id: texts[note_id] for event_id, note_id in wanted.items() if note_id in texts}


# --- proof -----------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    practice_id: str
    checked: int
    ok: bool
    broken_seq: int | None = None
    problem: str = ""


def verify_chain(practice_id: PracticeId) -> ChainReport:
    """Recompute every hash of the practice's ledger; report the first broken link."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for event in ConsentEvent.objects.filter(practice_id=practice_id).order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            return ChainReport(str(practice_id), checked, False, expected_seq, f"event {expected_seq} is missing")
        if event.prev_hash != expected_prev:
            return ChainReport(str(practice_id), checked, False, event.seq, "does not link to the previous event")
        if event_hash(event) != event.hash:
            return ChainReport(str(practice_id), checked, False, event.seq, "content does not match its hash")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return ChainReport(str(practice_id), checked, True)


@dataclass
class Projection:
    """Everything the ledger decides at one practice: what ``record()`` keeps current in the tables."""

    contacts: dict[str, tuple[str, str]]  # address -> (sms state, email state), for addresses with events
    blocks: dict[str, list[str]]  # number -> blocked categories
    marketing: dict[str, str]  # patient id -> marketing consent (yes / no / unknown)
    do_not_contact: dict[str, bool]  # patient id -> the flag
    # patient id -> notification settings (``notification_state()``'s canonical text)
    notifications: dict[str, str] = field(default_factory=dict)


def replay_projection(practice_id: PracticeId) -> Projection:
    """The projection that the ledger alone implies: every subject it records, replayed in order.

    Patients with no event of a subject keep its default (marketing consent
    ``unknown``, do-not-contact off, no notification settings of their own), as a patient created
    without one has.
    """
    projection = Projection({}, {}, {}, {})
    patient_ids = [str(pk) for pk in Patient.objects.filter(practice_id=practice_id).values_list("pk", flat=True)]
    projection.marketing = dict.fromkeys(patient_ids, Patient._meta.get_field("marketing_consent").default)
    projection.do_not_contact = dict.fromkeys(patient_ids, Patient._meta.get_field("do_not_contact").default)
    projection.notifications = dict.fromkeys(patient_ids, notification_state({}, [], []))
    contacts: dict[str, list[str]] = {}
    events = (
        ConsentEvent.objects.filter(practice_id=practice_id)
        .order_by("seq")
        .values_list("subject", "address", "state")
        .iterator(chunk_size=2000)
    )
    for subject, address, state in events:
        if subject == Subject.BLOCK:
            categories = json.loads(state)
            if categories:
                projection.blocks[address] = categories
            else:
                projection.blocks.pop(address, None)
        elif subject in (Subject.SMS, Subject.EMAIL):
            current = contacts.setdefault(address, [SmsState.OPTED_IN, EmailState.SUBSCRIBED])
            current[0 if subject == Subject.SMS else 1] = state
        elif _patient_id(address) in projection.marketing:  # a patient's flag (deleted patients have none left)
            if subject == Subject.MARKETING:
                projection.marketing[_patient_id(address)] = state
            elif subject == Subject.DO_NOT_CONTACT:
                projection.do_not_contact[_patient_id(address)] = state == "on"
            elif subject == Subject.NOTIFICATIONS:
                projection.notifications[_patient_id(address)] = notification_state(*read_notification_state(state))
    projection.contacts = {a: (s[0], s[1]) for a, s in contacts.items()}
    return projection


def current_projection(practice_id: PracticeId) -> Projection:
    """The projection as the tables hold it now."""
    patients = Patient.objects.filter(practice_id=practice_id).values_list(
        "pk",
        "marketing_consent",
        "do_not_contact",
        "notification_overrides",
        "channel_opt_outs",
        "notification_phones_removed",
    )
    marketing, do_not_contact, notifications = {}, {}, {}
    for pk, consent, flag, overrides, opt_outs, removed in patients:
        marketing[str(pk)], do_not_contact[str(pk)] = consent, flag
        notifications[str(pk)] = notification_state(overrides or {}, opt_outs or [], removed or [])
    return Projection(
        contacts={
            a: (s, e)
            for a, s, e in ContactConsent.objects.filter(practice_id=practice_id).values_list("address", "sms", "email")
        },
        blocks=dict(Block.objects.filter(practice_id=practice_id).values_list("number", "categories")),
        marketing=marketing,
        do_not_contact=do_not_contact,
        notifications=notifications,
    )


def projection_matches(practice_id: PracticeId) -> bool:
    """The tables agree with the ledger on every subject (``consentry audit verify`` checks it)."""
    return replay_projection(practice_id) == current_projection(practice_id)


def record_notification_baselines(actor: str = "upgrade") -> int:
    """Record, once, the notification settings patients had before the ledger recorded them.

    Settings made since are ledger events; a patient whose settings differ from the defaults and
    who has no ``notifications`` event yet gets one holding what they have (source ``import``), so
    that the ledger again implies every patient's settings. Safe to run again: it records nothing
    twice. How many it recorded.
    """
    default = notification_state({}, [], [])
    recorded = 0
    with_event = set(
        ConsentEvent.objects.filter(subject=Subject.NOTIFICATIONS).values_list("address", flat=True).distinct()
    )
    practices: dict[Any, Practice] = {}
    for patient in Patient.objects.only(
        "id", "practice_id", "notification_overrides", "channel_opt_outs", "notification_phones_removed"
    ).iterator(chunk_size=2000):
        state = patient_notification_state(patient)
        address = patient_subject(patient.pk)
        if state == default or address in with_event:
            continue
        if patient.practice_id not in practices:
            practices[patient.practice_id] = Practice.objects.get(pk=patient.practice_id)
        with transaction.atomic():
            record(
                practice=practices[patient.practice_id],
                subject=Subject.NOTIFICATIONS,
                address=address,
                state=state,
                source="import",
                actor=actor,
                evidence={"baseline": "settings held before they were recorded in the ledger"},
            )
        recorded += 1
    return recorded
