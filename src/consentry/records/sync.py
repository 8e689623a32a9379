"""What a sync from the practice's EHR/PMS may change, and what it keeps.

A sync (the API's PUT by external id and PATCH) never undoes a person's own choice: an SMS opt-out,
an email unsubscribe or a bounce stays with its address, a block stays on the practice's list, and
notification choices the patient made in their portal are not turned back on. And when the practice
keeps contact preferences in Consentry (``contact_preferences_source: consentry``), a sync does not
overwrite the preferred phone, do-not-contact or marketing consent that staff set.

Each thing kept is reported (``Kept``): the answer says which fields were kept and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from django.db import IntegrityError, transaction

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent, Source, Subject
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_email, normalize_phone
from consentry.patients.models import Patient, Practice
from consentry.records.services import PhoneInput, create_patient, update_patient


class KeptReason(StrEnum):
    """Why a sync's input was not applied as sent."""

    CONSENTRY_KEEPS_CONTACT_PREFERENCES = "consentry_keeps_contact_preferences"
    PATIENT_CHOICE = "patient_choice"  # turned off in the patient's portal
    SMS_OPTED_OUT = "sms_opted_out"
    EMAIL_UNSUBSCRIBED = "email_unsubscribed"
    EMAIL_BOUNCED = "email_bounced"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Kept:
    field: str  # the input that was not applied as sent: do_not_contact, phones[0], notification_overrides
    reason: KeptReason
    message: str


@dataclass(frozen=True)
class SyncChanges:
    """A patient change as a sync sent it: ``None`` is "not sent"."""

    preferred_phone: str | None = None
    clear_preferred_phone: bool = False
    do_not_contact: bool | None = None
    marketing_consent: str | None = None
    notification_overrides: dict | None = None
    channel_opt_outs: list[str] | None = None


OWNED = KeptReason.CONSENTRY_KEEPS_CONTACT_PREFERENCES
OWNED_MESSAGE = (
    "this practice keeps preferred phone, do-not-contact and marketing consent in Consentry "
    "(contact_preferences_source: consentry): staff change them there"
)


@dataclass(frozen=True)
class PatientRecord:
    """A patient as a sync sends them (the API's body, a FHIR Patient, a row of a file). ``None`` is
    "not sent": an update leaves that field as it is, a create takes the default."""

    first_name: str | None = None
    last_name: str | None = None
    phones: Sequence[PhoneInput] | None = None
    emails: Sequence[str] | None = None
    preferred_phone: str | None = None
    clear_preferred_phone: bool = False
    do_not_contact: bool | None = None
    marketing_consent: str | None = None
    timezone: str | None = None
    language: str | None = None
    notification_overrides: dict | None = None
    channel_opt_outs: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    last_visit_on: date | None = None
    clear_last_visit: bool = False
    location_id: str | None = None  # one of the practice's locations
    clear_location: bool = False


@dataclass
class Synced:
    patient: Patient
    created: bool
    kept: list[Kept] = field(default_factory=list)


def sync_patient(practice: Practice, external_id: str, record: PatientRecord, *, source: str, actor: str) -> Synced:
    """Create the practice's patient with this external id, or update the one that has it, by the
    sync rules (``held_back``): the one idempotent step of every sync."""
    if not external_id.strip() or len(external_id) > 128:
        raise InvalidInput("external_id", "must be 1 to 128 characters")
    existing = Patient.objects.filter(practice=practice, external_id=external_id).first()
    if existing is None:
        try:
            with transaction.atomic():  # a savepoint: a lost race leaves the outer transaction usable
                return create_from(practice, record, external_id=external_id, source=source, actor=actor)
        except IntegrityError:
            # Another sync created this external id between the look and the insert: update that one.
            existing = Patient.objects.filter(practice=practice, external_id=external_id).first()
            if existing is None:
                raise
    return update_from(existing, record, source=source, actor=actor)


