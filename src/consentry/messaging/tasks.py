"""The worker side: re-check consent, hand each delivery to its provider, record the outcome."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from django.db import transaction
from django_tasks import task

from consentry.consent import ledger
from consentry.consent.rules import Channel, Kind, Reason, Status, address_block_reason
from consentry.providers.base import Outbound, ProviderError, provider_for

from .models import Delivery
from .planning import category_for
from .status import CARRIER_OPT_OUT_CODE, move, record_carrier_opt_out

log = logging.getLogger("consentry.dispatch")


@task()
def dispatch_deliveries(delivery_ids: list[int]) -> dict:
    outcomes: dict[str, int] = {}
    categories: dict = {}
    for delivery_id in delivery_ids:
        outcome = dispatch_one(delivery_id, categories)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def dispatch_one(delivery_id: int, categories: dict | None = None) -> str:
    categories = {} if categories is None else categories
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("message", "practice")
            .filter(pk=delivery_id, status=Status.PENDING, attempted_at__isnull=True)
            .first()
        )
        if delivery is None:
            return "not_pending"
        message, practice = delivery.message, delivery.practice
        key = (practice.pk, message.category)
        if key not in categories:
            categories[key] = category_for(practice, message.category)
        # The last word before the provider call: a STOP committed after the
        # message was planned still wins.
        reason = None
        if delivery.channel != Channel.IN_APP:
            reason = address_block_reason(
                kind=Kind(message.kind),
                category=categories[key],
                channel=Channel(delivery.channel),
                address=delivery.address,
                state=ledger.consent_state(practice.pk, [delivery.address]),
            )
        if reason is not None:
            move(delivery, Status.SKIPPED, reason=reason)
            return Status.SKIPPED
        delivery.attempted_at = datetime.now(UTC)
        delivery.save(update_fields=["attempted_at", "updated_at"])

    outbound = render(delivery)
    try:
        result = provider_for(delivery.practice, delivery.channel).send(outbound)
    except ProviderError as exc:
        log.warning("delivery %s failed: %s %s", delivery.pk, exc.code, exc)
        with transaction.atomic():
            reason = ""
            if exc.code == CARRIER_OPT_OUT_CODE:
                record_carrier_opt_out(delivery, error_code=exc.code)
                reason = Reason.SMS_OPTED_OUT
            move(delivery, Status.FAILED, error_code=exc.code, reason=reason, error=f"{exc.code}: {exc}")
        return Status.FAILED
    with transaction.atomic():
        delivery.provider_ref = result.provider_ref
        delivery.save(update_fields=["provider_ref", "updated_at"])
        move(delivery, Status.SENT, provider_status="accepted")
        if result.status == Status.DELIVERED:
            move(delivery, Status.DELIVERED, provider_status="delivered")
    return delivery.status


def render(delivery: Delivery) -> Outbound:
    content = json.loads(delivery.message.content)
    practice = delivery.practice
    channel = delivery.channel
    subject = html = ""
    if channel == Channel.EMAIL:
        email = content["email"]
        subject, body, html = email["subject"], email["text"], email["html"]
        sender = practice.email_from or f"{practice.name} <noreply@localhost>"
    elif channel == Channel.IN_APP:
        body = content.get("in_app") or content.get("sms") or content.get("email", {}).get("text", "")
        subject = content.get("email", {}).get("subject", "")
        sender = practice.name
    else:
        body = content[channel]
        sender = practice.texting_number
    return Outbound(
        practice_id=str(practice.pk),
        delivery_id=delivery.pk,
        channel=channel,
        to=delivery.address or str(delivery.patient_id),
        sender=sender,
        body=body,
        subject=subject,
        html=html,
    )
