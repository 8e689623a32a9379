"""Who may be reached, on which channel, and why not: pure rules, no I/O.

``decide()`` takes plain values and returns a ``Decision``. Everything it needs
(the recipient's addresses, the consent state of those addresses, the
practice's notification grid, the time) is passed in, so the same function
serves the API, broadcast planning and the tests; ``address_block_reason()``,
its address rules alone, is the worker's last check before a hand-over.

Which rules each kind of message obeys is one table, ``KIND_POLICY``, the same
as the README's (docs/architecture.md explains the layers around it).

One module on purpose, longer than most: the decision table, the values it
reads and the few functions that apply it are read together whenever a rule
is in question, and it imports only the standard library.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from consentry.vocabulary import BUILTIN_CATEGORIES, Channel, Kind, LineType, MarketingConsent, Reason, Status

# "First reachable" order for automations and broadcasts.
FIRST_REACHABLE_ORDER = (Channel.SMS, Channel.VOICE, Channel.EMAIL)
# Order in which notification channels are listed.
NOTIFICATION_ORDER = (Channel.IN_APP, Channel.SMS, Channel.VOICE, Channel.EMAIL)


class Selection(StrEnum):
    """How a kind picks its channels."""

    FIRST_REACHABLE = "first_reachable"  # at most one message: text, else call, else email
    EVERY_WRITTEN = "every_written"  # every channel the sender wrote content for
    ACTIVE_FOR_TYPE = "active_for_type"  # every channel active for the notification type


class Unsubscribe(StrEnum):
    """When an email address's unsubscribe stops a message."""

    ALWAYS = "always"
    MARKETING_ONLY = "marketing_only"  # unsubscribing stops broadcasts, not appointment notices
    NEVER = "never"  # the opt-in email the person asked for; a keyword reply


@dataclass(frozen=True, slots=True)
class KindPolicy:
    # SMS opt-outs, Blocked Communications and email bounces. Only keyword replies are exempt:
    # they answer the person who just wrote (the confirmation of a STOP must reach its number).
    address_consent: bool
    unsubscribe: Unsubscribe
    do_not_contact: bool
    preferred_phone: bool
    quiet_hours: bool  # deferred, never dropped (unless the category is exempt)
    frequency_cap: bool  # when the practice turns caps on
    marketing_warning: bool  # warn, never block, when a transactional message goes to a "no"
    channels: Selection


# The decision table, as in the README. PMS marketing consent applies to every kind, for marketing categories only.
ALWAYS, MARKETING_ONLY, NEVER = Unsubscribe
FIRST_REACHABLE, EVERY_WRITTEN, ACTIVE_FOR_TYPE = Selection
# fmt: off
KIND_POLICY: Mapping[Kind, KindPolicy] = {
    #                               consent unsubscribe     DNC    preferred quiet  cap    warn   channels
    Kind.AUTOMATION:      KindPolicy(True,  ALWAYS,         True,  True,     True,  True,  False, FIRST_REACHABLE),
    Kind.BROADCAST:       KindPolicy(True,  ALWAYS,         False, False,    True,  True,  False, FIRST_REACHABLE),
    Kind.MANUAL:          KindPolicy(True,  ALWAYS,         False, True,     False, False, True,  EVERY_WRITTEN),
    Kind.NOTIFICATION:    KindPolicy(True,  MARKETING_ONLY, False, True,     True,  True,  False, ACTIVE_FOR_TYPE),
    Kind.KEYWORD_REPLY:   KindPolicy(False, NEVER,          False, True,     False, False, False, EVERY_WRITTEN),
    Kind.CONSENT_REQUEST: KindPolicy(True,  NEVER,          False, True,     False, False, False, EVERY_WRITTEN),
}
# fmt: on
# Staff are present for manual messages, and keyword replies answer the person who just wrote:
# neither waits for quiet hours nor counts against a frequency cap.
QUIET_HOURS_KINDS = frozenset(kind for kind, policy in KIND_POLICY.items() if policy.quiet_hours)
AUTOMATED_KINDS = frozenset(kind for kind, policy in KIND_POLICY.items() if policy.frequency_cap)


