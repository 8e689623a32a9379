"""Events written with the changes that cause them: one outbox row per subscribed endpoint, and its task.

The packages whose changes make events call these functions where the change
is written (``consent/ledger.py``, ``messaging/status.py``,
``conversations/``), inside its transaction: a change rolled back emits
nothing, and a committed one has its rows and their tasks committed with it
(the task queue is in the same database). This package sits below them and
imports none of them: it reads the objects it is given by their attributes
(the protocols below).

A practice with no endpoint pays one small indexed query per change (its
endpoints, by practice); nothing is written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from django.db import transaction
from django.db.models import QuerySet

from consentry.patients.models import Patient

from .models import EventType, WebhookDelivery, WebhookEndpoint
from .tasks import deliver_event

Data = dict[str, Any]
IN_CHUNK = 2000  # addresses per query: far below any backend's limit of bound parameters


class LedgerEvent(Protocol):
    @property
    def practice_id(self) -> Any: ...
    @property
    def seq(self) -> int: ...
    @property
    def subject(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def evidence(self) -> Any: ...
    @property
    def created_at(self) -> datetime: ...


class DeliveryRow(Protocol):
    @property
    def pk(self) -> Any: ...
    @property
    def practice_id(self) -> Any: ...
    @property
    def message_id(self) -> Any: ...
    @property
    def patient_id(self) -> Any: ...
    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def error(self) -> str: ...
    @property
    def sent_at(self) -> datetime | None: ...
    @property
    def delivered_at(self) -> datetime | None: ...


class Received(Protocol):
    @property
    def pk(self) -> Any: ...
    @property
    def practice_id(self) -> Any: ...
    @property
    def from_number(self) -> str: ...
    @property
    def to_number(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def keyword(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...


class ConversationRow(Protocol):
    @property
    def pk(self) -> Any: ...
    @property
    def practice_id(self) -> Any: ...
    @property
    def phone(self) -> str: ...
    @property
    def flag_rule(self) -> str: ...
    @property
    def flagged_at(self) -> datetime | None: ...


# --- what causes events --------------------------------------------------------------------------------------------


def consent_changed(event: LedgerEvent) -> None:
    """A consent change was appended to the ledger (``ledger.record()``)."""
    emit(event.practice_id, EventType.CONSENT_CHANGED, lambda: _consent_data(event))


def consents_changed(practice_id: Any, events: Sequence[LedgerEvent]) -> None:
    """Many consent changes appended at once (``ledger.record_many()``, an import): one query for the
    practice's endpoints, and when there are some, one for the patients of every address."""
    kind = EventType.CONSENT_CHANGED
    if subscribers := _subscribers(kind, practice_id=practice_id):
        patients = _patients_by_address(practice_id, {e.address for e in events})
        _write(kind, subscribers, ((practice_id, _consent_data(e, patients)) for e in events))


def delivery_changed(delivery: DeliveryRow) -> None:
    """A delivery moved to a new status (``status.move()``)."""
    emit(delivery.practice_id, EventType.DELIVERY_STATUS_CHANGED, lambda: _delivery_data(delivery))


def deliveries_changed(deliveries: QuerySet[Any]) -> None:
    """Several deliveries moved at once (``status.move_many()``, ``status.handed_over()``): the query that
    finds them, read only when their practices have endpoints for the event."""
    kind = EventType.DELIVERY_STATUS_CHANGED
    subscribers = _subscribers(kind, practice_id__in=deliveries.values("practice_id"))
    if subscribers:
        rows = deliveries.filter(practice_id__in=list(subscribers)).order_by("pk")
        _write(kind, subscribers, ((d.practice_id, _delivery_data(d)) for d in rows))


def message_received(conversation: ConversationRow, inbound: Received) -> None:
    """A text arrived and was filed in its conversation (keywords included)."""
    emit(inbound.practice_id, EventType.MESSAGE_RECEIVED, lambda: _received_data(conversation, inbound))


def optout_flagged(conversation: ConversationRow) -> None:
    """A reply that may ask to stop, in other words than a keyword, was flagged for staff to confirm (the reply
    itself is the conversation's last ``message.received``)."""
    emit(conversation.practice_id, EventType.OPTOUT_FLAGGED, lambda: _flagged_data(conversation))


# --- writing ---------------------------------------------------------------------------------------------------------


def emit(practice_id: Any, kind: EventType, data: Callable[[], Data]) -> int:
    """Write the event for each endpoint of the practice that subscribes to ``kind``; how many rows.

    ``data`` is called only when there is one.
    """
    subscribers = _subscribers(kind, practice_id=practice_id)
    if not subscribers:
        return 0
    return _write(kind, subscribers, [(practice_id, data())])


