"""Contacts API: one address's consent history from the ledger, and staff opt-out on request.

There is deliberately no endpoint to opt a phone back in to texts: only the
person can, by texting START (or UNSTOP) from that phone. An unsubscribed
email address comes back through the double opt-in resubscribe email, never
by a staff request.
"""

from __future__ import annotations

from typing import Literal

from ninja import Field, Query, Router, Schema

from consentry.api.auth import actor_of, practice_of
from consentry.api.schemas import MAX_SEQ, In
from consentry.consent import ledger, selectors
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, Source, Subject
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_address
from consentry.patients.models import Practice

router = Router(tags=["consent"])

HISTORY_PAGE = 500
HISTORY_PAGE_MAX = 5000
# NUL cannot be stored in a text or JSON column on every database.
PRINTABLE = r"^[^\x00]*$"


class ContactStatusOut(Schema):
    """Whether an address can be reached: a phone's texts and blocks, or an email's subscription."""

    address: str
    sms: Literal["opted_in", "opted_out"] | None
    email: Literal["subscribed", "unsubscribed", "bounced"] | None
    blocked_categories: list[str] | None


class EventOut(Schema):
    seq: int
    at: str
    subject: Subject
    state: str  # opted_in/opted_out, subscribed/unsubscribed/bounced, a block's categories as JSON, yes/no/unknown
    source: Source
    actor: str
    # What the ledger recorded; free text is never in it. ``{"note": id}`` names the note below.
    evidence: dict
    # The free text that explains the change (a staff member's reason), kept encrypted outside the ledger.
    note: str | None
    hash: str
    prev_hash: str


class HistoryOut(Schema):
    address: str
    status: ContactStatusOut
    events: list[EventOut]
    # Pass as ``after_seq`` for the next page; null on the last page.
    next_after_seq: int | None


class OptOutIn(In):
    model_config = {"extra": "forbid"}
    address: str = Field(max_length=320)
    reason: str = Field(max_length=500, pattern=PRINTABLE)


class OptOutOut(Schema):
    address: str
    changed: bool  # False: the address could already not be reached (opted out, unsubscribed or bounced)
    event: EventOut | None
    status: ContactStatusOut


def _status(practice: Practice, address: str) -> dict:
    status = selectors.address_status(practice.pk, address)
    if "@" in address:
        return {"address": address, "sms": None, "email": status.email, "blocked_categories": None}
    return {"address": address, "sms": status.sms, "email": None, "blocked_categories": status.blocked_categories}


def _event_out(event: ConsentEvent, notes: dict[int, str]) -> dict:
    return {
        "seq": event.seq,
        "at": event.created_at.isoformat(),
        "subject": event.subject,
        "state": event.state,
        "source": event.source,
        "actor": event.actor,
        "evidence": event.evidence,
        "note": notes.get(event.pk),
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


@router.get("/status", response=ContactStatusOut)
def contacts_status(request, address: str = Query(..., max_length=320)):
    """Can this phone be texted, this email written to? ``sms``/``blocked_categories`` for a phone, ``email`` for an
    email address; an address with no consent change has the defaults (texts and email allowed)."""
    practice = practice_of(request)
    return _status(practice, normalize_address(address, region=practice.region, field="address"))


@router.get("/history", response=HistoryOut)
def contacts_history(
    request,
    address: str = Query(..., max_length=320),
    limit: int = Query(HISTORY_PAGE, ge=1, le=HISTORY_PAGE_MAX),
    after_seq: int = Query(0, ge=0, le=MAX_SEQ),
):
    """Every ledger event about this address at this practice, oldest first, and its current status.

    A phone's history holds its SMS consent and its Blocked Communications
    changes; an email's holds its subscription (unsubscribes, bounces,
    resubscribes). Only the address's own events are listed: patient-level
    flags of the patients who share it (marketing consent, do-not-contact) are
    in those patients' records. An address with no events is listed with an
    empty history and the default status (texts and email allowed).
    """
    practice = practice_of(request)
    normalized = normalize_address(address, region=practice.region, field="address")
    history = selectors.address_history(practice.pk, normalized, after_seq=after_seq, limit=limit)
    return {
        "address": normalized,
        "status": _status(practice, normalized),
        "events": [_event_out(e, history.notes) for e in history.events],
        "next_after_seq": history.next_after_seq,
    }


@router.post("/opt-out", response=OptOutOut)
def contacts_opt_out(request, payload: OptOutIn):
    """Opt a phone out of texts, or unsubscribe an email address, because the person asked staff to.

    Recorded in the ledger with source ``staff`` and the API key as actor; the
    reason is kept encrypted beside the ledger (the event's ``note``).
    Repeating it changes nothing (``changed: false``). A bounced email address
    already receives nothing and stays bounced.
    """
    practice = practice_of(request)
    normalized = normalize_address(payload.address, region=practice.region, field="address")
    reason = payload.reason.strip()
    if not reason:
        raise InvalidInput("reason", 'say why, e.g. "patient asked by phone"')
    # The API key, by its label, is the actor (see api/auth.py).
    event = consent.staff_opt_out(practice=practice, address=normalized, reason=reason, actor=actor_of(request))
    return {
        "address": normalized,
        "changed": event is not None,
        "event": _event_out(event, ledger.notes([event])) if event else None,
        "status": _status(practice, normalized),
    }
