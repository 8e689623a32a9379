"""Turn a message request into deliveries: validate, decide per recipient, write, enqueue.

The practice's consent (opt-outs, unsubscribes, bounces, blocks) is read once;
recipients are planned in chunks of 2,000, each read with one joined query
(patients and their contact points, see ``recipients.py``) and written with one
batched insert, never one query per recipient: a 100,000-patient broadcast
costs about a hundred round trips. The deliveries and their dispatch tasks are written in the same
transaction as the message: either all of it exists or none of it does.

``preview_message()`` runs the same decisions and stores nothing (the staff app's previews). Longer
than most modules on purpose: the request's checks, the decisions and the writer are read together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction

from consentry.consent.rules import AUTOMATED_KINDS, FrequencyCap, Planned, SendRequest, decide
from consentry.errors import InvalidInput
from consentry.patients.models import Practice
from consentry.vocabulary import Channel, Kind, Status

from . import hints, recipients, templating
from .categories import category_from_row, category_row, send_window
from .content import clean_content
from .models import Delivery, Message
from .tasks import enqueue_dispatch

PLAN_CHUNK = 2000
PHONE_CHANNELS = (Channel.SMS, Channel.VOICE)
SENDING = (Status.PENDING, Status.DEFERRED)
REQUEST_KINDS = (Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION)


class DeliveryRow(NamedTuple):
    patient_id: str | None
    channel: str
    address: str
    status: str
    reason: str
    not_before: datetime | None = None

    @classmethod
    def of(cls, patient_id: str, planned: Planned) -> DeliveryRow:
        reason = planned.reason.value if planned.reason else ""
        return cls(
            patient_id, planned.channel.value, planned.address or "", planned.status.value, reason, planned.not_before
        )


@dataclass(frozen=True)
class PlannedMessage:
    message: Message
    deliveries: list[DeliveryRow]
    warnings: dict[str, list[str]]
    replayed: bool = False  # an earlier request with the same Idempotency-Key


MAX_IDEMPOTENCY_KEY = 255


def _request_hash(kind, category, ids, cleaned) -> str:
    canonical = json.dumps(
        {"kind": kind, "category": category, "patient_ids": [str(i) for i in ids], "content": cleaned},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(practice: Practice, key: str, request_hash: str) -> PlannedMessage | None:
    message = Message.objects.filter(practice=practice, idempotency_key=key).first()
    if message is None:
        return None
    if message.request_hash != request_hash:
        raise InvalidInput("Idempotency-Key", "was already used for a different request")
    rows = [
        DeliveryRow(str(p) if p else None, c, a, s, r, n)
        for p, c, a, s, r, n in Delivery.objects.filter(message=message)
        .order_by("pk")
        .values_list("patient_id", "channel", "address", "status", "reason", "not_before")
    ]
    return PlannedMessage(message, rows, {}, replayed=True)


class Unacknowledged(Exception):
    """The plan carries warnings (a transactional message to a patient whose PMS marketing consent is
    "no") that the sender has not acknowledged: nothing was stored or queued."""

    def __init__(self, warnings: dict[str, list[str]]):
        super().__init__(f"{len(warnings)} patient(s) with warnings: acknowledge them to send")
        self.warnings = warnings


def create_message(
    *,
    practice: Practice,
    kind: str,
    category: str,
    patient_ids: Sequence,
    content: dict,
    actor: str = "api",
    now: datetime | None = None,
    idempotency_key: str = "",
    acknowledge_warnings: bool = False,
) -> PlannedMessage:
    """Plan and store a message to these patients; every input is checked before any write.

    With an ``idempotency_key``, a repeated request (same key, same body)
    returns the message the first one created, never a second send.

    A plan with warnings is stored only with ``acknowledge_warnings``; otherwise
    ``Unacknowledged`` carries them and nothing is stored or queued (staff see the
    warning first and press Proceed; the API answers 409).
    """
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("Idempotency-Key", f"is longer than {MAX_IDEMPOTENCY_KEY} characters")
    request, cleaned = _request(practice, kind, category, content)
    ids = recipients.parse_patient_ids(patient_ids)
    recipients.check_patients_belong(practice.pk, ids, PLAN_CHUNK)
    request_hash = _request_hash(request.kind, request.category.key, ids, cleaned) if idempotency_key else ""
    if idempotency_key and (replayed := _replay(practice, idempotency_key, request_hash)):
        return replayed
    try:
        return _plan(
            practice,
            request,
            ids,
            cleaned,
            actor,
            now or datetime.now(UTC),
            idempotency_key,
            request_hash,
            acknowledge_warnings,
        )
    except IntegrityError:
        # A concurrent request with the same key won the race: answer with its message.
        if idempotency_key and (replayed := _replay(practice, idempotency_key, request_hash)):
            return replayed
        raise


def _request(practice: Practice, kind: str, category: str, content: dict) -> tuple[SendRequest, dict]:
    """The engine's request for this kind, category and content, every input checked; and the content cleaned."""
    if kind not in REQUEST_KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(k.value for k in REQUEST_KINDS)}")
    request_kind = Kind(kind)
    category_record = category_row(practice, category)
    cleaned, channels = clean_content(
        request_kind,
        content,
        sms_prefix=templating.sms_prefix(practice),
        sms_suffix=hints.suffix(practice, request_kind),  # how to opt out, on automated texts
    )
    request = SendRequest(
        kind=request_kind,
        category=category_from_row(category_record),
        content_channels=channels,
        window=send_window(practice, request_kind, category_record),
        default_timezone=practice.timezone,
        frequency_cap=FrequencyCap(practice.frequency_cap_per_day, practice.frequency_cap_per_week)
        if practice.frequency_caps and request_kind in AUTOMATED_KINDS
        else None,
    )
    return request, cleaned


