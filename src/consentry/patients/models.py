"""Practices (tenants), their patients and the addresses patients share."""

from __future__ import annotations

import datetime
import urllib.parse
import uuid

from django.conf import settings
from django.db import models

from consentry.crypto import EncryptedTextField
from consentry.vocabulary import LineType, MarketingConsent, choices


class KeywordMode(models.TextChoices):
    SELF_MANAGED = "self", "Consentry sends confirmations"
    PROVIDER_MANAGED = "provider", "Provider (Twilio Advanced Opt-Out) sends confirmations"


class ReasonableMeans(models.TextChoices):
    FLAG = "flag", "Flag the conversation; staff confirm the opt-out"
    AUTO = "auto", "Opt out at once and send the one clarifying confirmation"


class OptOutHint(models.TextChoices):
    FIRST = "first", "A number's first automated or broadcast text in 30 days, and every marketing text"
    ALWAYS = "always", "Every automated and broadcast text"
    NEVER = "never", "None (our texts already say it)"


DEFAULT_OPT_OUT_HINT_TEXT = "Reply STOP to opt out."
MAX_OPT_OUT_HINT_TEXT = 60


def default_email_from() -> str:
    """noreply@ the public URL's domain (localhost when it has none, as a demo on 127.0.0.1)."""
    host = urllib.parse.urlsplit(settings.CONSENTRY_PUBLIC_URL).hostname or ""
    if not host or host.replace(".", "").isdigit() or "." not in host:
        host = "localhost"
    return f"noreply@{host}"


class Practice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="America/New_York")
    # Region used to read national-format phone numbers (ISO 3166 alpha-2).
    region = models.CharField(max_length=2, default="US")
    texting_number = models.CharField(max_length=20, unique=True)
    contact_phone = models.CharField(max_length=20, blank=True, default="")
    email_from = models.EmailField(blank=True, default="")
    twilio_account_sid = models.CharField(max_length=64, blank=True, default="")
    twilio_auth_token = EncryptedTextField(blank=True, default="")
    # Provider names (see providers.base.PROVIDERS); blank means the
    # deployment's CONSENTRY_PROVIDER.
    sms_provider = models.CharField(max_length=20, blank=True, default="")
    email_provider = models.CharField(max_length=20, blank=True, default="")
    # Quiet hours: automations, broadcasts and notifications reach people only
    # between these local times (TCPA limits telemarketing to 8:00–21:00).
    send_window_start = models.TimeField(default=datetime.time(8, 0))
    send_window_end = models.TimeField(default=datetime.time(21, 0))
    # Frequency caps (off by default): automated calls and texts per number,
    # modelled on the FCC's healthcare-message exemption (1 a day, 3 a week).
    frequency_caps = models.BooleanField(default=False)
    frequency_cap_per_day = models.PositiveSmallIntegerField(default=1)
    frequency_cap_per_week = models.PositiveSmallIntegerField(default=3)
    keyword_mode = models.CharField(max_length=10, choices=KeywordMode.choices, default=KeywordMode.SELF_MANAGED)
    # Keyword languages besides English (e.g. ["es"]): STOP is always understood.
    keyword_languages = models.JSONField(default=list, blank=True)
    # Replies that ask to stop without the exact keyword ("please stop texting me").
    reasonable_means = models.CharField(max_length=4, choices=ReasonableMeans.choices, default=ReasonableMeans.FLAG)
    # Sender pacing, in messages per second for the texting number (a long
    # code takes about 1, a short code far more) and for the email sender.
    # Blank means the provider's default (see providers.base.default_rate).
    sms_rate_per_second = models.FloatField(null=True, blank=True)
    email_rate_per_second = models.FloatField(null=True, blank=True)
    # Which side owns patients' preferred phone, do-not-contact and marketing consent: Consentry (staff
    # change them here) or the practice's EHR/PMS (a sync sets them; the staff app shows them read-only).
    contact_preferences_source = models.CharField(
        max_length=9, choices=[("consentry", "Consentry"), ("ehr", "The EHR/PMS")], default="consentry"
    )
    # How to stop, at the end of automated and broadcast texts (messaging/hints.py), in the practice's words.
    opt_out_hint = models.CharField(max_length=6, choices=OptOutHint.choices, default=OptOutHint.FIRST)
    opt_out_hint_text = models.CharField(max_length=MAX_OPT_OUT_HINT_TEXT, default=DEFAULT_OPT_OUT_HINT_TEXT)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def email_sender(self) -> str:
        """The From of the practice's email: its own display name, else the practice's name; without an
        address of its own, noreply@ the domain of the service's public URL."""
        if "<" in self.email_from:
            return self.email_from
        return f"{self.name} <{self.email_from or default_email_from()}>"


