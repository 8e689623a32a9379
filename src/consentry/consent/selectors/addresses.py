"""An address's status and history, a patient's addresses, recent opt-outs: consent as people read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from consentry.patients.models import ContactKind, Patient

from .. import ledger
from ..models import ConsentEvent, ContactConsent, EmailState, ResubscribeRequest, SmsState, Subject
from ..rules import PracticeId


@dataclass(frozen=True)
class History:
    """One page of an address's ledger events, oldest first, with their notes."""

    events: list[ConsentEvent]
    notes: dict[int, str]  # event id -> the note it names (decrypted)
    next_after_seq: int | None  # pass as ``after_seq`` for the next page; None on the last


def address_history(practice_id: PracticeId, address: str, *, after_seq: int = 0, limit: int = 500) -> History:
    page = list(
        ConsentEvent.objects.filter(practice_id=practice_id, address=address, seq__gt=after_seq).order_by("seq")[
            : limit + 1
        ]
    )
    more = len(page) > limit
    page = page[:limit]
    return History(page, ledger.notes(page), page[-1].seq if more else None)


@dataclass(frozen=True)
class PhoneView:
    number: str
    opted_out: bool
    since: datetime | None  # when it opted out
    textable: bool  # a valid number on a line that takes texts


@dataclass(frozen=True)
class EmailView:
    address: str
    state: EmailState


def patient_addresses(patient: Patient) -> tuple[list[PhoneView], list[EmailView]]:
    """The patient's phones and emails, in the order they were given, each with what it can receive."""
    points = [link.contact_point for link in patient.contacts.select_related("contact_point").order_by("pk")]
    addresses = [p.address for p in points]
    state = ledger.consent_state(patient.practice_id, addresses)
    since = dict(
        ContactConsent.objects.filter(
            practice_id=patient.practice_id, address__in=addresses, sms=SmsState.OPTED_OUT
        ).values_list("address", "last_event__created_at")
    )
    phones = [
        PhoneView(
            p.address, p.address in state.sms_opted_out, since.get(p.address), p.valid and p.line_type != "landline"
        )
        for p in points
        if p.kind == ContactKind.PHONE
    ]
    emails = [
        EmailView(
            p.address,
            EmailState.BOUNCED
            if p.address in state.email_bounced
            else EmailState.UNSUBSCRIBED
            if p.address in state.email_unsubscribed
            else EmailState.SUBSCRIBED,
        )
        for p in points
        if p.kind == ContactKind.EMAIL
    ]
    return phones, emails


OPTED_OUT_STATES = {Subject.SMS: SmsState.OPTED_OUT, Subject.EMAIL: EmailState.UNSUBSCRIBED}


def opt_outs_since(practice_id: PracticeId, since: datetime) -> dict[str, int]:
    """Phones that opted out of texts and emails unsubscribed since then, by subject."""
    counts = {}
    for subject, state in OPTED_OUT_STATES.items():
        counts[subject.value] = ConsentEvent.objects.filter(
            practice_id=practice_id, subject=subject, state=state, created_at__gte=since
        ).count()
    return counts


def next_opt_in_email_at(practice_id: PracticeId, email: str, now: datetime) -> datetime | None:
    """When the next opt-in email may go to this address, if the once-a-day limit holds it now."""
    last = (
        ResubscribeRequest.objects.filter(practice_id=practice_id, email=email)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is None:
        return None
    allowed = last + timedelta(hours=settings.CONSENTRY_RESUBSCRIBE_EVERY_HOURS)
    return allowed if allowed > now else None


def consent_timeline(practice_id: PracticeId, addresses: list[str], limit: int = 200) -> list[ConsentEvent]:
    """The ledger events of these addresses, newest first (the facesheet's consent timeline)."""
    return list(ConsentEvent.objects.filter(practice_id=practice_id, address__in=addresses).order_by("-seq")[:limit])
