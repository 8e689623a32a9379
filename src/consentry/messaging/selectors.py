"""Reads of deliveries for people to look at: counts by status, the ones needing attention."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Count

from consentry.patients.models import Practice
from consentry.vocabulary import Status

from .models import Delivery

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
