"""The worker side: re-check consent, hand each delivery to its provider, record the outcome.

One module on purpose, longer than most: a hand-over (claim, check, take,
call, record, retry) is one story whose steps share the task's caches of
practices, messages and providers; what stands alone lives beside it
(``pacing``, ``status``, ``rendering``, ``recovery``).
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django_tasks import task

from consentry.consent import address_lock, ledger
from consentry.consent.rules import Category, SendWindow, address_block_reason, window_opens
from consentry.patients.locations import TextingSender, texting_sender
from consentry.patients.models import Location, Patient, Practice
from consentry.providers.base import Outbound, ProviderError, provider_for
from consentry.vocabulary import Channel, Kind, Reason, Status

from . import hints, pacing
from .categories import category_from_row, category_row, send_window
from .models import Delivery, DeliveryEvent, Message
from .rendering import Person, render
from .status import handed_over, move, move_many

log = logging.getLogger("consentry.dispatch")


@task()
def dispatch_deliveries(delivery_ids: list[int], reserved: list[str] | None = None) -> dict:
    """Hand these deliveries to their providers, at their senders' pace.

    ``reserved`` is [sender, instant]: a slot the task that handed over this
    batch already took for that sender (see ``pacing``).
    """
    # Whatever happens to this worker from here on (even a crash right after a
    # provider accepted a message), every worker's recovery sweep settles what
    # it leaves open: none of these can stay pending for ever (see recovery.py).
    return Dispatch(reserved).run(list(delivery_ids))


def dispatch_one(delivery_id: int) -> str:
    """Dispatch one delivery now; what became of it ("delivered", "skipped", "not_pending"...)."""
    outcomes = Dispatch().run([delivery_id])
    [outcome] = outcomes
    return outcome


@dataclass(eq=False, slots=True)
class Claimed:
    """What a hand-over needs of a delivery: a few columns, not a model (the model is loaded only on
    the rare paths that change more than its status: a skip, a refusal)."""

    pk: int
    message_id: uuid.UUID
    practice_id: uuid.UUID
    patient_id: uuid.UUID | None  # none for a text to a number no patient has (a STOP's confirmation)
    channel: str
    address: str
    not_before: datetime | None
    recipient_timezone: str
    first_name: str | None
    last_name: str | None
    from_number: str
    location_id: uuid.UUID | None  # the patient's
    # Given by Dispatch.attach, from one read per practice and per message, before any use.
    route: Route = field(init=False)
    attempted_at: datetime | None = None

    @property
    def practice(self) -> Practice:
        return self.route.practice

    @property
    def message(self) -> Message:
        return self.route.message

    @property
    def texting(self) -> TextingSender:
        """Who a text or call goes from."""
        return self.route.texting

    @property
    def person(self) -> Person | None:
        return None if self.patient_id is None else Person(self.first_name or "", self.last_name or "")

    def model(self) -> Delivery:
        delivery = Delivery.objects.select_related("practice").get(pk=self.pk)
        delivery.message = self.message
        return delivery


@dataclass(eq=False, slots=True)
class Route:
    """What the deliveries of one message on one channel from one sender share: worked out once per task
    (``Dispatch.attach``), not for each delivery."""

    practice: Practice
    message: Message
    content: dict
    kind: Kind
    channel: Channel
    category: Category
    window: SendWindow | None  # the quiet hours that apply, if any
    texting: TextingSender  # who a text or call goes from
    provider: object = None
    local: bool = False  # the provider keeps what it is sent in this database, with no pace to keep


class Dispatch:
    """One task's run over its deliveries, a chunk at a time.

    Per chunk, one transaction locks the chunk's due deliveries and reads the
    consent of all their addresses at once (a STOP committed before this check
    always wins), and skips those that may no longer go. In the same
    transaction, deliveries for a provider that keeps what it is sent in this
    database (the sandbox) are stored and recorded together: they are sent
    exactly when that transaction commits.

    The others go to providers over the network, one at a time, at their
    sender's pace. Each is checked again and taken in one transaction right
    before its provider call (the take is a conditional update that only one
    worker can win), holding its address's lock until the provider has it, so
    an opt-out either is seen or waits (``consent.address_lock``). No delivery
    is handed over twice, and one taken but never answered is an unknown
    outcome, never resent. A provider that sends status callbacks has its
    answer recorded right away, so a callback always finds its delivery.
    """

    def __init__(self, reserved: list[str] | None = None):
        self.reserved = reserved
        self.outcomes: dict[str, int] = {}
        self.practices: dict = {}
        self.locations: dict = {}  # practice id -> its locations
        self.messages: dict = {}
        self.categories: dict = {}
        self.category_rows: dict = {}
        self.providers: dict = {}
        self.senders: dict = {}
        self.hints = hints.Hints()  # which texts end with how to opt out
        self.waited = 0.0
        self.uuids: dict[str, uuid.UUID] = {}  # SQLite: the ids of practices, messages, locations, as read
        # (practice, message, channel, from number, patient's location) -> their route
        self.routes: dict[tuple, Route] = {}

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def run(self, ids: list[int]) -> dict:
        size = settings.CONSENTRY_DISPATCH_CHUNK
        while ids:
            chunk, ids = ids[:size], ids[size:]
            again, busy = self.chunk(chunk)
            if busy is not None:
                self.hand_on(again + ids, *busy)
                break
            ids = again + ids
        return self.outcomes

    # --- one chunk -------------------------------------------------------------------------------------------

    def chunk(self, ids: list[int]) -> tuple[list[int], tuple | None]:
        """Dispatch what is due among ``ids``.

        Returns the ids to check again, and, when a sender is busy for a while,
        (sender, its reserved instant) for the task that takes over.
        """
        remote = self.claim(ids)
        answered: list[tuple[Claimed, object]] = []
        try:
            for i, delivery in enumerate(remote):
                pace = self.pace(delivery)
                if isinstance(pace, Busy):
                    return [d.pk for d in remote[i:]], (pace.sender, pace.slot)
                outbound = self.outbound(delivery)
                if pace is not None:
                    pacing.wait_for(*pace)
                refused = None
                # From the consent check until the provider has it, an opt-out of this address waits.
                with address_lock.handing_over(delivery.practice_id, delivery.address):
                    not_taken = self.take(delivery)
                    if not_taken is not None:
                        self.count(not_taken)
                        continue
                    try:
                        result = self.provider(delivery).send(outbound)
                    except ProviderError as exc:
                        refused = exc
                if refused is not None:  # handled once the lock is let go: it may record a carrier opt-out
                    log.warning("delivery %s: %s %s", delivery.pk, refused.code, refused)
                    if refused.retry_after and (sender := self.sender(delivery)) is not None:
                        pacing.hold(sender, datetime.now(UTC) + timedelta(seconds=refused.retry_after))
                    self.count(_provider_refused(delivery.model(), refused))
                    continue
                answered.append((delivery, result))
                if getattr(self.provider(delivery), "status_callbacks", False):
                    self.record(answered)
                    answered.clear()
            return [], None
        finally:
            self.record(answered)

    def take(self, delivery: Claimed) -> str | None:
        """Check the address's consent as it is now and take the delivery, in one transaction.

        None when taken (it goes to its provider right after); else why not:
        ``skipped`` (an opt-out or a block since the batch was checked) or
        ``not_pending`` (another task has it).
        """
        with transaction.atomic():
            if delivery.channel != Channel.IN_APP:
                state = ledger.consent_state(delivery.practice_id, [delivery.address])
                if reason := self.block_reason(delivery, state):
                    row = (
                        Delivery.objects.select_for_update()
                        .select_related("practice")
                        .filter(pk=delivery.pk, status__in=[Status.PENDING, Status.DEFERRED], attempted_at__isnull=True)
                        .first()
                    )
                    if row is None:
                        return "not_pending"
                    row.message = delivery.message
                    move(row, Status.SKIPPED, reason=reason)
                    return Status.SKIPPED
            return None if _take(delivery) else "not_pending"

    def block_reason(self, delivery: Claimed, state) -> Reason | None:
        """Why this delivery may no longer go to its address, from the consent ``state``; None if it may."""
        route = delivery.route
        return address_block_reason(
            kind=route.kind, category=route.category, channel=route.channel, address=delivery.address, state=state
        )

    def claim(self, ids: list[int]) -> list[Claimed]:
        """Lock the due deliveries and check consent once for all; skip those that may no longer go,
        store and record those for a local provider. What is left goes over the network (each is
        checked again as it is taken)."""
        now = datetime.now(UTC)
        with transaction.atomic():
            rows = {row.pk: row for row in self.read(ids)}
            self.count("not_pending", len(set(ids) - set(rows)))
            due = []
            for pk in ids:
                delivery = rows.get(pk)
                if delivery is None:
                    continue
                if delivery.not_before and delivery.not_before > now:
                    self.count("not_due")  # quiet hours or a retry's backoff: its own task comes then
                    continue
                due.append(delivery)
            self.attach(due)
            self.hints.load(due, now)  # one read: which numbers had an automated text lately
            # Those stored below are handed over when this transaction commits: no opt-out of their
            # addresses may commit between the check and then.
            address_lock.for_handovers((d.practice_id, d.address) for d in due if d.channel != Channel.IN_APP)
            states = {}
            for practice_id in {d.practice_id for d in due}:
                states[practice_id] = ledger.consent_state(
                    practice_id, [d.address for d in due if d.practice_id == practice_id and d.address]
                )
            remote: list[Claimed] = []
            local: dict[object, list[Claimed]] = {}  # per provider
            deferred: dict[datetime, list[int]] = {}
            opening: dict[tuple, datetime | None] = {}
            for delivery in due:
                reason = None
                if delivery.channel != Channel.IN_APP:
                    # A STOP committed after the message was planned still wins.
                    reason = self.block_reason(delivery, states[delivery.practice_id])
                if reason is not None:
                    move(delivery.model(), Status.SKIPPED, reason=reason)
                    self.count(Status.SKIPPED)
                    continue
                if delivery.recipient_timezone and (opens := self.quiet_until(delivery, now, opening)):
                    deferred.setdefault(opens, []).append(delivery.pk)  # late: a retry, a re-dispatch
                    continue
                if delivery.route.local:
                    local.setdefault(delivery.route.provider, []).append(delivery)
                else:
                    remote.append(delivery)
            for opens, deferred_ids in deferred.items():
                self.defer(deferred_ids, opens)
            for provider, deliveries in local.items():
                self.store(provider, deliveries)
        return remote

    def read(self, ids: list[int]) -> list[Claimed]:
        """The columns a hand-over needs of those of ``ids`` still waiting for one, locked: one plain read (the
        ORM's per-value preparation and conversion cost more than the rows here)."""
        if not ids:
            return []
        sql = _CLAIM_SQL.format(
            delivery=Delivery._meta.db_table,
            patient=Patient._meta.db_table,
            ids=", ".join(["%s"] * len(ids)),
            lock=" FOR UPDATE OF d" if connection.features.has_select_for_update_of else "",
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*ids, Status.PENDING.value, Status.DEFERRED.value])
            rows = cursor.fetchall()
        if connection.features.has_native_uuid_field:
            return [Claimed(*row) for row in rows]
        # SQLite: ids are hex, times text; a task's rows share a few practices, messages and locations.
        known, when = self.uuids, connection.ops.convert_datetimefield_value  # type: ignore[attr-defined]
        claimed = []
        for pk, message, practice, patient, channel, address, not_before, zone, first, last, sender, location in rows:
            claimed.append(
                Claimed(
                    pk,
                    known.get(message) or known.setdefault(message, uuid.UUID(message)),
                    known.get(practice) or known.setdefault(practice, uuid.UUID(practice)),
                    None if patient is None else uuid.UUID(patient),
                    channel,
                    address,
                    None if not_before is None else when(not_before, None, connection),
                    zone,
                    first,
                    last,
                    sender,
                    None
                    if location is None
                    else known.get(location) or known.setdefault(location, uuid.UUID(location)),
                )
            )
        return claimed

    def quiet_until(self, delivery: Claimed, now: datetime, opening: dict) -> datetime | None:
        """When the recipient's window opens, if quiet hours apply and it is shut now; else None.
        ``opening`` keeps the answer per zone and window for this ``now``."""
        window = delivery.route.window
        if window is None or window.start == window.end:
            return None  # exempt, or no quiet hours at all
        key = (delivery.recipient_timezone, window)
        if key not in opening:
            opening[key] = window_opens(now, delivery.recipient_timezone, window)
        return opening[key]

    def defer(self, ids: list[int], opens: datetime) -> None:
        """Quiet hours, found at the hand-over: wait for the window to open, in a task of their own."""
        moved = move_many(
            ids, Status.DEFERRED, provider_status="quiet_hours", reason=Reason.QUIET_HOURS, not_before=opens
        )
        enqueue_dispatch(moved, run_after=opens)
        self.count(Status.DEFERRED, len(moved))

    def store(self, provider, deliveries: list[Claimed]) -> None:
        """Hand a batch to a provider that keeps it in this database: what it stores and what the
        deliveries record of it commit together, or not at all."""
        outbound = [self.outbound(d) for d in deliveries]
        try:
            with transaction.atomic():
                self.record(list(zip(deliveries, provider.send_many(outbound), strict=True)))
        except ProviderError as exc:
            log.warning("deliveries %s: %s %s", [d.pk for d in deliveries], exc.code, exc)
            for delivery in deliveries:
                self.count(_provider_refused(delivery.model(), exc))

    def outbound(self, delivery: Claimed) -> Outbound:
        route = delivery.route
        return render(
            delivery,
            route.category,
            route.content,
            delivery.person,
            opt_out_hint=self.hints.hint_for(delivery, marketing=route.category.marketing),
            texting=route.texting,
        )

    def attach(self, deliveries: list[Claimed]) -> None:
        """Give each delivery its route (practice, message, category, sender...), from one read per kind of row
        and one route per message, channel and sender in the task."""
        if missing := {d.practice_id for d in deliveries} - set(self.practices):
            self.practices.update(Practice.objects.in_bulk(missing))
            self.locations.update({practice_id: [] for practice_id in missing})
            for location in Location.objects.filter(practice_id__in=missing):
                self.locations[location.practice_id].append(location)
        if missing := {d.message_id for d in deliveries} - set(self.messages):
            for message in Message.objects.filter(pk__in=missing):
                self.messages[message.pk] = (message, json.loads(message.content))
        for delivery in deliveries:
            key = (
                delivery.practice_id,
                delivery.message_id,
                delivery.channel,
                delivery.from_number,
                delivery.location_id,
            )
            route = self.routes.get(key)
            if route is None:
                route = self.routes[key] = self.route(delivery)
            delivery.route = route

    def route(self, delivery: Claimed) -> Route:
        """Work out what this delivery shares with the others of its message, channel and sender."""
        practice = self.practices[delivery.practice_id]
        message, content = self.messages[delivery.message_id]
        key = (delivery.practice_id, message.category)
        if key not in self.categories:
            self.category_rows[key] = category_row(practice, message.category)
            self.categories[key] = category_from_row(self.category_rows[key])
        route = Route(
            practice,
            message,
            content,
            Kind(message.kind),
            Channel(delivery.channel),
            self.categories[key],
            send_window(practice, Kind(message.kind), self.category_rows[key]),
            # The one choice of the number a text or call goes from (patients.locations.texting_sender).
            texting_sender(
                practice,
                self.locations[delivery.practice_id],
                from_number=delivery.from_number,
                location_id=delivery.location_id,
            ),
        )
        delivery.route = route
        route.provider = self.provider(delivery)
        route.local = hasattr(route.provider, "send_many") and self.sender(delivery) is None
        return route

    def record(self, answered: list) -> None:
        """What the providers answered, in one transaction: provider ids, statuses, history."""
        if not answered:
            return
        answers = [(d.pk, result.provider_ref, result.status == Status.DELIVERED) for d, result in answered]
        delivered = sum(1 for answer in answers if answer[2])
        self.count(Status.DELIVERED, delivered)
        self.count(Status.SENT, len(answers) - delivered)
        handed_over(answers, datetime.now(UTC))

    # --- providers and pacing ----------------------------------------------------------------------------------

    def provider(self, delivery: Delivery | Claimed):
        key = (delivery.practice_id, delivery.channel)
        if key not in self.providers:
            try:
                self.providers[key] = provider_for(delivery.practice, delivery.channel)
            except ProviderError as exc:
                self.providers[key] = _Refusing(exc)
        return self.providers[key]

    def sender(self, delivery: Claimed):
        """The sender whose pace this delivery keeps, or None when it has no limit. Each of a practice's
        numbers keeps its own pace (each is a long code of its own)."""
        number = delivery.texting.number if delivery.channel in (Channel.SMS, Channel.VOICE) else ""
        key = (delivery.practice_id, delivery.channel, number)
        if key not in self.senders:
            self.senders[key] = pacing.sender_for(delivery.practice, delivery.channel, number=number)
        return self.senders[key]

    def pace(self, delivery: Claimed):
        """None (no limit), (sender, instant) to wait for, or ``Busy``: hand the rest to a later task."""
        sender = self.sender(delivery)
        if sender is None:
            return None
        if self.reserved and self.reserved[0] == sender.key:
            slot, self.reserved = datetime.fromisoformat(self.reserved[1]), None
        else:
            slot = pacing.reserve(sender)
        wait = (slot - datetime.now(UTC)).total_seconds()
        if wait > 0 and self.waited + wait > settings.CONSENTRY_PACING_MAX_WAIT_SECONDS:
            return Busy(sender, slot)
        self.waited += max(wait, 0)
        return sender, slot

    def hand_on(self, ids: list[int], sender, slot: datetime) -> None:
        """The sender is busy for a while: the rest goes on at its reserved instant, and this worker
        is free for other practices meanwhile. They are not due before that instant (the recovery
        sweep must not take a broadcast paced over hours for deliveries whose task stopped), and
        the new task is written in the same transaction: no moment leaves them without one."""
        with transaction.atomic():
            Delivery.objects.filter(
                Q(not_before__isnull=True) | Q(not_before__lt=slot),
                pk__in=ids,
                status__in=[Status.PENDING, Status.DEFERRED],
                attempted_at__isnull=True,
            ).update(not_before=slot)
            dispatch_deliveries.using(run_after=slot).enqueue(ids, [sender.key, slot.isoformat()])
        self.count("paced", len(ids))


