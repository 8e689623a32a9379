"""Recall due dates: when each patient is next due for a category, and who is due, reachable how.

The practice's PMS keeps the dates (``PUT /api/v1/patients/{id}/due``); the recall list of the
staff app and ``GET /api/v1/recalls`` read them. Whether a due patient can be reached, and on
which channel, is the decision engine's own answer: ``decide()`` for an automation of that
category, one channel at a time, over the patient's addresses and their consent. So the list never
offers a channel that the send would refuse, and gives the same reason codes the deliveries carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from zoneinfo import ZoneInfo

from django.db import transaction

from consentry.consent import ledger
from consentry.consent.categories import category_from_row
from consentry.consent.rules import KIND_POLICY, Category, ConsentState, Phone, Recipient, SendRequest, decide
from consentry.consent.selectors import AddressCard, address_cards
from consentry.errors import InvalidInput
from consentry.patients.models import Category as CategoryRow
from consentry.patients.models import ContactPoint, Patient, PatientContact, PatientDue, Practice
from consentry.vocabulary import Channel, Kind, LineType, MarketingConsent

RECALL = "recall"
DEFAULT_HORIZON_DAYS = 30
MAX_PER_PAGE = 500
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Recalls are automations: the kind whose rules the list applies.
RECALL_KIND = Kind.AUTOMATION
# Not a delivery's reason: an automation goes to the patient's preferred phone only, when they have one.
NOT_PREFERRED = "not_preferred_phone"
# The order in which a recall tries channels (the engine's "first reachable").
RECALL_CHANNELS = (Channel.SMS, Channel.VOICE, Channel.EMAIL)


def practice_categories(practice: Practice) -> list[str]:
    """The practice's category keys, recalls first, then the others in the order they were made."""
    keys = list(CategoryRow.objects.filter(practice=practice).order_by("pk").values_list("key", flat=True))
    return sorted(keys, key=lambda key: key != RECALL)


def _category(practice: Practice, key: object, field: str = "category") -> CategoryRow:
    row = None
    if isinstance(key, str) and _KEY.fullmatch(key):
        row = CategoryRow.objects.filter(practice=practice, key=key).first()
    if row is None:
        shown = key if isinstance(key, str) and len(key) <= 64 else "that"
        raise InvalidInput(field, f"unknown category {shown!r}: not one of the practice's categories")
    return row


def default_due_before(practice: Practice, today: date | None = None) -> date:
    """The recall list's horizon unless asked otherwise: 30 days from today where the practice is."""
    today = today or datetime.now(ZoneInfo(practice.timezone)).date()
    return today + timedelta(days=DEFAULT_HORIZON_DAYS)


@transaction.atomic
def set_due(*, patient: Patient, category: str, due_on: date | None) -> PatientDue | None:
    """Set when the patient is next due for this category, or clear it with ``None``.

    The category must be one of the practice's (``InvalidInput`` otherwise, and nothing changes).
    """
    _category(patient.practice, category)
    if due_on is None:
        PatientDue.objects.filter(patient=patient, category=category).delete()
        return None
    due, _ = PatientDue.objects.update_or_create(
        patient=patient, category=category, defaults={"due_on": due_on, "practice_id": patient.practice_id}
    )
    return due


