"""The worker side: re-check consent, hand each delivery to its provider, record the outcome."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django_tasks import task

from consentry.consent import ledger
from consentry.consent.rules import Channel, Kind, Status, address_block_reason
from consentry.providers.base import Outbound, ProviderError, provider_for

from . import pacing, templating
from .models import Delivery, DeliveryEvent
from .planning import category_for
from .status import move

log = logging.getLogger("consentry.dispatch")


@task()
def dispatch_deliveries(delivery_ids: list[int], reserved: list[str] | None = None) -> dict:
    """Hand these deliveries to their providers, at their senders' pace.

    ``reserved`` is [sender, instant]: a slot the task that handed over this
    batch already took for that sender (see ``pacing``).
    """
    # Whatever happens to this worker from here on (even a crash right after
    # a provider accepted a message), these deliveries are looked at again
    # once the outcome timeout has passed: none can stay pending for ever.
    expire_unknown_outcomes.using(
        run_after=datetime.now(UTC) + timedelta(seconds=settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS)
    ).enqueue(delivery_ids)
    outcomes: dict[str, int] = {}
    categories: dict = {}
    senders = pacing.senders(delivery_ids, datetime.now(UTC))
    waited = 0.0
    for i, delivery_id in enumerate(delivery_ids):
        sender = senders.get(delivery_id)
        if sender is not None:
            if reserved and reserved[0] == sender.key:
                slot, reserved = datetime.fromisoformat(reserved[1]), None
            else:
                slot = pacing.reserve(sender)
            wait = (slot - datetime.now(UTC)).total_seconds()
            if wait > 0 and waited + wait > settings.CONSENTRY_PACING_MAX_WAIT_SECONDS:
                # The sender is busy for a while: the rest goes on at its reserved
                # instant, and this worker is free for other practices meanwhile.
                dispatch_deliveries.using(run_after=slot).enqueue(delivery_ids[i:], [sender.key, slot.isoformat()])
                outcomes["paced"] = len(delivery_ids) - i
                break
            waited += max(wait, 0)
        outcome = dispatch_one(delivery_id, categories, pace=(sender, slot) if sender is not None else None)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def dispatch_one(delivery_id: int, categories: dict | None = None, pace: tuple | None = None) -> str:
    """Check consent once more and hand one delivery over; ``pace`` is (sender, its reserved instant)."""
    categories = {} if categories is None else categories
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))  # patient may be null: lock the delivery row only
            .select_related("message", "practice", "patient")
            .filter(pk=delivery_id, status__in=[Status.PENDING, Status.DEFERRED], attempted_at__isnull=True)
            .first()
        )
        if delivery is None:
            return "not_pending"
        if delivery.not_before and delivery.not_before > datetime.now(UTC):
            return "not_due"  # quiet hours: its own task runs when the window opens
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

    outbound = render(delivery, categories[key])
    if pace is not None:
        pacing.wait_for(*pace)  # consent was checked and the hand-over is marked
    try:
        result = provider_for(delivery.practice, delivery.channel).send(outbound)
    except ProviderError as exc:
        log.warning("delivery %s: %s %s", delivery.pk, exc.code, exc)
        return _provider_refused(delivery, exc)
    with transaction.atomic():
        delivery.provider_ref = result.provider_ref
        delivery.save(update_fields=["provider_ref", "updated_at"])
        move(delivery, Status.SENT, provider_status="accepted")
        if result.status == Status.DELIVERED:
            move(delivery, Status.DELIVERED, provider_status="delivered")
    return delivery.status


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
            delivery.save(update_fields=["attempts", "attempted_at", "updated_at"])
            DeliveryEvent.objects.create(delivery=delivery, status=delivery.status, error_code=exc.code,
                                         provider_status="retry")
            dispatch_deliveries.using(run_after=datetime.now(UTC) + retry_delay(delivery.attempts)).enqueue(
                [delivery.pk]
            )
            return "retry"
        move(delivery, Status.FAILED, error_code=exc.code, error=f"{exc.code}: {exc}", bounce=exc.bounce)
        return Status.FAILED


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with full jitter (spreads retries after a provider outage)."""
    ceiling = min(settings.CONSENTRY_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.CONSENTRY_RETRY_MAX_SECONDS)
    return timedelta(seconds=random.uniform(0, ceiling))


@task()
def expire_unknown_outcomes(delivery_ids: list[int]) -> int:
    """Fail, with ``outcome_unknown``, deliveries handed over long ago that no one heard back about."""
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.CONSENTRY_OUTCOME_TIMEOUT_SECONDS)
    expired = 0
    for delivery in Delivery.objects.filter(
        pk__in=delivery_ids, status__in=[Status.PENDING, Status.DEFERRED], attempted_at__isnull=False,
        attempted_at__lte=cutoff,
    ):
        with transaction.atomic():
            expired += move(delivery, Status.FAILED, reason="outcome_unknown", error_code="outcome_unknown")
    return expired


def render(delivery: Delivery, category=None) -> Outbound:
    """What the provider is handed: the content personalized for this recipient, in its channel's form."""
    message, practice, channel = delivery.message, delivery.practice, delivery.channel
    content = json.loads(message.content)
    values = templating.values_for(practice, delivery.patient)
    subject = html = ""
    headers: dict = {}
    if channel == Channel.EMAIL:
        category = category or category_for(practice, message.category)
        email = templating.email(
            practice, delivery.patient, delivery.address, content["email"],
            with_unsubscribe=message.kind == Kind.BROADCAST or category.marketing,
        )
        subject, body, html, headers = email.subject, email.text, email.html, email.headers
        sender = practice.email_from or f"{practice.name} <noreply@localhost>"
    elif channel == Channel.IN_APP:
        body = content.get("in_app") or content.get("sms") or content.get("email", {}).get("text", "")
        body = templating.personalize(body, values)
        subject = templating.personalize(content.get("email", {}).get("subject", ""), values)
        sender = practice.name
    else:
        body = templating.personalize(content[channel], values)
        if channel == Channel.SMS:
            body = templating.sms_text(practice, body)
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
        headers=headers,
        category=message.category,
    )
