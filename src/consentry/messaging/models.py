"""Messages (one request to reach patients) and their per-channel deliveries."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from consentry.crypto import EncryptedTextField
from consentry.patients.models import Patient, Practice
from consentry.vocabulary import Channel, Kind, Reason, Status, choices


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=16, choices=choices(Kind))
    category = models.CharField(max_length=64)
    # {"sms": ..., "voice": ..., "email": {"subject", "text", "html"}, "in_app": ...}, encrypted as JSON.
    content = EncryptedTextField()
    actor = models.CharField(max_length=200, default="api")
    created_at = models.DateTimeField(auto_now_add=True)
    # An integrator's Idempotency-Key: the same key and request return this
    # message again instead of sending twice.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="message_unique_idempotency_key",
            )
        ]


class Delivery(models.Model):
    """One channel to one address for one recipient of a message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    # Null for replies to numbers that belong to no patient (a STOP from a stranger).
    patient = models.ForeignKey(Patient, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=choices(Channel))
    address = models.CharField(max_length=254, blank=True, default="")
    status = models.CharField(max_length=12, default=Status.PENDING, choices=choices(Status))
    reason = models.CharField(max_length=32, blank=True, default="", choices=choices(Reason, blank=True))
    # Database defaults too: planning inserts rows without the ORM and leaves these out.
    provider_ref = models.CharField(max_length=64, blank=True, default="", db_default="")
    error = models.CharField(max_length=500, blank=True, default="", db_default="")
    # A delivery deferred by quiet hours waits until then.
    not_before = models.DateTimeField(null=True, blank=True)
    # Where the recipient is (an IANA zone) when quiet hours apply to this
    # delivery, blank when they do not: the worker checks the window again
    # before a late hand-over (a retry, a re-dispatch).
    recipient_timezone = models.CharField(max_length=64, blank=True, default="", db_default="")
    # The practice's number a text or call goes from when it must be that one (a keyword's confirmation goes
    # from the number texted); blank: the patient's location's number, else the practice's (patients.locations).
    from_number = models.CharField(max_length=20, blank=True, default="", db_default="")
    # Set right before the provider call: a delivery with an attempt and no
    # outcome is never handed to the provider again (no blind resends).
    attempted_at = models.DateTimeField(null=True, blank=True)
    # Hand-overs the provider refused with a transient error (each retried later).
    attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["practice", "address", "channel"], name="delivery_address"),
            # Status callbacks find their delivery by the provider's id.
            models.Index(fields=["provider_ref"], name="delivery_provider_ref", condition=~models.Q(provider_ref="")),
            # The recovery sweep looks only at deliveries still waiting, oldest first.
            models.Index(
                fields=["updated_at"],
                name="delivery_waiting",
                condition=models.Q(status__in=[Status.PENDING, Status.DEFERRED]),
            ),
        ]


class DeliveryEvent(models.Model):
    """One status a delivery went through, with what the provider said: its full history."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=12)
    # The provider's own status word (e.g. Twilio's "sending") and error code, if any.
    provider_status = models.CharField(max_length=32, blank=True, default="")
    error_code = models.CharField(max_length=32, blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]


class SenderPace(models.Model):
    """When a sender (a texting number, an email sender) may next hand a message to its provider.

    Shared by every worker process through the database: each send reserves
    the next free instant, so a sender never goes faster than its rate
    however many workers there are.
    """

    sender = models.CharField(max_length=300, unique=True)
    next_at = models.DateTimeField()


class WorkerBeat(models.Model):
    """A worker process's heartbeat: a task whose worker stopped beating is run again by another."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now, db_index=True)
