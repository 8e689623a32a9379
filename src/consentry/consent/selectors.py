"""Reads of consent for people to look at: an address's status and history, a patient's addresses.

The API, the patient portal and the staff app show the same facts from here;
``ledger.consent_state()`` remains the read that ``decide()`` takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from consentry.patients.models import ContactKind, ContactPoint, Patient

from . import ledger
from .ledger import AddressStatus, address_status
from .models import ConsentEvent, ContactConsent, EmailState, ResubscribeRequest, SmsState, Subject
from .rules import ConsentState, PracticeId

__all__ = [
    "AddressStatus",
    "address_status",
    "History",
    "address_history",
    "PhoneView",
    "EmailView",
    "patient_addresses",
    "opt_outs_since",
    "MarkCode",
    "Mark",
    "AddressCard",
    "address_cards",
    "consent_timeline",
    "next_opt_in_email_at",
    "EXPORT_FIELDS",
    "ledger_events",
    "export_rows",
]


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


class MarkCode(StrEnum):
    """Why an address cannot be messaged, or not on every channel: the icons of the staff app."""

    SMS_OPTED_OUT = "sms_opted_out"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"
    EMAIL_BOUNCED = "email_bounced"
    BLOCKED = "blocked"
    INVALID = "invalid"
    LANDLINE = "landline"


MARK_LABELS = {
    MarkCode.SMS_OPTED_OUT: "Opted out of texts",
    MarkCode.EMAIL_UNSUBSCRIBED: "Unsubscribed from email",
    MarkCode.EMAIL_BOUNCED: "Email bounced",
    MarkCode.BLOCKED: "Blocked",
    MarkCode.INVALID: "Not a valid number",
    MarkCode.LANDLINE: "Landline: calls only",
}
# The ledger subject whose latest event tells when and how a mark came about.
_MARK_SUBJECT = {
    MarkCode.SMS_OPTED_OUT: Subject.SMS,
    MarkCode.EMAIL_UNSUBSCRIBED: Subject.EMAIL,
    MarkCode.EMAIL_BOUNCED: Subject.EMAIL,
    MarkCode.BLOCKED: Subject.BLOCK,
}


@dataclass(frozen=True)
class Mark:
    code: MarkCode
    label: str  # the icon's hover text
    event: ConsentEvent | None = None  # the ledger event behind it: when, source, actor, evidence
    categories: tuple[str, ...] = ()  # for a block: the categories


@dataclass(frozen=True)
class AddressCard:
    """One of a patient's addresses as staff see it: what it is, and every reason it cannot be messaged."""

    point: ContactPoint
    marks: list[Mark]

    @property
    def is_phone(self) -> bool:
        return self.point.kind == ContactKind.PHONE

    @property
    def can_text(self) -> bool:
        return self.is_phone and not any(
            m.code in (MarkCode.SMS_OPTED_OUT, MarkCode.INVALID, MarkCode.LANDLINE) for m in self.marks
        )


def _marks(point: ContactPoint, state: ConsentState) -> list[MarkCode | tuple[MarkCode, tuple[str, ...]]]:
    address = point.address
    if point.kind == ContactKind.EMAIL:
        if address in state.email_bounced:
            return [MarkCode.EMAIL_BOUNCED]
        return [MarkCode.EMAIL_UNSUBSCRIBED] if address in state.email_unsubscribed else []
    found: list[MarkCode | tuple[MarkCode, tuple[str, ...]]] = []
    if not point.valid:
        found.append(MarkCode.INVALID)
    if point.line_type == "landline":
        found.append(MarkCode.LANDLINE)
    if address in state.sms_opted_out:
        found.append(MarkCode.SMS_OPTED_OUT)
    if categories := state.blocks.get(address):
        found.append((MarkCode.BLOCKED, tuple(sorted(categories))))
    return found


def address_cards(practice_id: PracticeId, points: list[ContactPoint], *, explain: bool = True) -> list[AddressCard]:
    """The cards of these contact points; with ``explain``, each mark has the ledger event behind it."""
    state = ledger.consent_state(practice_id, [p.address for p in points])
    cards = []
    for point in points:
        marks = []
        for found in _marks(point, state):
            code, categories = found if isinstance(found, tuple) else (found, ())
            event = None
            if explain and (subject := _MARK_SUBJECT.get(code)):
                event = (
                    ConsentEvent.objects.filter(practice_id=practice_id, address=point.address, subject=subject)
                    .order_by("-seq")
                    .first()
                )
            label = MARK_LABELS[code] + (f" for {', '.join(categories)}" if categories else "")
            marks.append(Mark(code, label, event, categories))
        cards.append(AddressCard(point, marks))
    return cards


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