# Members the hot path reads, looked up once: on Python 3.11 ``Channel.SMS`` goes through the enum
# metaclass's ``__getattr__`` hook, about 0.1 µs a read, and a decision makes a dozen of them.
_SMS, _VOICE, _EMAIL, _IN_APP = Channel.SMS, Channel.VOICE, Channel.EMAIL, Channel.IN_APP
_PENDING, _SKIPPED, _DEFERRED = Status.PENDING, Status.SKIPPED, Status.DEFERRED
_YES, _NO, _LANDLINE = MarketingConsent.YES, MarketingConsent.NO, LineType.LANDLINE


# A practice's id as the callers hold it: the model's UUID, or its text.
PracticeId = uuid.UUID | str


@dataclass(frozen=True, slots=True)
class Phone:
    number: str  # E.164
    line_type: LineType = LineType.MOBILE
    valid: bool = True

    @property
    def text_capable(self) -> bool:
        # Only a known landline is ruled out: VoIP and unknown lines usually
        # take texts, and the carrier will tell us (an error) when they don't.
        return self.line_type != _LANDLINE


@dataclass(frozen=True, slots=True)
class Recipient:
    patient_id: object
    phones: tuple[Phone, ...] = ()
    emails: tuple[str, ...] = ()
    preferred_phone: str | None = None
    do_not_contact: bool = False
    marketing_consent: MarketingConsent = MarketingConsent.UNKNOWN
    # Channels the patient turned off for every notification type.
    channel_opt_outs: frozenset[Channel] = frozenset()
    # Per notification type and channel: True turns a channel on, False off.
    notification_overrides: Mapping[tuple[str, Channel], bool] = field(default_factory=dict)
    # Phones the patient took off their notification settings: no notification calls or texts them
    # (as a channel opt-out, except for types the patient cannot turn off). Other kinds still may.
    notification_phones_removed: frozenset[str] = frozenset()
    # Where the recipient is, for quiet hours: the patient's own time zone, else
    # their phone's; empty means the practice's (``SendRequest.default_timezone``).
    timezone: str = ""


@dataclass(frozen=True, slots=True)
class ConsentState:
    """The consent of the addresses involved, at one practice."""

    sms_opted_out: frozenset[str] = frozenset()
    email_unsubscribed: frozenset[str] = frozenset()
    email_bounced: frozenset[str] = frozenset()
    # phone number -> categories it is blocked for
    blocks: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # phone number -> (automated messages in the last day, in the last week),
    # for frequency caps; the planner counts the message being planned too.
    recent_sends: Mapping[str, Sequence[int]] = field(default_factory=dict)  # per number: (day, week)


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most this many automated calls and texts to one number (FCC healthcare exemption: 1 a day, 3 a week)."""

    per_day: int | None = 1
    per_week: int | None = 3

    def reached(self, sends: Sequence[int]) -> bool:
        day, week = sends
        return (self.per_day is not None and day >= self.per_day) or (
            self.per_week is not None and week >= self.per_week
        )


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    marketing: bool = False
    # Default notification channels for this category (the practice's grid).
    notification_channels: frozenset[Channel] = frozenset()
    # System notices (account, security) cannot be turned off by patients.
    patient_can_disable: bool = True


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local hours in which a message may ring a phone or land in an inbox."""

    start: time = time(8, 0)
    end: time = time(21, 0)

    def contains(self, t: time) -> bool:
        if self.start == self.end:
            return True  # e.g. 00:00–00:00: no quiet hours at all
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # a window that spans midnight


