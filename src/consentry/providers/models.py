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
    headers = models.JSONField(default=dict, blank=True)  # an email's extra headers (List-Unsubscribe)
    # The id the sandbox answered with (a delivery's provider_ref).
    ref = models.CharField(max_length=40, db_index=True, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)


class InAppNotice(models.Model):
    """A notice shown in the patient portal: what the in-app channel delivers."""

    practice_id = models.UUIDField(db_index=True)
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="in_app_notices")
    delivery_id = models.BigIntegerField(unique=True)  # one notice per delivery, however often it is handed over
    category = models.CharField(max_length=64, blank=True, default="")
    subject = EncryptedTextField(blank=True, default="")
    body = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["patient", "-created_at"], name="inappnotice_patient_newest")]


class PushSubscription(models.Model):
    """A browser's Web Push subscription (its PushSubscription JSON) for one patient."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=2048)
    p256dh = models.CharField(max_length=100)  # the browser's P-256 public key, base64url
    auth = models.CharField(max_length=32)  # the browser's 16-byte auth secret, base64url
    created_at = models.DateTimeField(auto_now_add=True)
    # The push service's last refusal (status and reason); cleared by the next success.
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "endpoint"], name="pushsubscription_patient_endpoint"),
        ]
