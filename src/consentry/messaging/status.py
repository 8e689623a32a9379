"""Delivery statuses: allowed moves, history, and what providers report back."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.consent.rules import Reason, Status

from .models import Delivery, DeliveryEvent

# Higher ranks are later in a delivery's life; a status never moves back
# (a late "sent" callback after "delivered" changes nothing).
RANK = {
    Status.PENDING: 0, Status.DEFERRED: 0, Status.SENT: 1,
    Status.DELIVERED: 2, Status.UNDELIVERED: 2, Status.FAILED: 2, Status.SKIPPED: 2,
}

# Twilio's message and call statuses, in our words.
TWILIO_STATUS = {
    "accepted": Status.SENT, "scheduled": Status.SENT, "queued": Status.SENT, "sending": Status.SENT,
    "sent": Status.SENT, "delivered": Status.DELIVERED, "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED, "failed": Status.FAILED, "canceled": Status.FAILED,
    # calls
    "initiated": Status.SENT, "ringing": Status.SENT, "in-progress": Status.SENT, "completed": Status.DELIVERED,
    "busy": Status.UNDELIVERED, "no-answer": Status.UNDELIVERED,
}

CARRIER_OPT_OUT_CODE = "21610"


def move(
    delivery: Delivery, status: Status, *, provider_status: str = "", error_code: str = "", reason: str = "",
    error: str = "", bounce: dict | None = None,
) -> bool:
    """Move a delivery to ``status`` and record it in its history; False if that would go back.

    Whichever way a provider reports error 21610 (refusing the send, or in a
    later status callback), the carrier's opt-out is recorded here, once.
    Likewise an email address the receiving mail server refused for good
    (``bounce``: its code and reply) is recorded as bounced.
    """
    if error_code == CARRIER_OPT_OUT_CODE:
        record_carrier_opt_out(delivery, error_code=error_code)
        reason = Reason.SMS_OPTED_OUT
    if bounce:
        record_email_bounce(delivery, source=Source.CARRIER, actor="mail server", evidence=bounce)
        reason = reason or Reason.EMAIL_BOUNCED
    if RANK[Status(status)] <= RANK[Status(delivery.status)]:
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
    DeliveryEvent.objects.create(delivery=delivery, status=status, provider_status=provider_status,
                                 error_code=error_code)
    return True


def record_carrier_opt_out(delivery: Delivery, *, error_code: str) -> None:
    """Error 21610: the carrier holds a STOP we never saw. Record it and stop texting the number."""
    consent.record_sms_opt_out(
        practice=delivery.practice, number=delivery.address, source=Source.CARRIER, actor="carrier",
        evidence={"error_code": error_code, "delivery_id": delivery.pk, "provider_ref": delivery.provider_ref},
    )


def record_email_bounce(delivery: Delivery, *, source: str, actor: str, evidence: dict):
    """A hard bounce: the address cannot take mail. Record it so nothing is sent there again."""
    return consent.record_email_state(
        practice=delivery.practice, email=delivery.address, state=EmailState.BOUNCED, source=source, actor=actor,
        evidence={**evidence, "delivery_id": delivery.pk, "provider_ref": delivery.provider_ref},
    )


@transaction.atomic
def apply_twilio_status(*, delivery: Delivery, provider_status: str, error_code: str = "") -> bool:
    status = TWILIO_STATUS.get(provider_status)
    if status is None:
        return False
    locked = Delivery.objects.select_for_update().select_related("practice").get(pk=delivery.pk)
    return move(locked, status, provider_status=provider_status, error_code=error_code,
                error=f"{error_code}: {provider_status}" if error_code else "")