# The columns of ``Claimed``, in its order: the patient's name and location come with the row.
_CLAIM_SQL = (
    "SELECT d.id, d.message_id, d.practice_id, d.patient_id, d.channel, d.address, d.not_before, "
    "d.recipient_timezone, p.first_name, p.last_name, d.from_number, p.location_id "
    "FROM {delivery} d LEFT OUTER JOIN {patient} p ON p.id = d.patient_id "
    "WHERE d.id IN ({ids}) AND d.status IN (%s, %s) AND d.attempted_at IS NULL{lock}"
)


def _take(delivery: Claimed) -> bool:
    """Mark the delivery as handed over, right before its provider call, if it still waits and no one
    else has taken it. From here on it is never sent again: an answer, a callback or the outcome
    timeout settles it."""
    now = datetime.now(UTC)
    taken = Delivery.objects.filter(
        pk=delivery.pk, status__in=[Status.PENDING, Status.DEFERRED], attempted_at__isnull=True
    ).update(attempted_at=now, updated_at=now)
    delivery.attempted_at = now
    return taken == 1


@dataclass(frozen=True)
class Busy:
    sender: pacing.Sender
    slot: datetime


class _Refusing:
    """Stands in for a provider that could not be built (unknown, unconfigured): every send fails the same way."""

    status_callbacks = False

    def __init__(self, error: ProviderError):
        self.error = error

    def send(self, outbound):
        raise self.error


