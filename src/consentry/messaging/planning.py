"""Turn a message request into deliveries: validate, decide per recipient, write, enqueue.

The practice's consent (opt-outs, unsubscribes, bounces, blocks) is read once;
the audience is then planned a chunk of 2,000 patients at a time, end to end:
one joined read of their flags and contact points (see ``recipients.py``), the
decisions, one batched insert of their deliveries and the dispatch tasks of the
ones that go. Nothing grows with the audience but the counts: a 100,000-patient
broadcast costs a few hundred round trips, and planning a whole practice (the
``EVERY_PATIENT`` audience) reads its ids a chunk at a time too. The deliveries
and their dispatch tasks are written in the same transaction as the message
(django-tasks-db's tasks are rows of this database): either all of it exists or
none of it does.

The answer lists the first ``INLINE_DELIVERIES`` deliveries and counts all of
them by status, reason and channel (the API pages through the rest).

``preview_message()`` runs the same decisions and stores nothing (the staff app's previews). Longer
than most modules on purpose: the request's checks, the decisions and the writer are read together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django_tasks.base import Task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult, get_date_max

from consentry.bulk import execute
from consentry.consent.rules import (
    AUTOMATED_KINDS,
    KIND_POLICY,
    FrequencyCap,
    Planned,
    Selection,
    SendRequest,
    decide,
)
from consentry.errors import InvalidInput
from consentry.patients.models import Practice
from consentry.vocabulary import Channel, Kind, Reason, Status

from . import hints, recipients, templating
from .categories import category_from_row, category_row, send_window
from .content import clean_content
from .models import Delivery, Message
from .recipients import EVERY_PATIENT, EveryPatient
from .selectors import Report, message_report, report_of
from .tasks import dispatch_deliveries

PLAN_CHUNK = 2000
# Deliveries an answer lists inline, in plan order; a message with more answers with its counts and the
# first ones (the API's ``deliveries_url`` pages through every one).
INLINE_DELIVERIES = 1000
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
    deliveries: list[DeliveryRow]  # the first INLINE_DELIVERIES planned, in plan order
    warnings: dict[str, list[str]]
    report: Report  # every delivery planned, counted by status, reason and channel
    replayed: bool = False  # an earlier request with the same Idempotency-Key

    @property
    def truncated(self) -> bool:
        """More deliveries were planned than ``deliveries`` lists."""
        return self.report.total > len(self.deliveries)


MAX_IDEMPOTENCY_KEY = 255


def _request_hash(kind, category, ids, cleaned) -> str:
    audience: dict[str, object] = (
        {"audience": "every_patient"} if isinstance(ids, EveryPatient) else {"patient_ids": [str(i) for i in ids]}
    )
    canonical = json.dumps(
        {"kind": kind, "category": category, **audience, "content": cleaned},
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
        .values_list("patient_id", "channel", "address", "status", "reason", "not_before")[:INLINE_DELIVERIES]
    ]
    return PlannedMessage(message, rows, {}, message_report(message), replayed=True)


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
    patient_ids: Sequence | EveryPatient,
    content: dict,
    actor: str = "api",
    now: datetime | None = None,
    idempotency_key: str = "",
    acknowledge_warnings: bool = False,
) -> PlannedMessage:
    """Plan and store a message to these patients (or ``EVERY_PATIENT`` of the practice); a request
    with any bad input (an id that names no patient of the practice...) stores nothing.

    With an ``idempotency_key``, a repeated request (same key, same body)
    returns the message the first one created, never a second send.

    A plan with warnings is stored only with ``acknowledge_warnings``; otherwise
    ``Unacknowledged`` carries them and nothing is stored or queued (staff see the
    warning first and press Proceed; the API answers 409).
    """
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput("Idempotency-Key", f"is longer than {MAX_IDEMPOTENCY_KEY} characters")
    request, cleaned = _request(practice, kind, category, content)
    ids = _audience(patient_ids)
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


def _audience(patient_ids: Sequence | EveryPatient) -> list | EveryPatient:
    """The audience checked for form: every patient, or distinct well-formed ids (whether they name
    patients of the practice is checked a chunk at a time as they are read)."""
    return EVERY_PATIENT if isinstance(patient_ids, EveryPatient) else recipients.parse_patient_ids(patient_ids)


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
    patient_ids: Sequence | EveryPatient,
    content: dict,
    now: datetime | None = None,
    keep_deliveries: bool = False,
) -> Preview:
    """What ``create_message`` would plan for the same request, counted; nothing is written.

    The staff app shows it before a send (greyed-out channels, the marketing warning, a broadcast's
    recipients by channel and skip reason)."""
    request, _ = _request(practice, kind, category, content)
    ids = _audience(patient_ids)
    text_id = recipients.text_id_function()
    by_channel: dict[str, int] = {}
    skipped: dict[str, int] = {}
    warnings: dict[str, list[str]] = {}
    rows: list[DeliveryRow] = []
    count = 0
    with recipients.bounded_cache():
        for chunk in _decisions(practice, request, ids, now or datetime.now(UTC)):
            for db_id, _, decision in chunk:
                count += 1
                if decision.warnings:
                    warnings[text_id(db_id)] = [str(w) for w in decision.warnings]
                for planned in decision.deliveries:
                    if planned.status in SENDING:
                        by_channel[planned.channel.value] = by_channel.get(planned.channel.value, 0) + 1
                    else:
                        reason = planned.reason.value if planned.reason else planned.status.value
                        skipped[reason] = skipped.get(reason, 0) + 1
                    if keep_deliveries:
                        rows.append(DeliveryRow.of(text_id(db_id), planned))
    return Preview(count, by_channel, skipped, warnings, rows)


def _plan(
    practice, request, ids, cleaned, actor, now, idempotency_key, request_hash, acknowledge_warnings
) -> PlannedMessage:
    category_value = request.category
    text_id = recipients.text_id_function()
    with recipients.bounded_cache(), transaction.atomic():
        message = Message.objects.create(
            practice=practice,
            kind=request.kind,
            category=category_value.key,
            content=json.dumps(cleaned),
            actor=actor,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        kept: list[DeliveryRow] = []
        counts: dict[tuple[str, str, str], int] = {}
        warnings: dict[str, list[str]] = {}
        writer = _DeliveryWriter(message, now)
        queue = _DispatchQueue(settings.CONSENTRY_DISPATCH_BATCH)
        for chunk in _decisions(practice, request, ids, now):
            for db_id, zone, decision in chunk:
                if decision.warnings:
                    warnings[text_id(db_id)] = [str(w) for w in decision.warnings]
                for planned in decision.deliveries:
                    key = writer.add(db_id, planned, zone)
                    counts[key] = counts.get(key, 0) + 1
                    if len(kept) < INLINE_DELIVERIES:
                        kept.append(DeliveryRow.of(text_id(db_id), planned))
            for pk, not_before in writer.flush():
                queue.add(pk, not_before)
            queue.write()
        for pk, not_before in writer.flush(final=True):
            queue.add(pk, not_before)
        if warnings and not acknowledge_warnings:
            raise Unacknowledged(warnings)  # the transaction is rolled back: nothing stored, nothing queued
        queue.close()
    report = report_of((status, reason, channel, n) for (status, reason, channel), n in counts.items())
    return PlannedMessage(message, kept, warnings, report)


def _needs(request: SendRequest) -> recipients.Needs:
    """What of each patient this request's decisions read (the rest is not selected)."""
    policy = KIND_POLICY[request.kind]
    return recipients.Needs(
        zone=request.window is not None,
        preferred=policy.preferred_phone,
        notification=policy.channels == Selection.ACTIVE_FOR_TYPE,
    )


