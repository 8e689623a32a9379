"""Sending an event to an endpoint: signed (Standard Webhooks), retried with backoff for about a day.

Each attempt is claimed, made and recorded in three steps:

1. the claim (one transaction) counts the attempt and moves the row's
   ``next_attempt_at`` past the longest an attempt can take, with a task
   enqueued for that instant: should this worker die before it records the
   answer, that task tries again;
2. the POST, outside any transaction, through ``netguard``'s session: the
   endpoint's name is resolved again and must still lead to the internet
   (unless ``CONSENTRY_WEBHOOKS_ALLOW_PRIVATE``), no redirect is followed;
3. the record (one transaction): a 2xx delivers it; anything else schedules
   the next attempt after ``RETRY_DELAYS`` (with its task), or fails it after
   the last.

Whenever a pending row has a ``next_attempt_at``, a task is due then: every
change of it enqueues one in the same transaction. A task that finds the row
settled, gone (its endpoint deleted) or not yet due does nothing. Delivery is
at least once: a receiver keeps the ``webhook-id`` headers it has seen.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django_tasks import task
from standardwebhooks import Webhook

from consentry import netguard

from .models import DeliveryState, WebhookDelivery

log = logging.getLogger("consentry.events")

# After each failed attempt, the wait before the next: 8 attempts over about 27 hours, then failed.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
ATTEMPTS = len(RETRY_DELAYS) + 1
CONNECT_TIMEOUT_SECONDS = 3
ANSWER_TIMEOUT_SECONDS = 5
# Longer than an attempt can take: when a claimed attempt left no answer by then, its worker is gone.
LEASE = timedelta(seconds=60)
USER_AGENT = "Consentry-Webhooks/1"


def _may_reach_private(host: str) -> bool:
    return settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE


@task()
def deliver_event(delivery_id: int) -> str:
    """Make the attempt due for this event and endpoint, if one is; what became of it."""
    claimed = _claim(delivery_id)
    if isinstance(claimed, str):
        return claimed
    status_code, error, ms, at = _post(claimed)
    return _record(claimed, status_code, error, ms, at)


def _claim(delivery_id: int) -> WebhookDelivery | str:
    now = datetime.now(UTC)
    with transaction.atomic():
        row = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if row is None:
            return "gone"  # its endpoint was deleted
        if row.status != DeliveryState.PENDING:
            return row.status
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            return "not_due"
        if row.attempts >= ATTEMPTS:
            # The last attempt's worker died before it recorded an answer.
            row.status, row.next_attempt_at = DeliveryState.FAILED, None
            row.last_error = row.last_error or "no answer was recorded"
            row.save(update_fields=["status", "next_attempt_at", "last_error"])
            return DeliveryState.FAILED
        row.attempts += 1
        _schedule(row, now + LEASE)
        row.save(update_fields=["attempts", "next_attempt_at"])
    return row


def _schedule(row: WebhookDelivery, at: datetime) -> None:
    row.next_attempt_at = at
    deliver_event.using(run_after=at).enqueue(row.pk)


def signed_headers(event_id: str, secret: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: its id, its timestamp, and the HMAC-SHA256 of both
    and the body, with the endpoint's secret."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


def _post(row: WebhookDelivery) -> tuple[int | None, str, int, datetime]:
    """POST the event: (HTTP status or None, error, milliseconds, when)."""
    at = datetime.now(UTC).replace(microsecond=0)
    headers = {
        **signed_headers(row.event_id, row.endpoint.secret, row.payload, at),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    started = time.monotonic()
    status_code, error = None, ""
    try:
        with netguard.guarded_session(_may_reach_private) as session:
            response = session.post(
                row.endpoint.url,
                data=row.payload.encode(),
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, ANSWER_TIMEOUT_SECONDS),
                allow_redirects=False,
                stream=True,  # the answer's body is never read: its status says it all
            )
            response.close()
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"answered {status_code} {response.reason or ''}".strip()
    except requests.TooManyRedirects as exc:  # the session follows none
        status_code = exc.response.status_code if exc.response is not None else None
        error = f"answered {status_code} (redirects are not followed)"
    except requests.Timeout:
        error = f"no answer within {CONNECT_TIMEOUT_SECONDS} s (connect) or {ANSWER_TIMEOUT_SECONDS} s (answer)"
    except requests.RequestException as exc:
        why = netguard.refusal(exc)
        error = f"not sent: {why}" if why else f"{type(exc).__name__}: {exc}"
    ms = int((time.monotonic() - started) * 1000)
    if error:
        log.info("webhook %s to endpoint %s, attempt %s: %s", row.event_id, row.endpoint_id, row.attempts, error)
    return status_code, error[:300], ms, at


def _record(claimed: WebhookDelivery, status_code: int | None, error: str, ms: int, at: datetime) -> str:
    now = datetime.now(UTC)
    with transaction.atomic():
        row = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=claimed.pk, status=DeliveryState.PENDING, attempts=claimed.attempts)
            .first()
        )
        if row is None:
            return "gone"  # deleted with its endpoint meanwhile
        row.attempt_log = [
            *row.attempt_log,
            {"at": at.isoformat(), "status_code": status_code, "error": error, "ms": ms},
        ]
        row.last_status_code, row.last_error = status_code, error
        if not error:
            row.status, row.delivered_at, row.next_attempt_at = DeliveryState.DELIVERED, now, None
        elif row.attempts >= ATTEMPTS:
            row.status, row.next_attempt_at = DeliveryState.FAILED, None
        else:
            _schedule(row, now + RETRY_DELAYS[row.attempts - 1])
        row.save(
            update_fields=[
                "attempt_log",
                "last_status_code",
                "last_error",
                "status",
                "delivered_at",
                "next_attempt_at",
            ]
        )
    return row.status if row.status != DeliveryState.PENDING else "retry"
