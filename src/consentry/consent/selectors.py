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

from consentry.patients.models import Category, ContactKind, ContactPoint, Patient
from consentry.vocabulary import BUILTIN_CATEGORIES, Channel, Kind, MarketingConsent, Reason

from . import ledger, rules
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
    "NotificationCell",
    "NotificationRow",
    "NotificationSettings",
    "notification_settings",
    "patient_phone_numbers",
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


# --- a patient's notification settings, as the portal shows them ----------------------------------------------


@dataclass(frozen=True)
class NotificationCell:
    """One channel of one notification type, as ``decide()`` applies the patient's settings to it."""

    channel: str
    # The portal offers a switch: the practice uses this channel for the type, or it is in-app (always
    # allowed), or the patient's settings turn it on already (so that they can turn it off again).
    offered: bool
    on: bool  # the practice's grid with the patient's choices applied (``rules.active_notification_channels``)
    locked: bool  # on whatever the patient chooses: a type the patient cannot turn off
    held: bool  # on for the type, but the patient turned the channel off for every type


@dataclass(frozen=True)
class NotificationRow:
    key: str
    marketing: bool
    can_disable: bool
    cells: tuple[NotificationCell, ...]  # one per channel, in ``rules.NOTIFICATION_ORDER``
    # A marketing type goes out only with the patient's marketing consent, which the practice has not recorded.
    needs_marketing_consent: bool = False

    @property
    def offered(self) -> list[NotificationCell]:
        return [cell for cell in self.cells if cell.offered]


@dataclass(frozen=True)
class NotificationSettings:
    rows: list[NotificationRow]
    # The channels a patient may turn off for every type at once (all but in-app), among those offered.
    opt_out_channels: list[str]
    channel_opt_outs: frozenset[str]
    phones_removed: frozenset[str]

    def row(self, key: str) -> NotificationRow | None:
        return next((row for row in self.rows if row.key == key), None)


_BUILTIN_ORDER = {key: i for i, key in enumerate(BUILTIN_CATEGORIES)}


def notification_settings(patient: Patient) -> NotificationSettings:
    """Per type of the practice and per channel, what the patient's settings make of the practice's grid.

    Asks the engine itself (``rules.decide`` for a notification with content on every channel, to a
    recipient with no address), so that the portal shows exactly what planning will do; a patient's
    marketing consent is left out of that question (it is the practice's record, not a setting here).
    """
    categories = sorted(
        Category.objects.filter(practice_id=patient.practice_id),
        key=lambda c: (_BUILTIN_ORDER.get(c.key, len(_BUILTIN_ORDER)), c.key),
    )
    overrides: dict[str, dict[str, bool]] = patient.notification_overrides or {}
    opt_outs = frozenset(patient.channel_opt_outs or ())
    every = frozenset(rules.NOTIFICATION_ORDER)
    rows = []
    for category in categories:
        rule = rules.Category(
            key=category.key,
            marketing=category.marketing,
            notification_channels=frozenset(Channel(c) for c in category.notification_channels),
            patient_can_disable=category.patient_can_disable,
        )
        recipient = rules.Recipient(
            patient_id=patient.pk,
            marketing_consent=MarketingConsent.YES,
            channel_opt_outs=frozenset(Channel(c) for c in opt_outs),
            notification_overrides={
                (category.key, Channel(c)): on for c, on in overrides.get(category.key, {}).items() if c in every
            },
        )
        active = rules.active_notification_channels(rule, recipient)
        request = rules.SendRequest(kind=Kind.NOTIFICATION, category=rule, content_channels=every)
        decision = rules.decide(request, recipient, rules.ConsentState(), datetime.now().astimezone())
        held = {p.channel for p in decision.deliveries if p.reason == Reason.CHANNEL_OPTED_OUT_BY_PATIENT}
        cells = []
        for channel in rules.NOTIFICATION_ORDER:
            in_grid = channel in rule.notification_channels
            cells.append(
                NotificationCell(
                    channel=channel.value,
                    offered=in_grid
                    or channel == Channel.IN_APP
                    or overrides.get(category.key, {}).get(channel) is True,
                    on=channel in active,
                    locked=in_grid and not category.patient_can_disable,
                    held=channel in held,
                )
            )
        rows.append(
            NotificationRow(
                key=category.key,
                marketing=category.marketing,
                can_disable=category.patient_can_disable,
                cells=tuple(cells),
                needs_marketing_consent=category.marketing and patient.marketing_consent != MarketingConsent.YES,
            )
        )
    offered = {cell.channel for row in rows for cell in row.cells if cell.offered}
    return NotificationSettings(
        rows=rows,
        opt_out_channels=[
            c.value for c in rules.NOTIFICATION_ORDER if c != Channel.IN_APP and (c in offered or c in opt_outs)
        ],
        channel_opt_outs=opt_outs,
        phones_removed=frozenset(patient.notification_phones_removed or ()),
    )


def patient_phone_numbers(patient: Patient) -> set[str]:
    """The numbers of the patient's phones."""
    return set(patient.contact_points.filter(kind=ContactKind.PHONE).values_list("address", flat=True))
