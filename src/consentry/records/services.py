"""Patient records: create and update a patient and the addresses they share, consent flags included.

Above both ``patients`` (the records' models and address rules) and ``consent`` (the ledger that
records a patient's do-not-contact and marketing-consent flags), so neither imports the other's
services. The API, the CLI's demo and the staff app write patients through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from consentry.consent import services as consent
from consentry.errors import InvalidInput
from consentry.patients.addresses import LINE_TYPES, normalize_email, normalize_phone, validate_timezone
from consentry.patients.categories import clean_notification_preferences
from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact, Practice


@dataclass(frozen=True)
class PhoneInput:
    number: str
    line_type: str = "unknown"


def _contact_point(practice: Practice, address: str, kind: str, **extra) -> ContactPoint:
    point, created = ContactPoint.objects.get_or_create(
        practice=practice, address=address, defaults={"kind": kind, **extra}
    )
    if not created and extra.get("line_type", "unknown") not in ("unknown", point.line_type):
        # The newest known line type of a shared number wins (e.g. a PMS sync
        # learning that a number is a landline); "unknown" never erases it.
        point.line_type = extra["line_type"]
        point.save(update_fields=["line_type"])
    return point


@transaction.atomic
def create_patient(
    *,
    practice: Practice,
    first_name: str,
    last_name: str = "",
    phones: Sequence[PhoneInput] = (),
    emails: Sequence[str] = (),
    preferred_phone: str | None = None,
    do_not_contact: bool = False,
    marketing_consent: str = "unknown",
    timezone: str = "",
    external_id: str = "",
    language: str = "en",
    notification_overrides: dict | None = None,
    channel_opt_outs: Sequence[str] = (),
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Create a patient, sharing contact points with other patients at the practice.

    Every input is validated before the first write, so a bad field changes nothing.
    """
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
    overrides, opt_outs = clean_notification_preferences(practice, notification_overrides or {}, channel_opt_outs)
    if external_id and Patient.objects.filter(practice=practice, external_id=external_id).exists():
        raise InvalidInput("external_id", f"a patient with external_id {external_id!r} already exists")

    patient = Patient.objects.create(
        practice=practice,
        first_name=first_name.strip(),
        last_name=(last_name or "").strip(),
        timezone=timezone,
        external_id=external_id,
        language=language,
        notification_overrides=overrides,
        channel_opt_outs=opt_outs,
    )
    links, position, seen = [], 0, set()
    preferred_point = None
    for number, line_type in normalized_phones:
        point = _contact_point(
            practice,
            number.number,
            ContactKind.PHONE,
            line_type=line_type,
            valid=number.valid,
            timezone=number.timezone,
        )
        if number.number == preferred:
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


@transaction.atomic
def update_patient(
    *,
    patient: Patient,
    preferred_phone: str | None = None,
    clear_preferred_phone: bool = False,
    do_not_contact: bool | None = None,
    marketing_consent: str | None = None,
    notification_overrides: dict | None = None,
    channel_opt_outs: list[str] | None = None,
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Change a patient's preferences; consent flags go through the ledger. All-or-nothing."""
    practice = patient.practice
    fields = []
    if preferred_phone is not None:
        number = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        point = patient.contact_points.filter(address=number, kind=ContactKind.PHONE).first()
        if point is None:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
        patient.preferred_phone = point
        fields.append("preferred_phone")
    elif clear_preferred_phone:
        patient.preferred_phone = None
        fields.append("preferred_phone")
    if marketing_consent is not None and marketing_consent not in ("yes", "no", "unknown"):
        raise InvalidInput("marketing_consent", "must be yes, no or unknown")
    if notification_overrides is not None or channel_opt_outs is not None:
        overrides, opt_outs = clean_notification_preferences(
            practice,
            patient.notification_overrides if notification_overrides is None else notification_overrides,
            patient.channel_opt_outs if channel_opt_outs is None else channel_opt_outs,
        )
        patient.notification_overrides, patient.channel_opt_outs = overrides, opt_outs
        fields += ["notification_overrides", "channel_opt_outs"]
    if fields:
        patient.save(update_fields=fields)
    if marketing_consent is not None:
        consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    if do_not_contact is not None:
        consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    return patient