def _recipients(practice: Practice, ids: list | EveryPatient, key: str, needs: recipients.Needs):
    """The audience's recipients, a chunk at a time. A list of ids is checked as it is read: an id that names
    no patient of the practice is a 422 (raised before the chunk it is in is decided, so a plan's
    transaction stores nothing)."""
    if isinstance(ids, EveryPatient):
        yield from recipients.practice_patients(practice.pk, key, needs, PLAN_CHUNK)
        return
    for chunk_ids in recipients.id_chunks(practice.pk, ids, PLAN_CHUNK):
        loaded = recipients.load_chunk(chunk_ids, key, needs, practice.pk)
        if len(loaded) < len(chunk_ids):
            recipients.check_patients_belong(practice.pk, ids, PLAN_CHUNK)  # raises, naming them all
        yield loaded


def _decisions(practice: Practice, request: SendRequest, ids: list | EveryPatient, now: datetime):
    """The engine's decision for every recipient, a chunk at a time: lists of (patient id as the
    database has it, the zone quiet hours were judged in, decision)."""
    state = recipients.practice_consent(practice.pk)
    recent = None
    if request.frequency_cap is not None:
        # Counted as the plan goes, so a family's shared phone is capped within one broadcast too.
        recent = recipients.recent_phone_sends(practice.pk, now, AUTOMATED_KINDS)
        state = replace(state, recent_sends=recent)
    needs, key = _needs(request), request.category.key
    for loaded in _recipients(practice, ids, key, needs):
        chunk = []
        for recipient in loaded:
            decision = decide(request, recipient, state, now)
            # The zone quiet hours were judged in, for the worker's check before a late hand-over.
            zone = (recipient.timezone or request.default_timezone) if request.window is not None else ""
            chunk.append((recipient.patient_id, zone, decision))
            if recent is not None:
                for planned in decision.deliveries:
                    if planned.address and planned.channel in PHONE_CHANNELS and planned.status in SENDING:
                        recent[planned.address] = _one_more(recent.get(planned.address, (0, 0)))
        yield chunk


