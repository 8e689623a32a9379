"""Deliveries: a patient's communication history, and the practice's follow-up list by status."""

from __future__ import annotations

from datetime import datetime

from ninja import Query, Router, Schema

from consentry.api.auth import owned_or_404, practice_of
from consentry.api.schemas import as_utc
from consentry.messaging.models import Delivery
from consentry.messaging.selectors import list_deliveries
from consentry.patients.models import Patient
from consentry.vocabulary import Channel, Kind, Reason
from consentry.vocabulary import Status as DeliveryStatus

router = Router(tags=["deliveries"])


class DeliveryRowOut(Schema):
    id: int
    message_id: str
    kind: Kind
    category: str
    patient_id: str | None
    channel: Channel
    address: str | None
    status: DeliveryStatus
    reason: Reason | None
    error: str
    created_at: str
    sent_at: str | None
    delivered_at: str | None
    actor: str  # who sent the message: an API key's label, a staff user, the service


class DeliveryPageOut(Schema):
    deliveries: list[DeliveryRowOut]
    next_cursor: str | None


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _page_out(page) -> dict:
    return {
        "deliveries": [_delivery_out(d) for d in page.deliveries],
        "next_cursor": page.next_cursor,
    }


def _delivery_out(d: Delivery) -> dict:
    return {
        "id": d.pk,
        "message_id": str(d.message_id),
        "kind": d.message.kind,
        "category": d.message.category,
        "patient_id": str(d.patient_id) if d.patient_id else None,
        "channel": d.channel,
        "address": d.address or None,
        "status": d.status,
        "reason": d.reason or None,
        "error": d.error,
        "created_at": d.created_at.isoformat(),
        "sent_at": _iso(d.sent_at),
        "delivered_at": _iso(d.delivered_at),
        "actor": d.message.actor,
    }


@router.get("/deliveries", response=DeliveryPageOut)
def deliveries_list(
    request,
    status: DeliveryStatus | None = Query(None, description="e.g. failed: the deliveries to follow up"),
    since: datetime | None = Query(None, description="Only deliveries created at or after this instant"),
    cursor: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=500),
):
    """The practice's deliveries newest first."""
    page = list_deliveries(
        practice_of(request), status=status or "", since=as_utc(since, "since"), cursor=cursor, limit=limit
    )
    return _page_out(page)


@router.get("/patients/{patient_id}/deliveries", response=DeliveryPageOut)
def patient_deliveries(
    request,
    patient_id: str,
    cursor: str = Query("", max_length=200),
    limit: int = Query(100, ge=1, le=500),
):
    """The patient's communication history: every delivery to them, newest first."""
    patient = owned_or_404(Patient, request, patient_id)
    return _page_out(list_deliveries(practice_of(request), patient_id=patient.pk, cursor=cursor, limit=limit))
