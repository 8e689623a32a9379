"""Delivery statuses: allowed moves, history, and what providers report back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.events import emit
from consentry.providers.base import StatusReport
from consentry.providers.twilio.vocabulary import CARRIER_OPT_OUT
from consentry.vocabulary import Reason, Status

from .models import Delivery, DeliveryEvent

log = logging.getLogger("consentry.status")

_FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED})
# Where a delivery may go from each status: the one table every status change obeys (``move``,
# ``move_many``, ``handed_over``). A waiting delivery is handed over, settled, skipped or deferred
# (again, to a later window); one sent is settled by its provider; a final status is final. A move the
# table refuses (a late "sent" callback after "delivered") is kept in the history and changes nothing.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.DEFERRED, Status.SENT, Status.SKIPPED, *_FINAL}),
    Status.DEFERRED: frozenset({Status.DEFERRED, Status.SENT, Status.SKIPPED, *_FINAL}),
    Status.SENT: _FINAL,
    Status.DELIVERED: frozenset(),
    Status.UNDELIVERED: frozenset(),
    Status.FAILED: frozenset(),
    Status.SKIPPED: frozenset(),
}


def can_move(current: Status | str, to: Status | str) -> bool:
    return Status(to) in TRANSITIONS[Status(current)]


def sources(to: Status) -> list[str]:
    """The statuses a delivery may move to ``to`` from."""
    return [str(status) for status, targets in TRANSITIONS.items() if to in targets]


def move(
    delivery: Delivery,
    status: Status,
    *,
    provider_status: str = "",
    error_code: str = "",
    reason: str = "",
    error: str = "",
    bounce: dict | None = None,
) -> bool:
    """Move a delivery to ``status`` and record it in its history; False when ``TRANSITIONS`` refuses the move
    (it is still kept in the history, and logged unless it only repeats the current status).

    Whichever way a provider reports error 21610 (refusing the send, or in a
    later status callback), the carrier's opt-out is recorded here, once.
    Likewise an email address the receiving mail server refused for good
    (``bounce``: its code and reply) is recorded as bounced.
    """
    if error_code == CARRIER_OPT_OUT:
        record_carrier_opt_out(delivery, error_code=error_code)
        reason = Reason.SMS_OPTED_OUT
    if bounce:
        record_email_bounce(delivery, source=Source.CARRIER, actor="mail server", evidence=bounce)
        reason = reason or Reason.EMAIL_BOUNCED
    if not can_move(delivery.status, status):
        if status != delivery.status:
            log.info(
                "delivery %s: %s -> %s refused (%s)",
                delivery.pk,
                delivery.status,
                status,
                provider_status or error_code or "no detail",
            )
        DeliveryEvent.objects.create(
            delivery=delivery, status=status, provider_status=provider_status, error_code=error_code
        )
        return False
    now = datetime.now(UTC)
    delivery.status = status
    fields = ["status", "updated_at"]
    if status == Status.SENT and delivery.sent_at is None:
        delivery.sent_at = now
        fields.append("sent_at")
    if status == Status.DELIVERED:
        delivery.delivered_at = now
        fields.append("delivered_at")
        if delivery.sent_at is None:
            delivery.sent_at = now
            fields.append("sent_at")
    if reason:
        delivery.reason = reason
        fields.append("reason")
    if error:
        delivery.error = error[:500]
        fields.append("error")
    delivery.save(update_fields=fields)
    DeliveryEvent.objects.create(
        delivery=delivery, status=status, provider_status=provider_status, error_code=error_code
    )
    emit.delivery_changed(delivery)
    return True


def move_many(
    ids: list[int], status: Status, *, provider_status: str = "", reason: str = "", not_before: datetime | None = None
) -> list[int]:
    """Move these deliveries to ``status`` in a few statements, those the table allows; returns them.

    The others (already handed over, settled by a callback...) are left as they are, and logged.
    """
    now = datetime.now(UTC)
    with transaction.atomic():
        movable = list(
            Delivery.objects.select_for_update(of=("self",))
            .filter(pk__in=ids, status__in=sources(status))
            .values_list("pk", flat=True)
        )
        fields: dict = {"status": status, "updated_at": now}
        if reason:
            fields["reason"] = reason
        if not_before is not None:
            fields["not_before"] = not_before
        Delivery.objects.filter(pk__in=movable).update(**fields)
        DeliveryEvent.objects.bulk_create(
            [DeliveryEvent(delivery_id=pk, status=status, provider_status=provider_status) for pk in movable]
        )
        emit.deliveries_changed(Delivery.objects.filter(pk__in=movable))
    if refused := sorted(set(ids) - set(movable)):
        log.info("deliveries %s: -> %s refused (not in a status that may move there)", refused, status)
    return movable


def handed_over(answers: list[tuple[int, str, bool]], now: datetime) -> None:
    """Record what providers answered for deliveries just handed over: (id, provider's id, delivered at once).

    One statement per row, plain SQL (the ORM's bulk_update costs more here than the rows), each moving
    only a delivery that may still go to sent or delivered.
    """
    if not answers:
        return
    at = connection.ops.adapt_datetimefield_value(now)
    allowed = sources(Status.SENT)
    placeholders = ", ".join(["%s"] * len(allowed))
    rows, history = [], []
    for pk, provider_ref, delivered in answers:
        status = Status.DELIVERED if delivered else Status.SENT
        rows.append((provider_ref, status.value, at, at if delivered else None, at, at, pk, *allowed))
        history.append((pk, Status.SENT.value, "accepted", "", at))
        if delivered:
            history.append((pk, Status.DELIVERED.value, "delivered", "", at))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {Delivery._meta.db_table} SET provider_ref = %s, status = %s, sent_at = %s, delivered_at = %s, "
            f"updated_at = %s, attempted_at = COALESCE(attempted_at, %s) WHERE id = %s AND status IN ({placeholders})",
            rows,
        )
        cursor.executemany(
            f"INSERT INTO {DeliveryEvent._meta.db_table} (delivery_id, status, provider_status, error_code, at) "
            "VALUES (%s, %s, %s, %s, %s)",
            history,
        )
        # Those just moved (another status since is another event): their ids written out, which the ORM's
        # per-value preparation of a long IN list would cost more than the query.
        moved = RawSQL(f"id IN ({', '.join(str(int(a[0])) for a in answers)})", (), output_field=BooleanField())
        emit.deliveries_changed(Delivery.objects.filter(moved, updated_at=now))


def record_carrier_opt_out(delivery: Delivery, *, error_code: str) -> None:
    """Error 21610: the carrier holds a STOP we never saw. Record it and stop texting the number."""
    consent.record_sms_opt_out(
        practice=delivery.practice,
        number=delivery.address,
        source=Source.CARRIER,
        actor="carrier",
        evidence={"error_code": error_code, "delivery_id": delivery.pk, "provider_ref": delivery.provider_ref},
    )


def record_email_bounce(delivery: Delivery, *, source: str, actor: str, evidence: dict):
    """A hard bounce: the address cannot take mail. Record it so nothing is sent there again."""
    return consent.record_email_state(
        practice=delivery.practice,
        email=delivery.address,
        state=EmailState.BOUNCED,
        source=source,
        actor=actor,
        evidence={**evidence, "delivery_id": delivery.pk, "provider_ref": delivery.provider_ref},
    )


@transaction.atomic
def apply_status(*, delivery: Delivery, report: StatusReport) -> bool:
    """A provider's status report moves the delivery (as ``TRANSITIONS`` allows) and joins its history."""
    if report.status is None:
        return False
    locked = Delivery.objects.select_for_update().select_related("practice").get(pk=delivery.pk)
    return move(
        locked,
        report.status,
        provider_status=report.provider_status,
        error_code=report.error_code,
        error=f"{report.error_code}: {report.provider_status}" if report.error_code else "",
    )
