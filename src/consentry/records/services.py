"""Patient records: create and update a patient and the addresses they share, consent flags included.

Above both ``patients`` (the records' models and address rules) and ``consent`` (the ledger that
records a patient's do-not-contact and marketing-consent flags), so neither imports the other's
services. The API, the CLI's demo and the staff app write patients through here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.db import transaction

from consentry.consent import services as consent
from consentry.errors import InvalidInput
from consentry.patients.addresses import (
    LINE_TYPES,
    NormalizedPhone,
    normalize_email,
    normalize_phone,
    validate_timezone,
)
from consentry.patients.categories import clean_notification_preferences
from consentry.patients.locations import location_of
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


def _clean_phones(practice: Practice, phones: Sequence[PhoneInput]) -> list[tuple[NormalizedPhone, str]]:
    cleaned = []
    for i, phone in enumerate(phones):
        if phone.line_type not in LINE_TYPES:
            raise InvalidInput(f"phones[{i}].line_type", f"must be one of {', '.join(LINE_TYPES)}")
        number = normalize_phone(phone.number, region=practice.region, field=f"phones[{i}].number")
        cleaned.append((number, phone.line_type))
    return cleaned


def _clean_emails(emails: Sequence[str]) -> list[str]:
    return [normalize_email(e, field=f"emails[{i}]") for i, e in enumerate(emails)]


def _points(practice: Practice, phones: list[tuple[NormalizedPhone, str]], emails: list[str]) -> list[ContactPoint]:
    """The contact points of these addresses, in order, once each (created when new)."""
    points: dict[int, ContactPoint] = {}
    for number, line_type in phones:
        point = _contact_point(
            practice,
            number.number,
            ContactKind.PHONE,
            line_type=line_type,
            valid=number.valid,
            timezone=number.timezone,
        )
        points.setdefault(point.pk, point)
    for email in emails:
        point = _contact_point(practice, email, ContactKind.EMAIL)
        points.setdefault(point.pk, point)
    return list(points.values())


def _link(patient: Patient, points: list[ContactPoint]) -> bool:
    """Make these exactly the patient's addresses, in this order; whether anything changed. An address
    taken off the patient keeps its contact point, and so its consent and ledger history (consent
    belongs to the address)."""
    wanted = [p.pk for p in points]
    removed, _ = PatientContact.objects.filter(patient=patient).exclude(contact_point_id__in=wanted).delete()
    changed = removed > 0
    existing = {link.contact_point_id: link for link in PatientContact.objects.filter(patient=patient)}
    for position, point_id in enumerate(wanted):
        link = existing.get(point_id)
        if link is None:
            PatientContact.objects.create(patient=patient, contact_point_id=point_id, position=position)
            changed = True
        elif link.position != position:
            link.position = position
            link.save(update_fields=["position"])
            changed = True
    return changed


def _clean_name(value: str, field: str, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(field, f"a {field.replace('_', ' ')} is required")
    if len(value) > 100:
        raise InvalidInput(field, "is at most 100 characters")
    return value


MAX_TAGS = 20
MAX_TAG_CHARS = 40


def _clean_language(value: str) -> str:
    """A language tag as BCP 47 writes the common ones: en, es, pt-BR, zh-Hant (kept in lower case)."""
    language = value.strip().lower() if isinstance(value, str) else ""
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})*", language) or len(language) > 16:
        raise InvalidInput("language", "must be a language tag such as en, es or pt-br")
    return language


def _clean_tags(tags: Sequence[str]) -> list[str]:
    """Labels for choosing audiences: trimmed, lower case, each once, in the order given."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise InvalidInput("tags", "must be a list of labels")
    cleaned = list(dict.fromkeys(" ".join(t.split()).lower() for t in tags if t.strip()))
    if len(cleaned) > MAX_TAGS:
        raise InvalidInput("tags", f"at most {MAX_TAGS} labels")
    for tag in cleaned:
        if len(tag) > MAX_TAG_CHARS or not tag.isprintable():
            raise InvalidInput("tags", f"a label is at most {MAX_TAG_CHARS} printable characters: {tag[:50]!r}")
    return cleaned


