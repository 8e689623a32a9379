"""Reads of deliveries for people to look at: counts by status, the ones needing attention."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet

from consentry.cursors import cursor_of, key_of
from consentry.errors import InvalidInput
from consentry.patients.models import Practice
from consentry.vocabulary import Kind, Status

from .models import Delivery, Message

NEEDS_ATTENTION = (Status.FAILED, Status.UNDELIVERED)


def status_counts(practice: Practice, since: datetime) -> dict[str, int]:
    """Deliveries created since then, by status (every status listed, zeros included)."""
    found = dict(
        Delivery.objects.filter(practice=practice, created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {status.value: found.get(status.value, 0) for status in Status}


def needing_attention(practice: Practice, since: datetime, limit: int = 10) -> list[Delivery]:
    """Failed and undelivered deliveries since then, newest first, with their patient and message."""
    return list(
        Delivery.objects.filter(practice=practice, created_at__gte=since, status__in=NEEDS_ATTENTION)
        .select_related("patient", "message")
        .order_by("-created_at", "-pk")[:limit]
    )


def patient_deliveries(practice: Practice, patient_id: uuid.UUID, limit: int = 100) -> list[Delivery]:
    """A patient's deliveries, newest first, with their message (the facesheet's communication history)."""
    return list(
        Delivery.objects.filter(practice=practice, patient_id=patient_id)
        .select_related("message")
        .order_by("-created_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class Report:
    """A message's delivery report: where its deliveries stand, and why the ones not sent were not."""

    total: int
    by_status: dict[str, int]  # every status, zeros included
    by_reason: dict[str, int]  # skipped, failed and undelivered deliveries, by reason (or error code)
    by_channel: dict[str, int]

    @property
    def pending(self) -> int:
        return self.by_status.get(Status.PENDING, 0) + self.by_status.get(Status.DEFERRED, 0)


def message_report(message: Message) -> Report:
    return reports([message])[message.pk]


def reports(messages: list[Message]) -> dict[uuid.UUID, Report]:
    """The delivery report of each of these messages, from one grouped read."""
    counts: dict[uuid.UUID, list[tuple[str, str, str, int]]] = {m.pk: [] for m in messages}
    for message_id, status, reason, channel, n in (
        Delivery.objects.filter(message__in=messages)
        .values_list("message_id", "status", "reason", "channel")
        .annotate(n=Count("id"))
        .values_list("message_id", "status", "reason", "channel", "n")
    ):
        counts[message_id].append((status, reason, channel, n))
    return {message_id: report_of(rows) for message_id, rows in counts.items()}


def report_of(rows: Iterable[tuple[str, str, str, int]]) -> Report:
    """A report from counts of deliveries by (status, reason, channel)."""
    by_status = {status.value: 0 for status in Status}
    by_reason: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    total = 0
    for status, reason, channel, n in rows:
        total += n
        by_status[status] = by_status.get(status, 0) + n
        by_channel[channel] = by_channel.get(channel, 0) + n
        if status in (Status.SKIPPED, Status.FAILED, Status.UNDELIVERED):
            key = reason or status
            by_reason[key] = by_reason.get(key, 0) + n
    return Report(total, by_status, dict(sorted(by_reason.items(), key=lambda kv: -kv[1])), by_channel)


# The service's own messages (keyword replies, opt-in emails) are not listed with the practice's.
SENT_BY_THE_PRACTICE = (Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION)
MAX_PAGE = 500


