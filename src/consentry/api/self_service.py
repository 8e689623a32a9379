"""Self-service links staff hand to patients: the resubscribe email, and a portal link."""

from __future__ import annotations

import math
import uuid

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, Router, Schema, Status

from consentry.api.auth import SEND, actor_of, practice_of
from consentry.api.errors import ErrorOut, error
from consentry.api.schemas import In
from consentry.consent import tokens
from consentry.messaging.self_service import NotUnsubscribed, TooSoon, request_resubscribe
from consentry.patients.models import Patient

router = Router(tags=["consent"])


class ResubscribeIn(In):
    email: str = Field(max_length=320)


class ResubscribeOut(Schema):
    email: str
    sent: bool
    detail: str


class Refused(ErrorOut):
    """``error.code``: ``not_unsubscribed`` (409) or ``too_soon`` (429, with ``retry_after_seconds``)."""

    retry_after_seconds: int | None = None


@router.post("/contacts/resubscribe-email", response={202: ResubscribeOut, 409: Refused, 429: Refused}, auth=SEND)
def resubscribe_email(request: HttpRequest, response: HttpResponse, payload: ResubscribeIn):
    """Send the double opt-in email to an unsubscribed address: the person confirms with its Opt-In button.

    At most one per address per 24 hours (429 with ``Retry-After``); the link expires after 7 days.
    """
    try:
        sent = request_resubscribe(practice=practice_of(request), email=payload.email, actor=actor_of(request))
    except TooSoon as exc:
        seconds = math.ceil(exc.retry_after.total_seconds())
        response["Retry-After"] = str(seconds)
        return Status(429, error("too_soon", str(exc), "email", retry_after_seconds=seconds))
    except NotUnsubscribed as exc:
        return Status(409, error("not_unsubscribed", str(exc), "email"))
    return Status(
        202,
        {
            "email": sent.email,
            "sent": True,
            "detail": "A resubscribe email is on its way; the address is subscribed once the person presses Opt-In.",
        },
    )


class PortalLinkOut(Schema):
    url: str
    expires_in_days: int


@router.post("/patients/{patient_id}/portal-link", response={201: PortalLinkOut})
def portal_link(request: HttpRequest, patient_id: str):
    """A link to the patient's contact settings page (no password; it expires after 7 days)."""
    try:
        pk = uuid.UUID(patient_id)
    except ValueError:
        raise Http404("no such patient") from None
    if not Patient.objects.filter(practice=practice_of(request), pk=pk).exists():
        raise Http404("no such patient")
    url = tokens.public_url(f"/portal/{tokens.portal_token(pk)}")
    return Status(201, {"url": url, "expires_in_days": tokens.PORTAL_MAX_AGE.days})