@lru_cache(maxsize=256)
def _one_more(counts: tuple[int, int]) -> tuple[int, int]:
    # Shared tuples: a broadcast's counts stay small however many numbers it texts.
    return counts[0] + 1, counts[1] + 1


_VALUE = {m: m.value for enum in (Channel, Status, Reason) for m in enum}


class _DeliveryWriter:
    """Inserts planned deliveries as plain rows (the model's columns, no model instances), a chunk at a
    time; gives back the ids of the ones to hand over, with when they may go."""

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
    # Rows per statement: 11,000 parameters, within SQLite's and PostgreSQL's limits.
    ROWS = 1000

    def __init__(self, message: Message, now: datetime):
        self.table = Delivery._meta.db_table
        self.message_id = recipients.db_id(message.pk)
        self.practice_id = recipients.db_id(message.practice_id)
        self.now = connection.ops.adapt_datetimefield_value(now)
        self.params: list = []  # flat, COLUMNS at a time, in plan order (the ids follow it)
        self.rows = 0  # rows queued in ``params``
        self.due: list[tuple[int, datetime | None]] = []  # (row in ``params``, not before) of those to hand over
        self.adapted: dict = {}
        # SQLite numbers a statement's rows consecutively (see ``_insert``); PostgreSQL says which ids it gave.
        self.sqlite = connection.vendor == "sqlite"
        self.full_sql = ""

    def add(self, patient_db_id, planned: Planned, zone: str = "") -> tuple[str, str, str]:
        """Queue one delivery's row; its (status, reason, channel) for the counts."""
        status, channel = _VALUE[planned.status], _VALUE[planned.channel]
        reason = _VALUE[planned.reason] if planned.reason else ""
        if planned.status in SENDING:
            self.due.append((self.rows, planned.not_before))
        self.rows += 1
        self.params.extend(
            (
                self.message_id,
                self.practice_id,
                patient_db_id,
                channel,
                planned.address or "",
                status,
                reason,
                self._at(planned.not_before),
                zone,
                self.now,
                self.now,
            )
        )
        return status, reason, channel

    def _at(self, when: datetime | None):
        if when is None:
            return None
        if when not in self.adapted:
            self.adapted[when] = connection.ops.adapt_datetimefield_value(when)
        return self.adapted[when]

    def _sql(self, rows: int) -> str:
        if rows == self.ROWS and self.full_sql:
            return self.full_sql
        one = f"({', '.join(['%s'] * len(self.COLUMNS))})"
        sql = f"INSERT INTO {self.table} ({', '.join(self.COLUMNS)}) VALUES {', '.join([one] * rows)}"
        if not self.sqlite:
            sql += " RETURNING id"
        if rows == self.ROWS:
            self.full_sql = sql
        return sql

    def _insert(self, cursor, rows: int, params: list) -> Sequence[int]:
        """Insert ``rows`` rows; their ids, in the order of the rows."""
        # Straight to SQLite's driver when it may (Django's cursor would rewrite the statement's 11,000 "%s"
        # on every call).
        execute(cursor, self._sql(rows), params)
        if self.sqlite:
            # One statement's rows take consecutive ids, in the order of its VALUES: each new row gets one more
            # than the largest id (AUTOINCREMENT never reuses one) and nothing else writes while it runs.
            last = cursor.lastrowid
            return range(last - rows + 1, last + 1)
        # PostgreSQL returns the rows of an INSERT ... VALUES in the order of its VALUES (bulk_create relies on it).
        return [pk for (pk,) in cursor.fetchall()]

    def flush(self, final: bool = False) -> list[tuple[int, datetime | None]]:
        """Write the queued rows ``ROWS`` at a time (with ``final``, the last ones too: otherwise they
        wait for the next chunk, so that every statement but the last has the one shape, prepared
        once); (id, not before) of each delivery to hand over, in id order."""
        handed: list[tuple[int, datetime | None]] = []
        width, due, taken = len(self.COLUMNS), self.due, 0
        end = self.rows if final else self.rows - self.rows % self.ROWS
        with connection.cursor() as cursor:
            for start in range(0, end, self.ROWS):
                rows = min(self.ROWS, end - start)
                ids = self._insert(cursor, rows, self.params[start * width : (start + rows) * width])
                while taken < len(due) and due[taken][0] < start + rows:
                    row, not_before = due[taken]
                    handed.append((ids[row - start], not_before))
                    taken += 1
        del self.params[: end * width]
        self.rows -= end
        self.due = [(row - end, not_before) for row, not_before in due[taken:]]
        handed.sort(key=lambda entry: entry[0])
        return handed