def _subscribers(kind: EventType, **practices: Any) -> dict[Any, list[Any]]:
    """The endpoints that want ``kind``, by practice: one query over the practices' endpoints."""
    found: dict[Any, list[Any]] = {}
    for practice_id, pk, events in WebhookEndpoint.objects.filter(**practices).values_list(
        "practice_id", "pk", "events"
    ):
        if kind in events:
            found.setdefault(practice_id, []).append(pk)
    return found


def _write(kind: EventType, subscribers: dict[Any, list[Any]], events: Iterable[tuple[Any, Data]]) -> int:
    now = datetime.now(UTC)
    rows = []
    for practice_id, data in events:
        event_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps({"type": kind.value, "timestamp": _iso(now), "data": data}, separators=(",", ":"))
        for endpoint_id in subscribers.get(practice_id, ()):
            rows.append(
                WebhookDelivery(
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    type=kind.value,
                    payload=body,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    with transaction.atomic():
        for row in WebhookDelivery.objects.bulk_create(rows):
            deliver_event.enqueue(row.pk)
    return len(rows)


# --- what each event says ----------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z") if at else None


def _patient_ids(practice_id: Any, address: str) -> list[str]:
    """The practice's patients with this phone or email."""
    return _patients_by_address(practice_id, {address}).get(address, [])


def _patients_by_address(practice_id: Any, addresses: set[str]) -> dict[str, list[str]]:
    """The practice's patients with each of these phones or emails (in chunks of ``IN_CHUNK``)."""
    found: dict[str, list[str]] = {}
    wanted = sorted(addresses)
    for start in range(0, len(wanted), IN_CHUNK):
        rows = (
            Patient.objects.filter(
                practice_id=practice_id, contact_points__address__in=wanted[start : start + IN_CHUNK]
            )
            .order_by("pk")
            .values_list("contact_points__address", "pk")
            .distinct()
        )
        for address, pk in rows:
            found.setdefault(address, []).append(str(pk))
    return found


def _consent_data(event: LedgerEvent, patients: dict[str, list[str]] | None = None) -> Data:
    patient = event.address.removeprefix("patient:") if event.address.startswith("patient:") else None
    state: Any = event.state
    if state[:1] in ("[", "{"):  # a block's categories, a patient's notification settings: JSON
        state = json.loads(state)
    evidence = event.evidence if isinstance(event.evidence, dict) else {}
    if patient:
        patient_ids = [patient]
    elif patients is not None:
        patient_ids = patients.get(event.address, [])
    else:
        patient_ids = _patient_ids(event.practice_id, event.address)
    return {
        "seq": event.seq,
        "subject": event.subject,
        "address": None if patient else event.address,
        "patient_ids": patient_ids,
        "state": state,
        "source": event.source,
        "actor": event.actor,
        "recorded_at": _iso(event.created_at),
        # What caused it, by id only (the ledger's evidence may hold the words of a message).
        "message_id": evidence.get("inbound_message"),
        "delivery_id": evidence.get("delivery_id"),
    }


def _delivery_data(delivery: DeliveryRow) -> Data:
    return {
        "delivery_id": delivery.pk,
        "message_id": str(delivery.message_id),
        "patient_id": str(delivery.patient_id) if delivery.patient_id else None,
        "channel": delivery.channel,
        "address": delivery.address or None,
        "status": delivery.status,
        "reason": delivery.reason or None,
        "error": delivery.error or None,
        "sent_at": _iso(delivery.sent_at),
        "delivered_at": _iso(delivery.delivered_at),
    }


def _received_data(conversation: ConversationRow, inbound: Received) -> Data:
    return {
        "message_id": inbound.pk,
        "conversation_id": str(conversation.pk),
        "channel": "sms",
        "from": inbound.from_number,
        "to": inbound.to_number,
        "patient_ids": _patient_ids(inbound.practice_id, inbound.from_number),
        "text": inbound.body,
        "keyword": inbound.keyword,
        "received_at": _iso(inbound.received_at),
    }


def _flagged_data(conversation: ConversationRow) -> Data:
    return {
        "conversation_id": str(conversation.pk),
        "phone": conversation.phone,
        "patient_ids": _patient_ids(conversation.practice_id, conversation.phone),
        "rule": conversation.flag_rule,
        "flagged_at": _iso(conversation.flagged_at),
    }
