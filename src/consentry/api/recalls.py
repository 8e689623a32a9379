"""Recalls: when each patient is next due, and the patients due, with how a recall can reach them."""

from __future__ import annotations

from datetime import date
from typing import Literal

from ninja import Field, Query, Router, Schema

from consentry.api.auth import owned_or_404, practice_of
from consentry.api.schemas import MAX_OFFSET, In
from consentry.consent.selectors import MarkCode
from consentry.patients.models import Patient
from consentry.records import dues
from consentry.records.dues import AddressReach, DuePatient, Reach
from consentry.vocabulary import Channel, LineType, Reason

router = Router(tags=["recalls"])


class DueIn(In):
    category: str = Field(max_length=64, description="One of the practice's categories, e.g. recall.")
    due_on: date | None = Field(description="The date the patient is next due (YYYY-MM-DD); null clears it.")


class DueOut(Schema):
    patient_id: str
    category: str
    due_on: date | None


class ReachOut(Schema):
    can_send: bool
    reason: Reason | Literal["not_preferred_phone"] | None = Field(
        description="Why a recall cannot go this way: the reason a send's skipped delivery would carry, or "
        "not_preferred_phone (an automation uses only the patient's preferred phone, when they have one)."
    )


class ChannelOut(ReachOut):
    channel: Channel
    address: str | None = Field(description="Where it would go, or the address whose refusal is the reason.")


class PhoneReachOut(Schema):
    number: str
    line_type: LineType
    valid: bool
    preferred: bool
    marks: list[MarkCode]
    sms: ReachOut
    voice: ReachOut


class EmailReachOut(Schema):
    address: str
    marks: list[MarkCode]
    email: ReachOut


class RecallOut(Schema):
    id: str
    first_name: str
    last_name: str
    due_on: date
    do_not_contact: bool
    channels: list[ChannelOut] = Field(description="What a recall would do on each channel, text, call, email.")
    phones: list[PhoneReachOut]
    emails: list[EmailReachOut]


@router.put("/patients/{patient_id}/due", response=DueOut)
def patients_due_set(request, patient_id: str, payload: DueIn):
    """Set when the patient is next due for a category (a recall), or clear it with ``"due_on": null``."""
    patient = owned_or_404(Patient, request, patient_id)
    dues.set_due(patient=patient, category=payload.category, due_on=payload.due_on)
    return {"patient_id": str(patient.pk), "category": payload.category, "due_on": payload.due_on}


@router.get("/recalls", response=list[RecallOut])
def recalls_list(
    request,
    category: str = Query(dues.RECALL, max_length=64),
    due_before: date | None = None,
    limit: int = Query(100, ge=1, le=dues.MAX_PER_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """The patients due for this category (``recall`` by default) before ``due_before`` (by default
    30 days from today), overdue ones included, soonest first. Each comes with what a recall would do
    on each channel, and every phone and email with whether a recall can reach it and why not: the
    reason codes a send's skipped deliveries carry."""
    practice = practice_of(request)
    found = dues.patients_due(
        practice,
        category=category,
        before=due_before or dues.default_due_before(practice),
        offset=offset,
        limit=limit,
    )
    return [_recall_out(p) for p in found.patients]


def _reach_out(reach: Reach | None) -> dict:
    if reach is None:
        return {"can_send": False, "reason": None}
    return {"can_send": reach.can_send, "reason": reach.reason}


def _phone_out(a: AddressReach) -> dict:
    point = a.card.point
    return {
        "number": point.address,
        "line_type": point.line_type,
        "valid": point.valid,
        "preferred": a.preferred,
        "marks": [m.code for m in a.card.marks],
        "sms": _reach_out(a.on(Channel.SMS)),
        "voice": _reach_out(a.on(Channel.VOICE)),
    }


def _recall_out(due: DuePatient) -> dict:
    patient = due.patient
    return {
        "id": str(patient.pk),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "due_on": due.due_on,
        "do_not_contact": patient.do_not_contact,
        "channels": [{"channel": r.channel, "address": r.address, **_reach_out(r)} for r in due.channels],
        "phones": [_phone_out(a) for a in due.phones],
        "emails": [
            {
                "address": a.card.point.address,
                "marks": [m.code for m in a.card.marks],
                "email": _reach_out(a.on(Channel.EMAIL)),
            }
            for a in due.emails
        ],
    }
