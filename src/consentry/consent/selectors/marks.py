"""Why an address cannot be messaged, as the staff app's icons show it, with the ledger event behind each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from consentry.patients.models import ContactKind, ContactPoint

from .. import ledger
from ..models import ConsentEvent, Subject
from ..rules import ConsentState, PracticeId


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
