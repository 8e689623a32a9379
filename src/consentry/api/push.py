"""In-app notices and Web Push subscriptions of a patient, for the patient portal.

A browser's ``PushSubscription`` JSON (``{"endpoint", "keys": {"p256dh", "auth"}}``,
as ``subscription.toJSON()`` gives it) is registered once per endpoint; the
``applicationServerKey`` to subscribe with is at ``/push/public-key``.
"""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema, Status

from consentry.api.auth import practice_of
from consentry.api.schemas import MAX_OFFSET, In
from consentry.patients.models import Patient
from consentry.providers import webpush
from consentry.providers.models import InAppNotice, PushSubscription

router = Router(tags=["portal"])


def _patient(request: HttpRequest, patient_id: str) -> Patient:
    try:
        pk = uuid.UUID(patient_id)
    except ValueError:
        raise Http404("no such patient") from None
    patient = Patient.objects.filter(practice=practice_of(request), pk=pk).first()
    if patient is None:
        raise Http404("no such patient")
    return patient


class KeysIn(In):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class SubscriptionIn(In):
    """A browser's PushSubscription JSON; other members (``expirationTime``) are ignored."""

    endpoint: str = Field(max_length=webpush.ENDPOINT_MAX_LENGTH)
    keys: KeysIn


class SubscriptionOut(Schema):
    id: int
    endpoint: str
    created_at: str
    last_error: str


class NoticeOut(Schema):
    id: int
    delivery_id: int
    category: str
    subject: str
    body: str
    created_at: str
    read_at: str | None


class PublicKeyOut(Schema):
    enabled: bool
    public_key: str | None


def _subscription_out(s: PushSubscription) -> dict:
    return {"id": s.pk, "endpoint": s.endpoint, "created_at": s.created_at.isoformat(), "last_error": s.last_error}


@router.get("/push/public-key", response=PublicKeyOut)
def push_public_key(request):
    """The VAPID applicationServerKey browsers subscribe with; null while push is off."""
    if not webpush.enabled():
        return {"enabled": False, "public_key": None}
    return {"enabled": True, "public_key": webpush.public_key()}


@router.post("/patients/{patient_id}/push-subscriptions", response={201: SubscriptionOut})
def push_subscriptions_create(request, patient_id: str, payload: SubscriptionIn):
    """Register a browser's subscription. The same endpoint again updates its keys, never duplicates it."""
    subscription = webpush.subscribe(
        patient=_patient(request, patient_id),
        endpoint=payload.endpoint,
        p256dh=payload.keys.p256dh,
        auth=payload.keys.auth,
    )
    return Status(201, _subscription_out(subscription))


@router.get("/patients/{patient_id}/push-subscriptions", response=list[SubscriptionOut])
def push_subscriptions_list(request, patient_id: str):
    patient = _patient(request, patient_id)
    return [_subscription_out(s) for s in PushSubscription.objects.filter(patient=patient).order_by("pk")]


@router.delete("/patients/{patient_id}/push-subscriptions/{subscription_id}", response={204: None})
def push_subscriptions_delete(request, patient_id: str, subscription_id: str):
    patient = _patient(request, patient_id)
    deleted = 0
    if subscription_id.isascii() and subscription_id.isdigit() and len(subscription_id) <= 18:
        deleted, _ = PushSubscription.objects.filter(patient=patient, pk=int(subscription_id)).delete()
    if not deleted:
        raise Http404("no such push subscription")
    return Status(204, None)


@router.get("/patients/{patient_id}/notices", response=list[NoticeOut])
def notices_list(
    request, patient_id: str, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_OFFSET)
):
    """The patient's in-app notices, newest first."""
    patient = _patient(request, patient_id)
    notices = InAppNotice.objects.filter(patient=patient).order_by("-created_at", "-pk")[offset : offset + limit]
    return [
        {
            "id": n.pk,
            "delivery_id": n.delivery_id,
            "category": n.category,
            "subject": n.subject,
            "body": n.body,
            "created_at": n.created_at.isoformat(),
            "read_at": n.read_at.isoformat() if n.read_at else None,
        }
        for n in notices
    ]