def _clean_marketing(value: str | None) -> None:
    if value is not None and value not in ("yes", "no", "unknown"):
        raise InvalidInput("marketing_consent", "must be yes, no or unknown")


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
    tags: Sequence[str] = (),
    last_visit_on: date | None = None,
    location_id: str | None = None,
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Create a patient, sharing contact points with other patients at the practice.

    Every input is validated before the first write, so a bad field changes nothing.
    """
    first_name = _clean_name(first_name, "first_name", required=True)
    last_name = _clean_name(last_name, "last_name", required=False)
    phone_list, email_list = _clean_phones(practice, phones), _clean_emails(emails)
    preferred = None
    if preferred_phone:
        preferred = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        if preferred not in {p.number for p, _ in phone_list}:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
    _clean_marketing(marketing_consent)
    tag_list = _clean_tags(tags)
    if timezone:
        validate_timezone(timezone)
    location = location_of(practice, location_id) if location_id is not None else None
    overrides, opt_outs = clean_notification_preferences(practice, notification_overrides or {}, channel_opt_outs)
    if external_id and Patient.objects.filter(practice=practice, external_id=external_id).exists():
        raise InvalidInput("external_id", f"a patient with external_id {external_id!r} already exists")

    patient = Patient.objects.create(
        practice=practice,
        first_name=first_name,
        last_name=last_name,
        timezone=timezone,
        external_id=external_id,
        language=_clean_language(language),
        tags=tag_list,
        last_visit_on=last_visit_on,
        location=location,
    )
    points = _points(practice, phone_list, email_list)
    PatientContact.objects.bulk_create(
        PatientContact(patient=patient, contact_point=point, position=i) for i, point in enumerate(points)
    )
    if preferred:
        patient.preferred_phone = next(p for p in points if p.address == preferred)
        patient.save(update_fields=["preferred_phone"])
    consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    if overrides or opt_outs:  # a ledger event, as the flags above are (a new patient has none)
        consent.set_notification_preferences(
            patient=patient, overrides=overrides, channel_opt_outs=opt_outs, source=source, actor=actor
        )
    return patient


@transaction.atomic
def update_patient(  # noqa: C901 (one optional change after another, each checked before any write)
    *,
    patient: Patient,
    first_name: str | None = None,
    last_name: str | None = None,
    phones: Sequence[PhoneInput] | None = None,
    emails: Sequence[str] | None = None,
    preferred_phone: str | None = None,
    clear_preferred_phone: bool = False,
    do_not_contact: bool | None = None,
    marketing_consent: str | None = None,
    notification_overrides: dict | None = None,
    channel_opt_outs: list[str] | None = None,
    tags: Sequence[str] | None = None,
    last_visit_on: date | None = None,
    clear_last_visit: bool = False,
    location_id: str | None = None,
    clear_location: bool = False,
    language: str | None = None,
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Change a patient; only what is given, and differs, changes (so a sync that sends the patient as
    they are changes nothing, not even ``updated_at``). A ``phones`` or ``emails`` list replaces that
    list (an address taken off keeps its consent and ledger history). Consent flags go through the
    ledger. All-or-nothing: every input is checked before the first write."""
    practice = patient.practice
    fields: list[str] = []

    def change(field: str, value) -> None:
        if getattr(patient, field) != value:
            setattr(patient, field, value)
            fields.append(field)

    if first_name is not None:
        change("first_name", _clean_name(first_name, "first_name", required=True))
    if last_name is not None:
        change("last_name", _clean_name(last_name, "last_name", required=False))
    if language is not None:
        change("language", _clean_language(language))
    if tags is not None:
        change("tags", _clean_tags(tags))
    if last_visit_on is not None or clear_last_visit:
        change("last_visit_on", last_visit_on)
    if location_id is not None or clear_location:
        change("location", location_of(practice, location_id) if location_id is not None else None)
    phone_list = _clean_phones(practice, phones) if phones is not None else None
    email_list = _clean_emails(emails) if emails is not None else None
    replacing = phone_list is not None or email_list is not None
    current = (
        [link.contact_point for link in patient.contacts.select_related("contact_point").order_by("position")]
        if replacing
        else []
    )
    phone_numbers = (
        {n.number for n, _ in phone_list}
        if phone_list is not None
        else set(patient.contact_points.filter(kind=ContactKind.PHONE).values_list("address", flat=True))
    )
    if preferred_phone is not None:
        number = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        if number not in phone_numbers:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
    _clean_marketing(marketing_consent)
    preferences = None
    if notification_overrides is not None or channel_opt_outs is not None:
        preferences = clean_notification_preferences(
            practice,
            patient.notification_overrides if notification_overrides is None else notification_overrides,
            patient.channel_opt_outs if channel_opt_outs is None else channel_opt_outs,
        )

    if replacing:
        kept: dict[str, list[ContactPoint]] = {ContactKind.PHONE: [], ContactKind.EMAIL: []}  # the other list stays
        for point in current:
            kept[point.kind].append(point)
        phone_points = _points(practice, phone_list, []) if phone_list is not None else kept[ContactKind.PHONE]
        email_points = _points(practice, [], email_list) if email_list is not None else kept[ContactKind.EMAIL]
        if _link(patient, phone_points + email_points):
            fields.append("updated_at")  # the patient's addresses changed
    if preferred_phone is not None:
        change("preferred_phone", ContactPoint.objects.get(practice=practice, address=number))
    elif clear_preferred_phone or (
        patient.preferred_phone is not None and patient.preferred_phone.address not in phone_numbers
    ):
        change("preferred_phone", None)  # no longer one of the patient's phones
    if fields:
        patient.save(update_fields=list(dict.fromkeys([*fields, "updated_at"])))
    if marketing_consent is not None:
        consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    if do_not_contact is not None:
        consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    if preferences is not None:  # a ledger event, as the flags above are
        consent.set_notification_preferences(
            patient=patient, overrides=preferences[0], channel_opt_outs=preferences[1], source=source, actor=actor
        )
    return patient


@transaction.atomic
def delete_patient(patient: Patient) -> None:
    """Delete a patient. Their addresses stay, with their consent and ledger history: consent belongs
    to the address (a family's shared phone, a number that texted STOP), not to the patient. Their
    deliveries stay in the history without them."""
    patient.delete()