@dataclass(frozen=True, slots=True)
class SendRequest:
    kind: Kind
    category: Category
    # Channels the sender wrote content for.
    content_channels: frozenset[Channel]
    # Quiet hours: outside this window, sends are deferred to its next opening.
    # None when they do not apply (staff messages, exempt types).
    window: SendWindow | None = None
    default_timezone: str = "UTC"
    # Off unless the practice turns it on; applies to automated kinds only.
    frequency_cap: FrequencyCap | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    channel: Channel
    address: str | None
    status: Status
    reason: Reason | None = None
    not_before: datetime | None = None  # when a deferred delivery may go


@dataclass(frozen=True, slots=True)
class Decision:
    patient_id: object
    deliveries: tuple[Planned, ...]
    # Shown to staff, never blocking: e.g. a manual transactional text to a
    # patient whose PMS marketing consent is "no".
    warnings: tuple[Reason, ...] = ()

    @property
    def sends(self) -> tuple[Planned, ...]:
        return tuple(p for p in self.deliveries if p.status in (Status.PENDING, Status.DEFERRED))

    @property
    def reason(self) -> Reason | None:
        """Why nothing goes out: the reason of the highest-priority channel considered.

        A channel refused only for want of an address (no phone at all) yields
        to the next channel's specific reason: a patient with no phone whose
        email unsubscribed is ``email_unsubscribed``, which staff can act on.
        """
        if self.sends or not self.deliveries:
            return None
        for planned in self.deliveries:
            if planned.reason != Reason.NO_REACHABLE_CHANNEL:
                return planned.reason
        return self.deliveries[0].reason


def address_block_reason(
    *, kind: Kind, category: Category, channel: Channel, address: str, state: ConsentState
) -> Reason | None:
    """Why this one address may not get this message on this channel, or None.

    Used by ``decide()`` and again by the worker as it takes a delivery, so a
    STOP committed after planning still wins.
    """
    return _address_reason(KIND_POLICY[kind], category, channel, address, state)


def _address_reason(
    policy: KindPolicy, category: Category, channel: Channel, address: str, state: ConsentState
) -> Reason | None:
    if not policy.address_consent:
        return None
    if channel in (_SMS, _VOICE):
        if channel == _SMS and address in state.sms_opted_out:
            return Reason.SMS_OPTED_OUT
        blocked = state.blocks.get(address)
        if blocked and category.key in blocked:
            return Reason.BLOCKED_FOR_CATEGORY
        return None
    if channel == _EMAIL:
        if address in state.email_bounced:
            return Reason.EMAIL_BOUNCED
        applies = policy.unsubscribe == Unsubscribe.ALWAYS or (
            policy.unsubscribe == Unsubscribe.MARKETING_ONLY and category.marketing
        )
        if applies and address in state.email_unsubscribed:
            return Reason.EMAIL_UNSUBSCRIBED
    return None


def decide(request: SendRequest, recipient: Recipient, state: ConsentState, now: datetime) -> Decision:
    """Plan one recipient's deliveries for one message, by ``KIND_POLICY``. Pure: no I/O.

    ``now`` places quiet hours (where the recipient is); frequency caps come
    counted in ``state.recent_sends``.
    """
    kind, category = request.kind, request.category
    policy = KIND_POLICY[kind]

    if policy.do_not_contact and recipient.do_not_contact:
        return _skip_all(recipient, _considered_channels(request, recipient), Reason.DO_NOT_CONTACT)
    warnings: tuple[Reason, ...] = ()
    if recipient.marketing_consent != _YES:
        if category.marketing:
            return _skip_all(recipient, _considered_channels(request, recipient), Reason.NO_MARKETING_CONSENT)
        if policy.marketing_warning and recipient.marketing_consent == _NO:
            warnings = (Reason.NO_MARKETING_CONSENT,)

    phones = _candidate_phones(policy, recipient)
    cap = request.frequency_cap if policy.frequency_cap else None
    if policy.channels == FIRST_REACHABLE:
        planned = _first_reachable(kind, category, request.content_channels, phones, recipient.emails, state, cap)
    elif policy.channels == ACTIVE_FOR_TYPE:
        planned = _all_active(request, recipient, phones, state, cap)
    else:
        considered = _considered_channels(request, recipient)
        planned = [_plan_channel(kind, category, ch, phones, recipient.emails, state) for ch in considered]
    if request.window is not None and policy.quiet_hours:
        opens = window_opens(now, recipient.timezone or request.default_timezone, request.window)
        if opens is not None:
            planned = [_defer(p, opens) for p in planned]
    return Decision(recipient.patient_id, tuple(planned), warnings)


