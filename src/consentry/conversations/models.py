"""Two-way conversations: one per (practice, phone), shared by every patient who has that phone."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from consentry.consent.models import ConsentEvent
from consentry.crypto import EncryptedTextField
from consentry.keywords.models import InboundMessage
from consentry.messaging.models import Delivery
from consentry.patients.models import Practice


class Flag(models.TextChoices):
    NONE = "", "None"
    # A reply that may ask to stop without the keyword ("please stop texting me").
    POSSIBLE_OPT_OUT = "possible_opt_out", "Possible opt-out: staff to confirm"


class Direction(models.TextChoices):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    SYSTEM = "system"


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="conversations")
    phone = models.CharField(max_length=20)  # E.164
    flag = models.CharField(max_length=20, choices=Flag.choices, blank=True, default=Flag.NONE)
    # The rule that raised the flag, as the reply classifier names it.
    flag_rule = models.CharField(max_length=64, blank=True, default="")
    flagged_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "phone"], name="conversation_unique_phone")]
        indexes = [
            models.Index(fields=["practice", "-last_activity_at"], name="conversation_activity"),
            models.Index(fields=["practice", "flag"], name="conversation_flag", condition=~models.Q(flag="")),
        ]


class ConversationEntry(models.Model):
    """One line of a conversation: a text received, a text sent, or a note from the system."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="entries")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    body = EncryptedTextField()
    inbound_message = models.ForeignKey(
        InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The consent change a system line reports (opted out, opted back in).
    consent_event = models.ForeignKey(ConsentEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The staff member (or API key) who wrote an outbound text; blank for the patient and the system.
    author = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="conversation_entry_time")]
