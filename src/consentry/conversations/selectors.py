"""Reads of conversations for people to look at: the inbox's list and search, one conversation.

The inbox puts the conversations waiting for staff (a reply that may ask to stop) on top, then
every other by its last activity. An opted-out phone's conversation carries the system line of
its opt-out, worded as in the conversation itself (``services.consent_line()``), so staff see
why it is red without opening it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db.models import Case, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When

from consentry.consent.models import ConsentEvent, ContactConsent, SmsState, Subject
from consentry.patients.addresses import looks_like_phone, typed_phone
from consentry.patients.models import ContactKind, PatientContact, Practice

from . import services
from .models import Conversation, ConversationEntry, Flag

PER_PAGE = 50
MAX_QUERY = 200


def flagged_count(practice: Practice) -> int:
    """Conversations whose last reply may ask to stop, waiting for staff to confirm or clear."""
    return Conversation.objects.filter(practice=practice, flag=Flag.POSSIBLE_OPT_OUT).count()


@dataclass(frozen=True)
class PatientName:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class OptOut:
    """Why a conversation is red: the ledger event that opted its phone out, in the conversation's words."""

    event: ConsentEvent
    line: str

    @property
    def at(self) -> datetime:
        return self.event.created_at


@dataclass(frozen=True)
class InboxRow:
    conversation: Conversation
    patients: list[PatientName]  # everyone who lists the phone (a family shares one conversation)
    last: ConversationEntry | None
    opt_out: OptOut | None  # set when the phone is opted out of texts

    @property
    def flagged(self) -> bool:
        return self.conversation.flag == Flag.POSSIBLE_OPT_OUT

    @property
    def preview(self) -> str:
        return services.preview(self.last)


class Match(StrEnum):
    ALL = "all"
    PHONE = "phone"
    NAME = "name"


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    q: str
    match: Match
    page: int
    has_next: bool


@dataclass(frozen=True)
class Thread:
    """One conversation as staff see it: who shares the phone, every line, and whether a reply may go."""

    conversation: Conversation
    patients: list[PatientName]
    lines: list[services.Line]
    opt_out: OptOut | None
    refusal: services.ReplyRefused | None  # why a staff reply would be refused now

    @property
    def flagged(self) -> bool:
        return self.conversation.flag == Flag.POSSIBLE_OPT_OUT

    @property
    def reply_state(self) -> str:
        """What the reply box shows: "open", or the reason it is refused."""
        return str(self.refusal.reason) if self.refusal else "open"


def _matching(practice: Practice, q: str) -> tuple[QuerySet[Conversation], Match]:
    """The practice's conversations whose phone is the number typed (in any format), or whose
    phone is listed by a patient whose names start with each word typed."""
    conversations = Conversation.objects.filter(practice=practice)
    if not q:
        return conversations, Match.ALL
    if looks_like_phone(q):
        number = typed_phone(q, practice.region)
        if number is None:
            return conversations.none(), Match.PHONE
        return conversations.filter(phone=number), Match.PHONE
    names = Q()
    for word in q.split()[:4]:
        names &= Q(patient__first_name__istartswith=word) | Q(patient__last_name__istartswith=word)
    phones = PatientContact.objects.filter(
        names, patient__practice=practice, contact_point__kind=ContactKind.PHONE
    ).values("contact_point__address")
    return conversations.filter(phone__in=phones), Match.NAME


def patient_names(practice: Practice, phones: list[str]) -> dict[str, list[PatientName]]:
    """The patients who list each phone, by name."""
    found: dict[str, list[PatientName]] = {phone: [] for phone in phones}
    rows = (
        PatientContact.objects.filter(contact_point__practice=practice, contact_point__address__in=phones)
        .order_by("patient__last_name", "patient__first_name", "patient_id")
        .values_list("contact_point__address", "patient_id", "patient__first_name", "patient__last_name")
    )
    for address, patient_id, first, last in rows:
        found[address].append(PatientName(patient_id, f"{first} {last}".strip()))
    return found


def opt_outs(practice: Practice, phones: list[str]) -> dict[str, OptOut]:
    """The phones opted out of texts, each with the latest SMS event of the ledger (the opt-out)."""
    latest = ConsentEvent.objects.filter(
        practice_id=OuterRef("practice_id"), address=OuterRef("address"), subject=Subject.SMS
    ).order_by("-seq")
    rows = dict(
        ContactConsent.objects.filter(practice=practice, address__in=phones, sms=SmsState.OPTED_OUT)
        .annotate(event_id=Subquery(latest.values("pk")[:1]))
        .values_list("address", "event_id")
    )
    events = ConsentEvent.objects.in_bulk([pk for pk in rows.values() if pk])
    return {
        phone: OptOut(event, services.consent_line(event))
        for phone, pk in rows.items()
        if (event := events.get(pk)) is not None
    }


def inbox(practice: Practice, q: str = "", *, page: int = 1, per_page: int = PER_PAGE) -> InboxPage:
    """One page of the practice's conversations matching ``q``: flagged ones first, then newest activity."""
    q = " ".join((q or "").split())[:MAX_QUERY]
    page = max(1, page)
    found, match = _matching(practice, q)
    ordered = found.annotate(
        waiting=Case(When(flag=Flag.POSSIBLE_OPT_OUT, then=Value(0)), default=Value(1), output_field=IntegerField())
    ).order_by("waiting", "-last_activity_at", "-created_at", "pk")
    start = (page - 1) * per_page
    rows = services.with_last_entries(ordered[start : start + per_page + 1])
    rows, more = rows[:per_page], len(rows) > per_page
    phones = [c.phone for c, _ in rows]
    names = patient_names(practice, phones)
    stopped = opt_outs(practice, phones)
    return InboxPage(
        [InboxRow(c, names[c.phone], last, stopped.get(c.phone)) for c, last in rows], q, match, page, more
    )


def thread(conversation: Conversation) -> Thread:
    practice = conversation.practice
    return Thread(
        conversation=conversation,
        patients=patient_names(practice, [conversation.phone])[conversation.phone],
        lines=services.timeline(conversation),
        opt_out=opt_outs(practice, [conversation.phone]).get(conversation.phone),
        refusal=services.reply_refusal(conversation),
    )
