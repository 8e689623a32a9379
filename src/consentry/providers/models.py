from django.db import models

from consentry.crypto import EncryptedTextField


class SandboxMessage(models.Model):
    """What the sandbox provider was asked to send: the demo's and the tests' outbox."""

    practice_id = models.UUIDField(db_index=True)
    delivery_id = models.BigIntegerField()
    channel = models.CharField(max_length=8)
    to = models.CharField(max_length=254)
    sender = models.CharField(max_length=254)
    subject = EncryptedTextField(blank=True, default="")
    body = EncryptedTextField()
    html = EncryptedTextField(blank=True, default="")  # an email's HTML part
    created_at = models.DateTimeField(auto_now_add=True)
