"""The ledger as an auditor reads it: filtered, and exported with its notes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from .. import ledger
from ..models import ConsentEvent
from ..rules import PracticeId

EXPORT_FIELDS = (
    "seq",
    "created_at",
    "subject",
    "address",
    "state",
    "source",
    "actor",
    "evidence",
    "note",
    "prev_hash",
    "hash",
)


def ledger_events(
    practice_id: PracticeId,
    *,
    address: str = "",
    source: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[ConsentEvent]:
    """The practice's ledger events matching every filter given, newest first."""
    events = ConsentEvent.objects.filter(practice_id=practice_id)
    if address:
        events = events.filter(address=address)
    if source:
        events = events.filter(source=source)
    if actor:
        events = events.filter(actor=actor)
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events.order_by("-seq")


def export_rows(events: QuerySet[ConsentEvent]) -> Iterator[dict[str, Any]]:
    """Each event (oldest first) with its note, the free text kept encrypted beside the ledger."""
    ordered = events.order_by("seq")
    last = 0
    while chunk := list(ordered.filter(seq__gt=last)[:2000]):
        notes = ledger.notes(chunk)
        for event in chunk:
            row = {f: getattr(event, f) for f in EXPORT_FIELDS if f != "note"}
            row["created_at"] = event.created_at.isoformat()
            row["note"] = notes.get(event.pk, "")
            yield row
        last = chunk[-1].seq


# --- a patient's notification settings, as the portal shows them ----------------------------------------------