def create_from(practice: Practice, record: PatientRecord, *, external_id: str, source: str, actor: str) -> Synced:
    """A new patient from a sync's record; what their addresses keep (an opt-out, a block) is reported."""
    patient = create_patient(
        practice=practice,
        first_name=record.first_name or "",
        last_name=record.last_name or "",
        phones=record.phones or (),
        emails=record.emails or (),
        preferred_phone=record.preferred_phone,
        do_not_contact=bool(record.do_not_contact),
        marketing_consent=record.marketing_consent or "unknown",
        timezone=record.timezone or "",
        external_id=external_id,
        language=record.language or "en",
        notification_overrides=record.notification_overrides,
        channel_opt_outs=record.channel_opt_outs or (),
        tags=record.tags or (),
        last_visit_on=record.last_visit_on,
        location_id=record.location_id,
        source=source,
        actor=actor,
    )
    return Synced(patient, True, _address_notes_of(practice, record))


def update_from(patient: Patient, record: PatientRecord, *, source: str, actor: str) -> Synced:
    """Apply a sync's record to a patient, keeping what the sync rules keep, and say what was kept."""
    phones = None if record.phones is None else [p.number for p in record.phones]
    changes, kept = held_back(
        patient,
        SyncChanges(
            preferred_phone=record.preferred_phone,
            clear_preferred_phone=record.clear_preferred_phone,
            do_not_contact=record.do_not_contact,
            marketing_consent=record.marketing_consent,
            notification_overrides=record.notification_overrides,
            channel_opt_outs=None if record.channel_opt_outs is None else list(record.channel_opt_outs),
        ),
        phones=phones,
    )
    kept += _address_notes_of(patient.practice, record)
    patient = update_patient(
        patient=patient,
        first_name=record.first_name,
        last_name=record.last_name,
        phones=record.phones,
        emails=record.emails,
        preferred_phone=changes.preferred_phone,
        clear_preferred_phone=changes.clear_preferred_phone,
        do_not_contact=changes.do_not_contact,
        marketing_consent=changes.marketing_consent,
        notification_overrides=changes.notification_overrides,
        channel_opt_outs=changes.channel_opt_outs,
        tags=record.tags,
        last_visit_on=record.last_visit_on,
        clear_last_visit=record.clear_last_visit,
        language=record.language,
        location_id=record.location_id,
        clear_location=record.clear_location,
        source=source,
        actor=actor,
    )
    return Synced(patient, False, kept)


def _address_notes_of(practice: Practice, record: PatientRecord) -> list[Kept]:
    return address_notes(practice, [p.number for p in record.phones or ()], list(record.emails or ()))


def held_back(
    patient: Patient, sent: SyncChanges, *, phones: Sequence[str] | None = None
) -> tuple[SyncChanges, list[Kept]]:
    """The part of a sync's change that applies to this patient, and what it keeps, with why.
    ``phones``: the patient's phones as the same change sends them (``None``: unchanged)."""
    kept: list[Kept] = []
    practice = patient.practice
    if practice.contact_preferences_source == "consentry":
        sent, kept = _owned_by_consentry(patient, sent, phones)
    if _last_notification_source(patient) == Source.PORTAL:
        sent, more = _patient_choices_stay(patient, sent)
        kept += more
    return sent, kept


def _owned_by_consentry(
    patient: Patient, sent: SyncChanges, sent_phones: Sequence[str] | None
) -> tuple[SyncChanges, list[Kept]]:
    kept: list[Kept] = []
    if sent.do_not_contact is not None and sent.do_not_contact != patient.do_not_contact:
        kept.append(Kept("do_not_contact", OWNED, OWNED_MESSAGE))
    if sent.marketing_consent is not None and sent.marketing_consent != patient.marketing_consent:
        kept.append(Kept("marketing_consent", OWNED, OWNED_MESSAGE))
    current = patient.preferred_phone.address if patient.preferred_phone else None
    hold_phone = False
    if sent.preferred_phone is not None:
        try:
            wanted = normalize_phone(sent.preferred_phone, region=patient.practice.region).number
        except InvalidInput:
            wanted = None  # not a phone: the update refuses it, naming the field
        phones = set(patient.contact_points.values_list("address", flat=True))
        if sent_phones is not None:  # the same change replaces the phones: the new list counts too
            phones |= {n for n in (_normal(_phone_of(patient.practice), p) for p in sent_phones) if n}
        hold_phone = wanted is not None and wanted in phones and wanted != current
    elif sent.clear_preferred_phone:
        hold_phone = current is not None
    if hold_phone:
        kept.append(Kept("preferred_phone", OWNED, OWNED_MESSAGE))
        sent = replace(sent, preferred_phone=None, clear_preferred_phone=False)
    if any(k.field in ("do_not_contact", "marketing_consent") for k in kept):
        sent = replace(sent, do_not_contact=None, marketing_consent=None)
    return sent, kept