def _defer(planned: Planned, opens: datetime) -> Planned:
    # In-app notices make no sound: they are never held back.
    if planned.status != _PENDING or planned.channel == _IN_APP:
        return planned
    return replace(planned, status=_DEFERRED, reason=Reason.QUIET_HOURS, not_before=opens)


def window_opens(now: datetime, timezone: str, window: SendWindow) -> datetime | None:
    """None while ``now`` is inside the window where the recipient is; else the next opening (UTC)."""
    return _opens(now, timezone, window.start, window.end)


@lru_cache(maxsize=4096)
def _opens(now: datetime, timezone: str, start: time, end: time) -> datetime | None:
    # Cached per instant too: a broadcast asks with one ``now`` for every recipient (the window's hours
    # make a cheaper key than the window).
    return _opening(now.astimezone(UTC).replace(second=0, microsecond=0), timezone, SendWindow(start, end))


@lru_cache(maxsize=4096)
def _opening(minute: datetime, timezone: str, window: SendWindow) -> datetime | None:
    # Cached per minute and zone: a broadcast asks this once per recipient.
    zone = _zone(timezone)
    local = minute.astimezone(zone)
    if window.contains(local.time()):
        return None
    day = local.date()
    if window.start < window.end and local.time() >= window.end:
        day += timedelta(days=1)  # after tonight's close: tomorrow morning
    return datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _considered_channels(request: SendRequest, recipient: Recipient) -> list[Channel]:
    if KIND_POLICY[request.kind].channels == Selection.ACTIVE_FOR_TYPE:
        return [ch for ch in NOTIFICATION_ORDER if ch in request.content_channels]
    return [ch for ch in FIRST_REACHABLE_ORDER if ch in request.content_channels]


def _skip_all(recipient: Recipient, channels: Iterable[Channel], reason: Reason) -> Decision:
    return Decision(recipient.patient_id, tuple(Planned(ch, None, Status.SKIPPED, reason) for ch in channels))


def _candidate_phones(policy: KindPolicy, recipient: Recipient) -> tuple[Phone, ...]:
    """The phones to try, in order. A preferred phone, where it applies, is the only one."""
    if policy.preferred_phone and recipient.preferred_phone:
        for phone in recipient.phones:
            if phone.number == recipient.preferred_phone:
                return (phone,)
    return recipient.phones


def _plan_channel(
    kind: Kind,
    category: Category,
    channel: Channel,
    phones: tuple[Phone, ...],
    emails: tuple[str, ...],
    state: ConsentState,
    cap: FrequencyCap | None = None,
) -> Planned:
    """The first address that can carry ``channel``, or a skip with the most telling reason.

    When every address is refused, staff need the reason they can act on: an
    opted-out mobile (the family can text UNSTOP) says more than the landline
    listed before it, so a person's own choice outranks what the line cannot do.
    """
    if channel == _IN_APP:
        return Planned(channel, None, _PENDING)
    policy = KIND_POLICY[kind]
    best: tuple[int, str, Reason] | None = None
    if channel == _EMAIL:
        for email in emails:
            reason = _address_reason(policy, category, channel, email, state)
            if reason is None:
                return Planned(channel, email, _PENDING)
            rank = _REFUSAL_RANK.get(reason, 0)
            if best is None or rank < best[0]:
                best = (rank, email, reason)
    else:
        for phone in phones:
            if not phone.valid:
                reason = Reason.PHONE_INVALID
            elif channel == _SMS and not phone.text_capable:
                reason = Reason.NO_TEXT_CAPABLE_PHONE
            else:
                reason = _address_reason(policy, category, channel, phone.number, state)
                if reason is None and cap is not None and cap.reached(state.recent_sends.get(phone.number, (0, 0))):
                    reason = Reason.FREQUENCY_CAP
                if reason is None:
                    return Planned(channel, phone.number, _PENDING)
            rank = _REFUSAL_RANK.get(reason, 0)
            if best is None or rank < best[0]:
                best = (rank, phone.number, reason)
    if best is None:
        return Planned(channel, None, _SKIPPED, Reason.NO_REACHABLE_CHANNEL)
    return Planned(channel, best[1], _SKIPPED, best[2])


