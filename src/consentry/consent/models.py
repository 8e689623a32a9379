"""The consent ledger and the projections read from it.

``ConsentEvent`` rows are append-only: the model refuses updates and deletes,
and database triggers (see the migration) refuse them for raw SQL too. Each
event carries the hash of the previous event of its practice, so any edit
made behind the database's back is found by ``ledger.verify_chain``.

``ContactConsent`` and ``Block`` are projections: they are only written by
``ledger.record`` in the same transaction as the event that changes them, and
``ledger.replay_projection`` recomputes them from the ledger alone.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from consentry.crypto import EncryptedTextField
from consentry.patients.models import Practice


class LedgerIsAppendOnly(Exception):
    pass


class Subject(models.TextChoices):
    SMS = "sms"  # a phone number's SMS consent
    EMAIL = "email"  # an email address's subscription
    BLOCK = "block"  # a phone number's Blocked Communications categories
    MARKETING = "marketing"  # a patient's PMS marketing consent
    DO_NOT_CONTACT = "do_not_contact"  # a patient's do-not-contact flag
    NOTIFICATIONS = "notifications"  # a patient's notification settings: per-type choices, channel opt-outs, phones


class Source(models.TextChoices):
    SMS_KEYWORD = "sms_keyword"
    CARRIER = "carrier"
    SMS_REPLY = "sms_reply"  # a reply asking to stop without the keyword ("reasonable means")
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe"
    MAILTO_UNSUBSCRIBE = "mailto_unsubscribe"
    RESUBSCRIBE_CLICK = "resubscribe_click"
    ESP_WEBHOOK = "esp_webhook"
    PORTAL = "portal"
    STAFF = "staff"
    PMS_SYNC = "pms_sync"
    IMPORT = "import"
    API = "api"


class ConsentEventQuerySet(models.QuerySet["ConsentEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise LedgerIsAppendOnly("consent events are never updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise LedgerIsAppendOnly("consent events are never deleted")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise LedgerIsAppendOnly("consent events are never updated")


class ConsentEvent(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="consent_events")
    seq = models.PositiveBigIntegerField()
    subject = models.CharField(max_length=16, choices=Subject.choices)
    # A normalized phone/email, or "patient:<uuid>" for patient-level flags.
    address = models.CharField(max_length=254)
    state = models.TextField()
    source = models.CharField(max_length=32, choices=Source.choices)
    actor = models.CharField(max_length=200)
    evidence = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = ConsentEventQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "seq"], name="consent_event_chain")]
        indexes = [models.Index(fields=["practice", "address", "seq"], name="consent_event_address")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise LedgerIsAppendOnly("consent events are never updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise LedgerIsAppendOnly("consent events are never deleted")


class ConsentNote(models.Model):
    """Free text that explains a consent change (a staff member's reason, an unsubscribe mail's subject).

    Kept out of the ledger, which is append-only and could never forget it:
    the event's evidence names the note (``{"note": id}``), and the text is
    encrypted at rest like every other free text, with the same key rotation.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    text = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)


class SmsState(models.TextChoices):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class EmailState(models.TextChoices):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class ContactConsent(models.Model):
    """Current SMS/email state of one address at one practice (absent row = defaults)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=254)
    sms = models.CharField(max_length=10, choices=SmsState.choices, default=SmsState.OPTED_IN)
    email = models.CharField(max_length=12, choices=EmailState.choices, default=EmailState.SUBSCRIBED)
    last_event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "address"], name="contact_consent_unique")]


class Block(models.Model):
    """A phone number on the practice's Blocked Communications list, per category."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="blocks")
    number = models.CharField(max_length=20)
    categories = models.JSONField(default=list)
    last_event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "number"], name="block_unique_number")]


class ResubscribeRequest(models.Model):
    """A resubscribe email sent to an unsubscribed address (double opt-in), and whether it was confirmed.

    At most one is sent per address per day; its link expires after seven days.
    The confirmation itself is a ledger event (source ``resubscribe_click``).
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="resubscribe_requests")
    email = models.CharField(max_length=254)
    requested_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["practice", "email", "created_at"])]