def _last_notification_source(patient: Patient) -> str | None:
    return (
        ConsentEvent.objects.filter(
            practice_id=patient.practice_id, subject=Subject.NOTIFICATIONS, address=ledger.patient_subject(patient.pk)
        )
        .order_by("-seq")
        .values_list("source", flat=True)
        .first()
    )


PATIENT_CHOICE = "the patient turned this off in their portal; only they can turn it back on"


def _patient_choices_stay(patient: Patient, sent: SyncChanges) -> tuple[SyncChanges, list[Kept]]:
    """What the patient turned off in their portal stays off, whatever the sync sends."""
    kept = []
    overrides = sent.notification_overrides
    if overrides is not None:
        merged = {key: dict(channels) for key, channels in overrides.items() if isinstance(channels, dict)}
        for key, channels in (patient.notification_overrides or {}).items():
            for channel, on in channels.items():
                if on is False and merged.get(key, {}).get(channel) is not False:
                    merged.setdefault(key, {})[channel] = False
        if merged != overrides:
            kept.append(Kept("notification_overrides", KeptReason.PATIENT_CHOICE, PATIENT_CHOICE))
            overrides = merged
    opt_outs = sent.channel_opt_outs
    if opt_outs is not None:
        merged_outs = list(dict.fromkeys([*opt_outs, *(patient.channel_opt_outs or [])]))
        if merged_outs != list(opt_outs):
            kept.append(Kept("channel_opt_outs", KeptReason.PATIENT_CHOICE, PATIENT_CHOICE))
            opt_outs = merged_outs
    return replace(sent, notification_overrides=overrides, channel_opt_outs=opt_outs), kept


ADDRESS_KEPT = {
    KeptReason.SMS_OPTED_OUT: "this number opted out of texts, and stays opted out: only the person can opt back in",
    KeptReason.EMAIL_UNSUBSCRIBED: "this address unsubscribed, and stays unsubscribed: only the person can opt back in",
    KeptReason.EMAIL_BOUNCED: "email to this address bounced; it stays marked until the address is corrected",
    KeptReason.BLOCKED: "this number is on the practice's Blocked Communications list, and stays there",
}


def address_notes(practice: Practice, phones: list[str], emails: list[str]) -> list[Kept]:
    """For each address a sync sent, the person's choice (or the practice's block) that stays with it."""
    numbers = [_normal(_phone_of(practice), p) for p in phones]
    addresses = [_normal(normalize_email, e) for e in emails]
    state = ledger.consent_state(practice.pk, [a for a in numbers + addresses if a])
    notes = []
    for i, number in enumerate(numbers):
        if number in state.sms_opted_out:
            notes.append(_address_kept(f"phones[{i}]", KeptReason.SMS_OPTED_OUT))
        if number in state.blocks:
            notes.append(_address_kept(f"phones[{i}]", KeptReason.BLOCKED))
    for i, address in enumerate(addresses):
        if address in state.email_unsubscribed:
            notes.append(_address_kept(f"emails[{i}]", KeptReason.EMAIL_UNSUBSCRIBED))
        if address in state.email_bounced:
            notes.append(_address_kept(f"emails[{i}]", KeptReason.EMAIL_BOUNCED))
    return notes


def _address_kept(field: str, reason: KeptReason) -> Kept:
    return Kept(field, reason, ADDRESS_KEPT[reason])


def _phone_of(practice: Practice):
    return lambda value: normalize_phone(value, region=practice.region).number


def _normal(normalize, value: str) -> str | None:
    try:
        return normalize(value)
    except InvalidInput:  # a bad address is refused by the update itself, naming its field
        return None
