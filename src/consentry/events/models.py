import uuid

from django.db import models

from consentry.crypto import EncryptedTextField
from consentry.patients.models import Practice


class EventType(models.TextChoices):
    """What a practice's system can be told, as it happens."""

    CONSENT_CHANGED = "consent.changed", "A consent change was recorded in the ledger"
    DELIVERY_STATUS_CHANGED = "delivery.status_changed", "A delivery changed status"
    MESSAGE_RECEIVED = "message.received", "A text was received"
    OPTOUT_FLAGGED = "optout.flagged", "A reply was flagged as a possible opt-out"


class WebhookEndpoint(models.Model):
    """Where a practice's system receives signed events, and which events it wants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)  # EventType values
    description = models.CharField(max_length=200, blank=True, default="")
    # "whsec_" and base64: the Standard Webhooks signing secret, shown once when the endpoint is made.
    secret = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "url"], name="webhook_endpoint_once")]


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # not answered with a 2xx yet: an attempt is due at next_attempt_at
    DELIVERED = "delivered"  # a 2xx
    FAILED = "failed"  # every attempt refused or unanswered


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row written with the change, and its delivery log."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The webhook-id header: the same for every attempt, and for every endpoint that gets the event.
    event_id = models.CharField(max_length=40)
    type = models.CharField(max_length=32, choices=EventType.choices)
    # The JSON body as sent (it may hold a patient's text: encrypted at rest).
    payload = EncryptedTextField()
    status = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    # Every attempt: {"at", "status_code", "error", "ms"}.
    attempt_log = models.JSONField(default=list)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["endpoint", "-id"], name="webhook_delivery_log")]