def _provider_refused(delivery: Delivery, exc: ProviderError) -> str:
    with transaction.atomic():
        if exc.code == "outcome_unknown":
            # The provider may have taken it: never send again; the status
            # callback or the outcome timeout settles it.
            DeliveryEvent.objects.create(delivery=delivery, status=delivery.status, error_code=exc.code)
            return "outcome_unknown"
        if exc.transient and delivery.attempts + 1 < settings.CONSENTRY_RETRY_MAX_ATTEMPTS:
            delivery.attempts += 1
            delivery.attempted_at = None  # the provider refused it: trying again cannot duplicate it
            # Not before the backoff is over (nor before the provider's Retry-After), whichever task finds it first.
            wait = max(retry_delay(delivery.attempts), timedelta(seconds=exc.retry_after or 0))
            delivery.not_before = datetime.now(UTC) + wait
            delivery.save(update_fields=["attempts", "attempted_at", "not_before", "updated_at"])
            DeliveryEvent.objects.create(
                delivery=delivery, status=delivery.status, error_code=exc.code, provider_status="retry"
            )
            dispatch_deliveries.using(run_after=delivery.not_before).enqueue([delivery.pk])
            return "retry"
        move(delivery, Status.FAILED, error_code=exc.code, error=f"{exc.code}: {exc}", bounce=exc.bounce)
        return Status.FAILED


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with full jitter (spreads retries after a provider outage)."""
    ceiling = min(settings.CONSENTRY_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.CONSENTRY_RETRY_MAX_SECONDS)
    return timedelta(seconds=random.uniform(0, ceiling))


@task()
def expire_unknown_outcomes(delivery_ids: list[int]) -> dict:
    """Superseded by every worker's recovery sweep (recovery.py), which settles these deliveries too.

    Kept so that tasks of this name queued by earlier versions still finish cleanly.
    """
    return {"superseded_by": "the recovery sweep"}


def enqueue_dispatch(delivery_ids: list[int], run_after: datetime | None = None) -> None:
    """One dispatch task per batch of deliveries, written in the caller's transaction."""
    task = dispatch_deliveries.using(run_after=run_after) if run_after else dispatch_deliveries
    size = settings.CONSENTRY_DISPATCH_BATCH
    for start in range(0, len(delivery_ids), size):
        task.enqueue(delivery_ids[start : start + size])