# Lower is more telling. Consent choices first, then what the line cannot do.
_REFUSAL_RANK = {Reason.NO_TEXT_CAPABLE_PHONE: 1, Reason.PHONE_INVALID: 2}


def _first_reachable(
    kind: Kind,
    category: Category,
    content: frozenset[Channel],
    phones: tuple[Phone, ...],
    emails: tuple[str, ...],
    state: ConsentState,
    cap: FrequencyCap | None = None,
) -> list[Planned]:
    """At most one message: text, else call, else email (Artera's hierarchy).

    A call goes out only when no phone can take the text (a landline, an
    opted-out mobile, or no text content); email only when no phone channel
    can carry the message. Each channel tried and refused is listed as a
    skipped entry so staff see every reason.
    """
    planned: list[Planned] = []
    for channel in FIRST_REACHABLE_ORDER:
        if channel not in content:
            continue
        entry = _plan_channel(kind, category, channel, phones, emails, state, cap)
        planned.append(entry)
        if entry.status == _PENDING:
            break
    return planned


def active_notification_channels(category: Category, recipient: Recipient) -> list[Channel]:
    """The practice's grid for this type, with the patient's overrides applied."""
    active = []
    for channel in NOTIFICATION_ORDER:
        on = channel in category.notification_channels
        override = recipient.notification_overrides.get((category.key, channel))
        if override is not None and (override or category.patient_can_disable):
            on = override
        if on:
            active.append(channel)
    return active


def _all_active(
    request: SendRequest,
    recipient: Recipient,
    phones: tuple[Phone, ...],
    state: ConsentState,
    cap: FrequencyCap | None = None,
) -> list[Planned]:
    kind, category = request.kind, request.category
    active = set(active_notification_channels(category, recipient))
    removed = recipient.notification_phones_removed if category.patient_can_disable else frozenset()
    kept = tuple(p for p in phones if p.number not in removed) if removed else phones
    planned = []
    for channel in NOTIFICATION_ORDER:
        if channel not in request.content_channels:
            continue
        if channel not in active:
            if channel == Channel.IN_APP:
                continue  # in-app is a fallback surface, not a channel the sender picked
            planned.append(Planned(channel, None, Status.SKIPPED, Reason.CHANNEL_OFF_FOR_TYPE))
        elif channel in recipient.channel_opt_outs and channel != Channel.IN_APP and category.patient_can_disable:
            planned.append(Planned(channel, None, Status.SKIPPED, Reason.CHANNEL_OPTED_OUT_BY_PATIENT))
        elif channel in (Channel.SMS, Channel.VOICE) and phones and not kept:
            # Every phone this could go to was taken off the notification settings by the patient.
            planned.append(Planned(channel, None, Status.SKIPPED, Reason.CHANNEL_OPTED_OUT_BY_PATIENT))
        else:
            planned.append(_plan_channel(kind, category, channel, kept, recipient.emails, state, cap))
    return planned


def builtin_category(key: str) -> Category:
    """A built-in category as a new practice gets it, as the rules see it (tests and benchmarks)."""
    marketing, channels, can_disable = BUILTIN_CATEGORIES[key]
    return Category(
        key=key, marketing=marketing, notification_channels=frozenset(channels), patient_can_disable=can_disable
    )