@dataclass(frozen=True)
class Preview:
    """What a message would do, decided by the engine and stored nowhere."""

    recipients: int
    by_channel: dict[str, int]  # deliveries that would go (pending or deferred), per channel
    skipped: dict[str, int]  # deliveries that would not, per reason
    warnings: dict[str, list[str]]  # patient id -> warnings, as create_message reports them
    deliveries: list[DeliveryRow]  # every planned delivery, when asked for


def preview_message(
    *,
    practice: Practice,
    kind: str,
    category: str,
    patient_ids: Sequence,
    content: dict,
    now: datetime | None = None,
    keep_deliveries: bool = False,
) -> Preview:
    """What ``create_message`` would plan for the same request, counted; nothing is written.

    The staff app shows it before a send (greyed-out channels, the marketing warning, a broadcast's
    recipients by channel and skip reason)."""
    request, _ = _request(practice, kind, category, content)
    ids = recipients.parse_patient_ids(patient_ids)
    recipients.check_patients_belong(practice.pk, ids, PLAN_CHUNK)
    by_channel: dict[str, int] = {}
    skipped: dict[str, int] = {}
    warnings: dict[str, list[str]] = {}
    rows: list[DeliveryRow] = []
    count = 0
    for chunk in _decisions(practice, request, ids, now or datetime.now(UTC)):
        for _, patient_id, _, decision in chunk:
            count += 1
            if decision.warnings:
                warnings[patient_id] = [str(w) for w in decision.warnings]
            for planned in decision.deliveries:
                if planned.status in SENDING:
                    by_channel[planned.channel.value] = by_channel.get(planned.channel.value, 0) + 1
                else:
                    reason = planned.reason.value if planned.reason else planned.status.value
                    skipped[reason] = skipped.get(reason, 0) + 1
                if keep_deliveries:
                    rows.append(DeliveryRow.of(patient_id, planned))
    return Preview(count, by_channel, skipped, warnings, rows)


