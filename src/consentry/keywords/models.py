from django.db import models

from consentry.crypto import EncryptedTextField
from consentry.patients.models import Practice


class InboundMessage(models.Model):
    """A text received from a phone; the provider's id makes a replayed webhook a no-op.

    A message id is unique only within one practice's account at one provider:
    the same id arriving at another practice is a different text, never a replay.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="inbound_messages")
    provider = models.CharField(max_length=20, default="twilio")
    provider_ref = models.CharField(max_length=64)
    from_number = models.CharField(max_length=20)
    to_number = models.CharField(max_length=20)
    body = EncryptedTextField(blank=True, default="")
    keyword = models.CharField(max_length=10)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "provider", "provider_ref"], name="inbound_message_once")
        ]