class Location(models.Model):
    """One of a practice's sites, with its own texting number, name and time zone.

    Its number is the practice's too: a text to it reaches the practice, and consent stays the
    practice's (a STOP to any of its numbers stops texts from all of them). It shares the practice's
    Twilio account (and so its auth token); it may send through a Messaging Service of its own.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="locations")
    name = models.CharField(max_length=100)
    # Unique across every practice's and location's numbers (practices' own numbers are checked by the services).
    texting_number = models.CharField(max_length=20, unique=True)
    # A Twilio Messaging Service (MG...) the location's texts go through, with its number as the sender.
    twilio_messaging_service_sid = models.CharField(max_length=34, blank=True, default="")
    timezone = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "name"], name="location_unique_name")]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An integrator's key. Only its SHA-256 is stored; the key is shown once."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="api_keys")
    key_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True, default="")
    # What it may do (vocabulary.Scope): read, send, manage.
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class Category(models.Model):
    """A message category of one practice: transactional or marketing, with its notification grid."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="categories")
    key = models.SlugField(max_length=64)
    marketing = models.BooleanField(default=False)
    notification_channels = models.JSONField(default=list)
    patient_can_disable = models.BooleanField(default=True)
    # Urgent types (a same-day cancellation) may go out during quiet hours.
    quiet_hours_exempt = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "key"], name="category_unique_key")]
        verbose_name_plural = "categories"


class ContactKind(models.TextChoices):
    PHONE = "phone"
    EMAIL = "email"


class ContactPoint(models.Model):
    """A normalized address at one practice: E.164 phone or lowercased email.

    Shared by every patient who lists it (a parent's phone for three children),
    because consent belongs to the address, not to the patient.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="contact_points")
    address = models.CharField(max_length=254)
    kind = models.CharField(max_length=5, choices=ContactKind.choices)
    line_type = models.CharField(max_length=10, choices=choices(LineType), default=LineType.UNKNOWN.value)
    valid = models.BooleanField(default=True)
    # The phone's time zone when its number tells one (area code), else blank.
    timezone = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "address"], name="contact_point_unique_address")]


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="patients")
    external_id = models.CharField(max_length=128, blank=True, default="")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True, default="")
    language = models.CharField(max_length=16, default="en")
    timezone = models.CharField(max_length=64, blank=True, default="")
    # The practice's site the patient belongs to: their texts go from its number, and its time zone is theirs
    # when they have none of their own.
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="patients")
    do_not_contact = models.BooleanField(default=False)
    marketing_consent = models.CharField(
        max_length=7, choices=choices(MarketingConsent), default=MarketingConsent.UNKNOWN.value
    )
    preferred_phone = models.ForeignKey(
        ContactPoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Channels turned off for every notification type, e.g. ["sms"].
    channel_opt_outs = models.JSONField(default=list, blank=True)
    # {"appointment_reminder": {"sms": false, "email": true}}
    notification_overrides = models.JSONField(default=dict, blank=True)
    # Labels from the practice's systems ("diabetic", "new-parent"), for choosing a broadcast's audience.
    tags = models.JSONField(default=list, blank=True)
    last_visit_on = models.DateField(null=True, blank=True)
    # Phones the patient took off their notification settings (the portal's "Remove"), e.g. an opted-out
    # number they mean to keep opted out: no notification goes to them on any channel. Other kinds of
    # message, and the phones' own consent and ledger history, are unaffected. E.164 numbers.
    notification_phones_removed = models.JSONField(default=list, blank=True)
    contact_points: models.ManyToManyField[ContactPoint, PatientContact] = models.ManyToManyField(
        ContactPoint, through="PatientContact", related_name="patients"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Moved by every change to the patient, consent flags included (for ?updated_since= syncs).
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "external_id"],
                condition=~models.Q(external_id=""),
                name="patient_unique_external_id",
            )
        ]
        # The staff app's patient list, by name.
        indexes = [models.Index(fields=["practice", "last_name", "first_name"], name="patient_by_name")]


class PatientContact(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="contacts")
    contact_point = models.ForeignKey(ContactPoint, on_delete=models.CASCADE, related_name="patient_links")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "contact_point"], name="patient_contact_unique")]
        ordering = ["position"]


class PatientDue(models.Model):
    """When a patient is next due for a category of message (a recall), as the practice's PMS keeps it.

    One date per patient and category. ``practice`` repeats the patient's so that the recall list,
    "this practice's patients due for this category before this date", is one index range scan.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="dues")
    category = models.CharField(max_length=64)
    due_on = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "category"], name="patient_due_unique_category")]
        indexes = [models.Index(fields=["practice", "category", "due_on"], name="patient_due_by_date")]
