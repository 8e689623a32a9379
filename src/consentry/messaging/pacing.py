"""Per-sender rate limits, shared by all workers through the database.

A sender is what the provider counts against: the number a text goes from
(the practice's, or one of its locations') for texts (and, separately, for
calls), the practice's email sender for email. Its rate
is the practice's setting, else the provider's default (about 1 a second for
a Twilio long code), else none.

Each hand-over reserves the sender's next free instant in ``SenderPace``: the
reservation is one short transaction (a row lock on PostgreSQL; SQLite's
IMMEDIATE transactions serialize writers), so two workers can never take the
same instant. A worker sleeps until its instant when that is soon; when it is
not, the rest of its batch goes to a new task that starts at the reserved
instant, and the worker is free for other practices' messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils.module_loading import import_string

from consentry.providers.base import PROVIDERS, provider_name
from consentry.vocabulary import Channel

from .models import SenderPace


@dataclass(frozen=True)
class Sender:
    key: str
    interval: timedelta  # between two hand-overs


def rate_for(practice, channel: str) -> float | None:
    """Messages per second this practice may hand over on this channel, or None for no limit."""
    if channel == Channel.IN_APP:
        return None
    own = practice.email_rate_per_second if channel == Channel.EMAIL else practice.sms_rate_per_second
    if own:
        return own
    path = PROVIDERS.get(provider_name(practice, channel))
    return getattr(import_string(path), "default_rate", None) if path else None


def sender_for(practice, channel: str, *, number: str = "") -> Sender | None:
    """``number``: the practice's number a text or call goes from (one of its locations'), else its own."""
    rate = rate_for(practice, channel)
    if not rate:
        return None
    address = (
        (practice.email_from or str(practice.pk)) if channel == Channel.EMAIL else number or practice.texting_number
    )
    return Sender(f"{channel}:{address}", timedelta(seconds=1 / rate))


def reserve(sender: Sender, now: datetime | None = None) -> datetime:
    """Take the sender's next free instant (now, or later) and return it."""
    now = now or datetime.now(UTC)
    with transaction.atomic():
        pace = SenderPace.objects.select_for_update().filter(sender=sender.key).first()
        if pace is None:
            # First use: create the row; a concurrent first use loses the race
            # to the unique key and simply reads the winner's row.
            SenderPace.objects.bulk_create([SenderPace(sender=sender.key, next_at=now)], ignore_conflicts=True)
            pace = SenderPace.objects.select_for_update().get(sender=sender.key)
        slot = max(pace.next_at, now)
        pace.next_at = slot + sender.interval
        pace.save(update_fields=["next_at"])
    return slot


def hold(sender: Sender, until: datetime) -> None:
    """The provider asked the sender to wait (a 429's Retry-After): no instant before ``until`` for anyone."""
    with transaction.atomic():
        SenderPace.objects.bulk_create([SenderPace(sender=sender.key, next_at=until)], ignore_conflicts=True)
        SenderPace.objects.filter(sender=sender.key, next_at__lt=until).update(next_at=until)


def wait_for(sender: Sender, slot: datetime) -> None:
    """Sleep until the reserved instant; a hand-over running late takes a new instant instead.

    A late hand-over (a busy machine, a slow consent check) would otherwise go
    out close to the next one's instant and make a burst; keeping every
    hand-over within a quarter interval of its own instant keeps the sender's
    rate over any window.
    """
    late = datetime.now(UTC) - slot
    if late > sender.interval / 4:
        slot = reserve(sender)
    wait = (slot - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(wait)