def _newest_first(rows: QuerySet, cursor: str, limit: int, key: str = "created_at") -> tuple[list, str | None]:
    """One page of rows newest first, by (``key``, pk), after the row the cursor names."""
    if cursor:
        at, _, raw_pk = key_of(cursor).partition("|")
        try:
            instant = datetime.fromisoformat(at).astimezone(UTC)
            pk = rows.model._meta.pk.to_python(raw_pk)
        except (ValueError, OverflowError, ValidationError) as exc:
            raise InvalidInput("cursor", "is not a cursor this API gave") from exc
        rows = rows.filter(Q(**{f"{key}__lt": instant}) | Q(**{key: instant, "pk__lt": pk}))
    page = list(rows.order_by(f"-{key}", "-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    last = page[-1] if page else None
    return page, cursor_of(f"{getattr(last, key).isoformat()}|{last.pk}") if more and last else None


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    reports: dict[uuid.UUID, Report]
    next_cursor: str | None


def list_messages(
    practice: Practice,
    *,
    kind: str = "",
    category: str = "",
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    status: str = "",
    cursor: str = "",
    limit: int = 50,
) -> MessagePage:
    """The practice's messages newest first, each with its delivery report; ``status`` keeps the
    messages that have a delivery in it (``failed``: what needs following up)."""
    rows = Message.objects.filter(practice=practice, kind__in=SENT_BY_THE_PRACTICE)
    if kind:
        rows = rows.filter(kind=kind)
    if category:
        rows = rows.filter(category=category)
    if created_after is not None:
        rows = rows.filter(created_at__gte=created_after)
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    if status:
        rows = rows.filter(pk__in=Delivery.objects.filter(practice=practice, status=status).values("message_id"))
    page, next_cursor = _newest_first(rows, cursor, max(1, min(limit, MAX_PAGE)))
    return MessagePage(page, reports(page), next_cursor)


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_cursor: str | None


def list_deliveries(
    practice: Practice,
    *,
    patient_id: uuid.UUID | None = None,
    status: str = "",
    since: datetime | None = None,
    cursor: str = "",
    limit: int = 100,
) -> DeliveryPage:
    """The practice's deliveries newest first, each with its message: one patient's (their
    communication history), or all of one status (``failed``: the follow-up list)."""
    rows = Delivery.objects.filter(practice=practice).select_related("message")
    if patient_id is not None:
        rows = rows.filter(patient_id=patient_id)
    if status:
        rows = rows.filter(status=status)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    page, next_cursor = _newest_first(rows, cursor, max(1, min(limit, MAX_PAGE)))
    return DeliveryPage(page, next_cursor)


def message_deliveries(message: Message, *, status: str = "", reason: str = "") -> QuerySet[Delivery]:
    """A message's deliveries, optionally of one status or reason, in the order they were planned."""
    rows = Delivery.objects.filter(message=message).select_related("patient")
    if status:
        rows = rows.filter(status=status)
    if reason:
        rows = rows.filter(reason=reason)
    return rows.order_by("pk")


@dataclass(frozen=True)
class MessageDeliveryPage:
    deliveries: list[tuple]  # (patient_id, channel, address, status, reason, not_before)
    next_cursor: str | None


MESSAGE_DELIVERY_FIELDS = ("patient_id", "channel", "address", "status", "reason", "not_before")


def message_delivery_page(message: Message, *, cursor: str = "", limit: int = 100) -> MessageDeliveryPage:
    """One page of a message's deliveries in the order they were planned (by id), after the one the
    cursor names: how a client reads a message too large to list in one answer."""
    rows = Delivery.objects.filter(message=message)
    if cursor:
        after = key_of(cursor, int)
        if not 0 <= after < 2**63:
            raise InvalidInput("cursor", "is not a cursor this API gave")
        rows = rows.filter(pk__gt=after)
    limit = max(1, min(limit, MAX_PAGE))
    page = list(rows.order_by("pk").values_list("pk", *MESSAGE_DELIVERY_FIELDS)[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return MessageDeliveryPage([row[1:] for row in page], cursor_of(page[-1][0]) if more else None)


def broadcasts(practice: Practice, limit: int = 50) -> list[Message]:
    return list(Message.objects.filter(practice=practice, kind=Kind.BROADCAST).order_by("-created_at")[:limit])


DELIVERY_EXPORT_FIELDS = (
    "patient_id",
    "external_id",
    "first_name",
    "last_name",
    "channel",
    "address",
    "status",
    "reason",
    "error",
    "sent_at",
    "delivered_at",
)


def delivery_export_rows(message: Message) -> Iterator[list]:
    """Every delivery of a message as a row of ``DELIVERY_EXPORT_FIELDS``: who, where, what became of it."""
    for d in message_deliveries(message).iterator(chunk_size=2000):
        patient = d.patient
        yield [
            d.patient_id or "",
            patient.external_id if patient else "",
            patient.first_name if patient else "",
            patient.last_name if patient else "",
            d.channel,
            d.address,
            d.status,
            d.reason,
            d.error,
            d.sent_at.isoformat() if d.sent_at else "",
            d.delivered_at.isoformat() if d.delivered_at else "",
        ]
