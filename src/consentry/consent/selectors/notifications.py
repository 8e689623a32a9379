"""A patient's notification settings as the portal shows them, asked of the engine itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consentry.patients.models import Category, ContactKind, Patient
from consentry.vocabulary import BUILTIN_CATEGORIES, Channel, Kind, MarketingConsent, Reason

from .. import rules


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
