"""Reads of deliveries for people to look at: counts by status, the ones needing attention."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, QuerySet

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
    rows = Delivery.objects.filter(message=message)
    by_status = {status.value: 0 for status in Status}
    by_reason: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    total = 0
    for status, reason, channel, n in (
        rows.values_list("status", "reason", "channel")
        .annotate(n=Count("id"))
        .values_list("status", "reason", "channel", "n")
    ):
        total += n
        by_status[status] = by_status.get(status, 0) + n
        by_channel[channel] = by_channel.get(channel, 0) + n
        if status in (Status.SKIPPED, Status.FAILED, Status.UNDELIVERED):
            key = reason or status
            by_reason[key] = by_reason.get(key, 0) + n
    return Report(total, by_status, dict(sorted(by_reason.items(), key=lambda kv: -kv[1])), by_channel)


def message_deliveries(message: Message, *, status: str = "", reason: str = "") -> QuerySet[Delivery]:
    """A message's deliveries, optionally of one status or reason, in the order they were planned."""
    rows = Delivery.objects.filter(message=message).select_related("patient")
    if status:
        rows = rows.filter(status=status)
    if reason:
        rows = rows.filter(reason=reason)
    return rows.order_by("pk")


def broadcasts(practice: Practice, limit: int = 50) -> list[Message]:
    return list(Message.objects.filter(practice=practice, kind=Kind.BROADCAST).order_by("-created_at")[:limit])