def _plan(
    practice, request, ids, cleaned, actor, now, idempotency_key, request_hash, acknowledge_warnings
) -> PlannedMessage:
    category_value = request.category
    with transaction.atomic():
        message = Message.objects.create(
            practice=practice,
            kind=request.kind,
            category=category_value.key,
            content=json.dumps(cleaned),
            actor=actor,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        deliveries: list[DeliveryRow] = []
        warnings: dict[str, list[str]] = {}
        writer = _DeliveryWriter(message, now)
        for chunk in _decisions(practice, request, ids, now):
            for db_id, patient_id, zone, decision in chunk:
                if decision.warnings:
                    warnings[patient_id] = [str(w) for w in decision.warnings]
                for planned in decision.deliveries:
                    row = DeliveryRow.of(patient_id, planned)
                    writer.add(db_id, row, zone)
                    deliveries.append(row)
            writer.flush()
        if warnings and not acknowledge_warnings:
            raise Unacknowledged(warnings)  # the transaction is rolled back: nothing stored, nothing queued
        for not_before, delivery_ids in writer.due_ids().items():
            enqueue_dispatch(delivery_ids, run_after=not_before)
    return PlannedMessage(message, deliveries, warnings)


def _decisions(practice: Practice, request: SendRequest, ids: list, now: datetime):
    """The engine's decision for every recipient, a chunk at a time: lists of
    (patient id as the database has it, as text, the zone quiet hours were judged in, decision)."""
    to_db = recipients.db_id_function()
    state = recipients.practice_consent(practice.pk)
    recent = None
    if request.frequency_cap is not None:
        # Counted as the plan goes, so a family's shared phone is capped within one broadcast too.
        recent = recipients.recent_phone_sends(practice.pk, now, AUTOMATED_KINDS)
        state = replace(state, recent_sends=recent)
    for start in range(0, len(ids), PLAN_CHUNK):
        as_text = {to_db(i): str(i) for i in ids[start : start + PLAN_CHUNK]}
        chunk = []
        for recipient in recipients.load_chunk(as_text, request.category.key):
            decision = decide(request, recipient, state, now)
            # The zone quiet hours were judged in, for the worker's check before a late hand-over.
            zone = (recipient.timezone or request.default_timezone) if request.window is not None else ""
            chunk.append((recipient.patient_id, as_text[recipient.patient_id], zone, decision))
            if recent is not None:
                for planned in decision.deliveries:
                    if planned.address and planned.channel in PHONE_CHANNELS and planned.status in SENDING:
                        counts = recent.setdefault(planned.address, [0, 0])
                        counts[0] += 1
                        counts[1] += 1
        yield chunk


class _DeliveryWriter:
    """Inserts planned deliveries as plain rows: the model's columns, no model instances."""

    # Columns left out (provider_ref, error, attempts, timestamps of the send)
    # take their database defaults.
    COLUMNS = (
        "message_id",
        "practice_id",
        "patient_id",
        "channel",
        "address",
        "status",
        "reason",
        "not_before",
        "recipient_timezone",
        "created_at",
        "updated_at",
    )

    def __init__(self, message: Message, now: datetime):
        self.table = Delivery._meta.db_table
        self.message_id = recipients.db_id(message.pk)
        self.practice_id = recipients.db_id(message.practice_id)
        self.now = connection.ops.adapt_datetimefield_value(now)
        self.batch: list[tuple] = []
        self.adapted: dict = {}
        self.sql = (
            f"INSERT INTO {self.table} ({', '.join(self.COLUMNS)}) VALUES ({', '.join(['%s'] * len(self.COLUMNS))})"
        )

    def add(self, patient_db_id, row: DeliveryRow, zone: str = "") -> None:
        self.batch.append(
            (
                self.message_id,
                self.practice_id,
                patient_db_id,
                row.channel,
                row.address,
                row.status,
                row.reason,
                self._at(row.not_before),
                zone,
                self.now,
                self.now,
            )
        )

    def _at(self, when: datetime | None):
        if when is None:
            return None
        if when not in self.adapted:
            self.adapted[when] = connection.ops.adapt_datetimefield_value(when)
        return self.adapted[when]

    def flush(self) -> None:
        if self.batch:
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, self.batch)
            self.batch = []

    def due_ids(self) -> dict[datetime | None, list[int]]:
        """Deliveries to hand over, by when they may go (None: now)."""
        due: dict = {}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, not_before FROM {self.table} WHERE message_id = %s AND status IN (%s, %s) ORDER BY id",
                [self.message_id, Status.PENDING.value, Status.DEFERRED.value],
            )
            for pk, not_before in cursor.fetchall():
                due.setdefault(not_before, []).append(pk)
        return {_datetime_from_db(k): v for k, v in due.items()}


def _datetime_from_db(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    # SQLite keeps datetimes naive, in UTC (USE_TZ); PostgreSQL returns them aware.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
