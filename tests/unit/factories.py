"""Small builders for the plain values ``decide()`` takes.

Nothing here touches the database: ``consentry.consent.rules`` is pure, so the
unit tests build ``Recipient``/``Phone``/``ConsentState``/``SendRequest`` values
directly and look at the ``Decision`` that comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from consentry.consent.rules import (
    Category,
    ConsentState,
    Decision,
    Phone,
    Planned,
    Recipient,
    SendRequest,
    builtin_category,
    decide,
)
from consentry.vocabulary import BUILTIN_CATEGORIES, Channel, Kind, LineType, MarketingConsent, Status

# A fixed instant: the consent rules do not depend on it, but decide() takes it.
NOW = datetime(2025, 6, 2, 15, 30, tzinfo=UTC)

MOBILE = "+15555550101"
MOBILE_2 = "+15555550102"
LANDLINE = "+15555550201"
VOIP = "+15555550301"
EMAIL = "pat@example.com"
EMAIL_2 = "parent@example.com"

SMS, VOICE, EMAIL_CH, IN_APP = Channel.SMS, Channel.VOICE, Channel.EMAIL, Channel.IN_APP
PENDING, SKIPPED = Status.PENDING, Status.SKIPPED


def category(key: str) -> Category:
    """A built-in category, as a new practice gets it."""
    return builtin_category(key)


ALL_CATEGORIES: tuple[Category, ...] = tuple(category(key) for key in BUILTIN_CATEGORIES)
TRANSACTIONAL_KEYS = tuple(key for key, (marketing, _, _) in BUILTIN_CATEGORIES.items() if not marketing)
MARKETING_KEYS = tuple(key for key, (marketing, _, _) in BUILTIN_CATEGORIES.items() if marketing)


def mobile(number: str = MOBILE, *, valid: bool = True) -> Phone:
    return Phone(number, LineType.MOBILE, valid)


def landline(number: str = LANDLINE, *, valid: bool = True) -> Phone:
    return Phone(number, LineType.LANDLINE, valid)


def voip(number: str = VOIP, *, valid: bool = True) -> Phone:
    return Phone(number, LineType.VOIP, valid)


def recipient(
    *,
    phones: Iterable[Phone] = (),
    emails: Iterable[str] = (),
    preferred: str | None = None,
    do_not_contact: bool = False,
    marketing: MarketingConsent | str = MarketingConsent.UNKNOWN,
    channel_opt_outs: Iterable[Channel | str] = (),
    overrides: Mapping[tuple[str, Channel | str], bool] | None = None,
    patient_id: object = "patient-1",
) -> Recipient:
    return Recipient(
        patient_id=patient_id,
        phones=tuple(phones),
        emails=tuple(emails),
        preferred_phone=preferred,
        do_not_contact=do_not_contact,
        marketing_consent=MarketingConsent(marketing),
        channel_opt_outs=frozenset(Channel(c) for c in channel_opt_outs),
        notification_overrides={(key, Channel(ch)): on for (key, ch), on in (overrides or {}).items()},
    )


def state(
    *,
    opted_out: Iterable[str] = (),
    unsubscribed: Iterable[str] = (),
    bounced: Iterable[str] = (),
    blocks: Mapping[str, Iterable[str]] | None = None,
) -> ConsentState:
    return ConsentState(
        sms_opted_out=frozenset(opted_out),
        email_unsubscribed=frozenset(unsubscribed),
        email_bounced=frozenset(bounced),
        blocks={number: frozenset(keys) for number, keys in (blocks or {}).items()},
    )


def send_request(kind: Kind | str, cat: Category | str, channels: Iterable[Channel | str]) -> SendRequest:
    return SendRequest(
        kind=Kind(kind),
        category=category(cat) if isinstance(cat, str) else cat,
        content_channels=frozenset(Channel(c) for c in channels),
    )


def run(
    kind: Kind | str,
    cat: Category | str,
    channels: Iterable[Channel | str],
    who: Recipient,
    consent: ConsentState | None = None,
) -> Decision:
    """decide() for one recipient, with an empty consent state unless one is given."""
    return decide(send_request(kind, cat, channels), who, consent or ConsentState(), NOW)


def rows(decision: Decision) -> list[tuple[str, str | None, str, str | None]]:
    """The planned deliveries as plain tuples, easy to compare and to read in a failure."""
    return [
        (str(p.channel), p.address, str(p.status), None if p.reason is None else str(p.reason))
        for p in decision.deliveries
    ]


def entry(decision: Decision, channel: Channel | str) -> Planned:
    """The one planned delivery for ``channel`` (fails if there is none or several)."""
    found = [p for p in decision.deliveries if p.channel == Channel(channel)]
    assert len(found) == 1, f"expected one {channel} entry, got {rows(decision)}"
    return found[0]


def has_entry(decision: Decision, channel: Channel | str) -> bool:
    return any(p.channel == Channel(channel) for p in decision.deliveries)


def sent_rows(decision: Decision) -> list[tuple[str, str | None]]:
    """(channel, address) of what would go out."""
    return [(str(p.channel), p.address) for p in decision.sends]
