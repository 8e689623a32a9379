"""Practices, API keys, patients and their contact points."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from consentry.consent.categories import BUILTIN_CATEGORIES

from .models import ApiKey, Category, ContactKind, ContactPoint, Patient, PatientContact, Practice

LINE_TYPES = ("mobile", "landline", "voip", "unknown")


class InvalidInput(Exception):
    """Bad input, named by the field it came from. Nothing was written."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class NormalizedPhone:
    number: str  # E.164
    valid: bool


def normalize_phone(raw: str, *, region: str = "US", field: str = "number") -> NormalizedPhone:
    """E.164 for anything that can be a phone number; refuse what cannot.

    A number that has the shape of a phone number but is not assigned (the
    numbering plan says no such number exists) is kept and marked invalid, so
    the decision engine can report ``phone_invalid`` instead of dropping it.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "a phone number is required")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(field, f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(field, f"not a phone number: {raw!r}")
    return NormalizedPhone(
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.is_valid_number(parsed),
    )


def normalize_email(raw: str, *, field: str = "email") -> str:
    if not isinstance(raw, str):
        raise InvalidInput(field, "an email address is required")
    email = raw.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput(field, f"not an email address: {raw!r}") from exc
    return email


def normalize_address(raw: str, *, region: str = "US", field: str = "address") -> str:
    """A phone number or an email address, normalized."""
    if isinstance(raw, str) and "@" in raw:
        return normalize_email(raw, field=field)
    return normalize_phone(raw, region=region, field=field).number


def validate_timezone(name: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(field, f"unknown time zone {name!r}") from exc
    return name


# --- practices and keys ------------------------------------------------------


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is enough: there
    # is nothing to brute-force that a slow hash would protect.
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key(*, practice: Practice, label: str = "") -> str:
    key = "csk_" + secrets.token_urlsafe(32)
    ApiKey.objects.create(practice=practice, key_hash=hash_api_key(key), label=label)
    return key


def practice_for_api_key(key: str) -> Practice | None:
    row = (
        ApiKey.objects.select_related("practice")
        .filter(key_hash=hash_api_key(key), revoked_at__isnull=True)
        .first()
    )
    return row.practice if row else None


@transaction.atomic
def create_practice(
    *,
    name: str,
    texting_number: str,
    twilio_auth_token: str = "",
    twilio_account_sid: str = "",
    timezone: str = "America/New_York",
    region: str = "US",
    contact_phone: str = "",
    email_from: str = "",
) -> tuple[Practice, str]:
    """Create a practice with the built-in categories and one API key (returned once)."""
    if not name or not name.strip():
        raise InvalidInput("name", "a practice name is required")
    number = normalize_phone(texting_number, region=region, field="texting_number").number
    if Practice.objects.filter(texting_number=number).exists():
        raise InvalidInput("texting_number", f"{number} already belongs to a practice")
    practice = Practice.objects.create(
        name=name.strip(),
        texting_number=number,
        timezone=validate_timezone(timezone),
        region=region,
        contact_phone=normalize_phone(contact_phone, region=region, field="contact_phone").number
        if contact_phone
        else number,
        email_from=normalize_email(email_from, field="email_from") if email_from else "",
        twilio_account_sid=twilio_account_sid,
        # Every inbound webhook is signature-checked; a practice that has not
        # connected Twilio yet gets a random token that the sandbox signs with.
        twilio_auth_token=twilio_auth_token or secrets.token_hex(16),
    )
    Category.objects.bulk_create(
        Category(
            practice=practice,
            key=key,
            marketing=marketing,
            notification_channels=[str(c) for c in channels],
            patient_can_disable=can_disable,
        )
        for key, (marketing, channels, can_disable) in BUILTIN_CATEGORIES.items()
    )
    return practice, issue_api_key(practice=practice, label="initial")


# --- patients --------------------------------------------------------------


@dataclass(frozen=True)
class PhoneInput:
    number: str
    line_type: str = "unknown"


def _contact_point(practice: Practice, address: str, kind: str, **extra) -> ContactPoint:
    point, created = ContactPoint.objects.get_or_create(
        practice=practice, address=address, defaults={"kind": kind, **extra}
    )
    if not created and extra and any(getattr(point, k) != v for k, v in extra.items()):
        # The newest information about a shared number wins (e.g. a PMS sync
        # learning that a number is a landline).
        for k, v in extra.items():
            setattr(point, k, v)
        point.save(update_fields=list(extra))
    return point


@transaction.atomic
def create_patient(
    *,
    practice: Practice,
    first_name: str,
    last_name: str = "",
    phones: list[PhoneInput] = (),
    emails: list[str] = (),
    preferred_phone: str | None = None,
    do_not_contact: bool = False,
    marketing_consent: str = "unknown",
    timezone: str = "",
    external_id: str = "",
    language: str = "en",
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Create a patient, sharing contact points with other patients at the practice.

    Every input is validated before the first write, so a bad field changes nothing.
    """
    from consentry.consent import services as consent  # the ledger records patient-level consent

    if not first_name or not first_name.strip():
        raise InvalidInput("first_name", "a first name is required")
    normalized_phones = []
    for i, phone in enumerate(phones):
        if phone.line_type not in LINE_TYPES:
            raise InvalidInput(f"phones[{i}].line_type", f"must be one of {', '.join(LINE_TYPES)}")
        normalized_phones.append(
            (normalize_phone(phone.number, region=practice.region, field=f"phones[{i}].number"), phone.line_type)
        )
    normalized_emails = [normalize_email(e, field=f"emails[{i}]") for i, e in enumerate(emails)]
    preferred = None
    if preferred_phone:
        preferred = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        if preferred not in {p.number for p, _ in normalized_phones}:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
    if marketing_consent not in ("yes", "no", "unknown"):
        raise InvalidInput("marketing_consent", "must be yes, no or unknown")
    if timezone:
        validate_timezone(timezone)
    if external_id and Patient.objects.filter(practice=practice, external_id=external_id).exists():
        raise InvalidInput("external_id", f"a patient with external_id {external_id!r} already exists")

    patient = Patient.objects.create(
        practice=practice,
        first_name=first_name.strip(),
        last_name=(last_name or "").strip(),
        timezone=timezone,
        external_id=external_id,
        language=language,
    )
    links, position, seen = [], 0, set()
    preferred_point = None
    for phone, line_type in normalized_phones:
        point = _contact_point(practice, phone.number, ContactKind.PHONE, line_type=line_type, valid=phone.valid)
        if phone.number == preferred:
            preferred_point = point
        if point.pk not in seen:
            seen.add(point.pk)
            links.append(PatientContact(patient=patient, contact_point=point, position=position))
            position += 1
    for email in normalized_emails:
        point = _contact_point(practice, email, ContactKind.EMAIL)
        if point.pk not in seen:
            seen.add(point.pk)
            links.append(PatientContact(patient=patient, contact_point=point, position=position))
            position += 1
    PatientContact.objects.bulk_create(links)
    if preferred_point:
        patient.preferred_phone = preferred_point
        patient.save(update_fields=["preferred_phone"])
    consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    return patient
