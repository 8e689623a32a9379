from django.db import models

from consentry.crypto import EncryptedTextField
from consentry.patients.models import Practice


class InboundMessage(models.Model):
    """A text received from a phone; the provider's id makes a replayed webhook a no-op."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="inbound_messages")
    provider_ref = models.CharField(max_length=64, unique=True)
    from_number = models.CharField(max_length=20)
    to_number = models.CharField(max_length=20)
    body = EncryptedTextField(blank=True, default="")
    keyword = models.CharField(max_length=10)
    received_at = models.DateTimeField(auto_now_add=True)