class _DispatchQueue:
    """Dispatch tasks of ``batch`` deliveries each, per instant they may go: a plan holds at most one
    unfilled batch per instant. The batches a chunk fills are enqueued together (``write``)."""

    def __init__(self, batch: int):
        self.batch = batch
        self.waiting: dict[datetime | None, list[int]] = {}
        self.filled: list[tuple[list[int], datetime | None]] = []

    def add(self, pk: int, not_before: datetime | None) -> None:
        ids = self.waiting.setdefault(not_before, [])
        ids.append(pk)
        if len(ids) >= self.batch:
            self.filled.append((ids, not_before))
            self.waiting[not_before] = []

    def write(self) -> None:
        """Enqueue the batches filled so far."""
        if self.filled:
            _enqueue_dispatches(self.filled)
            self.filled = []

    def close(self) -> None:
        self.filled += [(ids, not_before) for not_before, ids in self.waiting.items() if ids]
        self.waiting = {}
        self.write()


def _enqueue_dispatches(batches: list[tuple[list[int], datetime | None]]) -> None:
    """``enqueue_dispatch(ids, run_after=not_before)`` for each batch, in one INSERT.

    Each row is the one django-tasks-db's backend writes for ``dispatch_deliveries.enqueue(ids)``: the
    same columns and values, ``run_after`` without an instant being its far-future marker (which its
    ``pre_save`` handler would set), validated by the backend as it would be. Only the statement per
    task goes, and the ``task_enqueued`` signal (django-tasks' debug log line) that it sends per task."""
    backend = dispatch_deliveries.get_backend()
    assert isinstance(backend, DatabaseBackend)  # tasks are rows of this database: they roll back with the plan
    tasks: dict[datetime | None, Task] = {}
    rows: list[DBTaskResult] = []
    for ids, run_after in batches:
        if (task := tasks.get(run_after)) is None:
            task = tasks[run_after] = (
                dispatch_deliveries.using(run_after=run_after) if run_after else dispatch_deliveries
            )
            backend.validate_task(task)
        rows.append(
            DBTaskResult(
                id=backend._get_id(),
                args_kwargs={"args": [ids], "kwargs": {}},
                priority=task.priority,
                task_path=task.module_path,
                queue_name=task.queue_name,
                run_after=task.run_after or get_date_max(),
                backend_name=backend.alias,
            )
        )
    DBTaskResult.objects.bulk_create(rows)