@dataclass(frozen=True)
class Reach:
    """Whether a recall can go on this channel, to which address, or why not (a delivery's reason code)."""

    channel: Channel
    address: str | None
    reason: str | None

    @property
    def can_send(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class AddressReach:
    """One of the patient's addresses: its marks (the staff app's icons) and what a recall could do with it."""

    card: AddressCard
    preferred: bool
    reach: tuple[Reach, ...]  # a phone: text, then call; an email: email

    def on(self, channel: Channel) -> Reach | None:
        return next((r for r in self.reach if r.channel == channel), None)


@dataclass(frozen=True)
class DuePatient:
    patient: Patient
    due_on: date
    channels: tuple[Reach, ...]  # text, call, email: what a recall to this patient would do on each
    addresses: tuple[AddressReach, ...]

    @property
    def phones(self) -> list[AddressReach]:
        return [a for a in self.addresses if a.card.is_phone]

    @property
    def emails(self) -> list[AddressReach]:
        return [a for a in self.addresses if not a.card.is_phone]

    @property
    def reachable(self) -> bool:
        return any(r.can_send for r in self.channels)


@dataclass(frozen=True)
class DueList:
    category: str
    before: date
    patients: list[DuePatient]
    has_more: bool


def patients_due(practice: Practice, *, category: str, before: date, offset: int = 0, limit: int = 100) -> DueList:
    """The practice's patients due for this category before that date (overdue ones included), soonest
    first, each with how a recall can reach them. ``InvalidInput`` for a category not the practice's."""
    rules_category = category_from_row(_category(practice, category))
    limit = max(1, min(limit, MAX_PER_PAGE))
    dues = list(
        PatientDue.objects.filter(practice=practice, category=category, due_on__lt=before)
        .select_related("patient")
        .order_by("due_on", "patient__last_name", "patient__first_name", "patient_id")[
            max(0, offset) : max(0, offset) + limit + 1
        ]
    )
    more = len(dues) > limit
    dues = dues[:limit]
    points: dict[object, list[ContactPoint]] = {due.patient_id: [] for due in dues}
    links = (
        PatientContact.objects.filter(patient_id__in=list(points))
        .select_related("contact_point")
        .order_by("position", "pk")
    )
    for link in links:
        points[link.patient_id].append(link.contact_point)
    every_point = list(chain.from_iterable(points.values()))
    cards = {c.point.pk: c for c in address_cards(practice.pk, every_point, explain=False)}
    state = ledger.consent_state(practice.pk, [p.address for p in every_point])
    now = datetime.now(UTC)
    listed = [
        _due_patient(due, [cards[p.pk] for p in points[due.patient_id]], rules_category, state, now) for due in dues
    ]
    return DueList(category, before, listed, more)


def _due_patient(
    due: PatientDue, cards: list[AddressCard], category: Category, state: ConsentState, now: datetime
) -> DuePatient:
    patient = due.patient
    phones = [c for c in cards if c.is_phone]
    preferred = next((c.point.address for c in phones if c.point.pk == patient.preferred_phone_id), None)
    recipient = Recipient(
        patient_id=patient.pk,
        phones=tuple(Phone(c.point.address, LineType(c.point.line_type), c.point.valid) for c in phones),
        emails=tuple(c.point.address for c in cards if not c.is_phone),
        preferred_phone=preferred,
        do_not_contact=patient.do_not_contact,
        marketing_consent=MarketingConsent(patient.marketing_consent),
    )
    channels = tuple(_reach(channel, recipient, category, state, now) for channel in RECALL_CHANNELS)
    only_preferred = KIND_POLICY[RECALL_KIND].preferred_phone and preferred is not None
    addresses = []
    for card in cards:
        address = card.point.address
        if card.is_phone:
            # This phone alone: its own reasons, whatever the patient's other phones.
            phone = Phone(address, LineType(card.point.line_type), card.point.valid)
            alone = replace(recipient, phones=(phone,), emails=(), preferred_phone=None)
            reach = tuple(_reach(ch, alone, category, state, now) for ch in (Channel.SMS, Channel.VOICE))
            if only_preferred and address != preferred:
                reach = tuple(r if r.reason else replace(r, reason=NOT_PREFERRED) for r in reach)
        else:
            alone = replace(recipient, phones=(), emails=(address,), preferred_phone=None)
            reach = (_reach(Channel.EMAIL, alone, category, state, now),)
        addresses.append(AddressReach(card, address == preferred, reach))
    return DuePatient(patient, due.due_on, channels, tuple(addresses))


def _reach(channel: Channel, recipient: Recipient, category: Category, state: ConsentState, now: datetime) -> Reach:
    """The engine's decision for a recall with content for this one channel (quiet hours aside: they
    delay a recall, never stop it)."""
    request = SendRequest(kind=RECALL_KIND, category=category, content_channels=frozenset({channel}))
    [planned] = decide(request, recipient, state, now).deliveries
    return Reach(channel, planned.address, planned.reason.value if planned.reason else None)
