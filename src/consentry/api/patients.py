"""Patients: create, read, update (their phones, emails and consent flags go through the services)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime

from ninja import Field, Query, Router, Schema, Status

from consentry.api.auth import actor_of, owned_or_404, practice_of
from consentry.api.schemas import In, as_utc
from consentry.consent.models import Source
from consentry.errors import InvalidInput
from consentry.patients.models import ContactKind, Patient
from consentry.records.selectors import list_patients
from consentry.records.services import PhoneInput, delete_patient
from consentry.records.sync import Kept, KeptReason, PatientRecord, create_from, sync_patient, update_from
from consentry.vocabulary import LineType, MarketingConsent

router = Router(tags=["patients"])


class PhoneIn(In):
    number: str = Field(max_length=40)
    line_type: LineType = LineType.UNKNOWN


class PatientIn(In):
    first_name: str = Field(max_length=100)
    last_name: str = Field("", max_length=100)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    emails: list[str] = Field(default_factory=list, max_length=20)
    preferred_phone: str | None = Field(None, max_length=40)
    do_not_contact: bool = False
    marketing_consent: MarketingConsent = MarketingConsent.UNKNOWN
    timezone: str = Field("", max_length=64)
    external_id: str = Field("", max_length=128)
    language: str = Field("en", max_length=16)
    notification_overrides: dict[str, dict[str, bool]] = Field(default_factory=dict)
    channel_opt_outs: list[str] = Field(default_factory=list, max_length=4)
    tags: list[str] = Field(default_factory=list, max_length=20, description="Labels for choosing audiences")
    last_visit_on: date | None = None
    location_id: str | None = Field(
        None, max_length=36, description="The practice's location the patient belongs to: texts go from its number"
    )


class PatientPatch(In):
    """Only the fields sent change. ``preferred_phone: null`` clears the preference. A ``phones`` or
    ``emails`` list replaces the patient's (an address taken off keeps its consent and history)."""

    model_config = {"extra": "forbid"}
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    phones: list[PhoneIn] | None = Field(None, max_length=20)
    emails: list[str] | None = Field(None, max_length=20)
    preferred_phone: str | None = Field(None, max_length=40)
    do_not_contact: bool | None = None
    marketing_consent: MarketingConsent | None = None
    notification_overrides: dict[str, dict[str, bool]] | None = None
    channel_opt_outs: list[str] | None = Field(None, max_length=4)
    tags: list[str] | None = Field(None, max_length=20)
    last_visit_on: date | None = None
    location_id: str | None = Field(None, max_length=36, description="null: no location")


class PhoneOut(Schema):
    number: str
    line_type: LineType
    valid: bool


class KeptOut(Schema):
    field: str = Field(description="The input not applied as sent: a field, or an address as phones[0] or emails[1]")
    reason: KeptReason
    message: str


class PatientOut(Schema):
    id: str
    updated_at: str
    first_name: str
    last_name: str
    phones: list[PhoneOut]
    emails: list[str]
    preferred_phone: str | None
    do_not_contact: bool
    marketing_consent: MarketingConsent
    timezone: str
    external_id: str
    language: str = Field(description="The language of texts and keyword replies, e.g. en or es")
    notification_overrides: dict[str, dict[str, bool]]
    channel_opt_outs: list[str]
    tags: list[str]
    last_visit_on: date | None
    location_id: str | None
    kept: list[KeptOut] = Field(
        default_factory=list,
        description="What this request sent that was not applied, and why: a person's own choice "
        "(an opt-out, an unsubscribe, a portal setting) or a block stays; preferences Consentry keeps "
        "for this practice (contact_preferences_source) are not overwritten.",
    )


def _patient_out(patient: Patient, kept: Sequence[Kept] = ()) -> dict:
    patient.refresh_from_db(fields=["updated_at"])  # the ledger's projection of a flag moves it too
    points = [link.contact_point for link in patient.contacts.select_related("contact_point")]
    return {
        "id": str(patient.pk),
        "updated_at": patient.updated_at.isoformat(),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phones": [
            {"number": p.address, "line_type": p.line_type, "valid": p.valid}
            for p in points
            if p.kind == ContactKind.PHONE
        ],
        "emails": [p.address for p in points if p.kind == ContactKind.EMAIL],
        "preferred_phone": patient.preferred_phone.address if patient.preferred_phone else None,
        "do_not_contact": patient.do_not_contact,
        "marketing_consent": patient.marketing_consent,
        "timezone": patient.timezone,
        "external_id": patient.external_id,
        "language": patient.language,
        "notification_overrides": patient.notification_overrides,
        "channel_opt_outs": patient.channel_opt_outs,
        "tags": patient.tags,
        "last_visit_on": patient.last_visit_on,
        "location_id": str(patient.location_id) if patient.location_id else None,
        "kept": [asdict(k) for k in kept],
    }


@router.post("", response={201: PatientOut})
def patients_create(request, payload: PatientIn):
    record = _record(payload, payload.model_fields_set | {"first_name"})
    synced = create_from(
        practice_of(request), record, external_id=payload.external_id, source=Source.API, actor=actor_of(request)
    )
    return Status(201, _patient_out(synced.patient, synced.kept))


# The fields of a body that become a patient record as they are (the rest are read apart).
_AS_SENT = (
    "first_name",
    "last_name",
    "preferred_phone",
    "do_not_contact",
    "marketing_consent",
    "timezone",
    "language",
    "notification_overrides",
    "channel_opt_outs",
    "tags",
    "last_visit_on",
)


def _record(payload: PatientIn | PatientPatch, sent: set[str]) -> PatientRecord:
    """A body as a patient record: a field not sent is ``None`` ("leave it as it is")."""
    values = {name: getattr(payload, name) for name in _AS_SENT if name in sent and hasattr(payload, name)}
    return PatientRecord(
        **values,
        phones=[PhoneInput(p.number, p.line_type) for p in payload.phones]
        if payload.phones is not None and "phones" in sent
        else None,
        emails=payload.emails if "emails" in sent else None,
        clear_preferred_phone="preferred_phone" in sent and payload.preferred_phone is None,
        clear_last_visit="last_visit_on" in sent and payload.last_visit_on is None,
        location_id=payload.location_id if "location_id" in sent else None,
        clear_location="location_id" in sent and payload.location_id is None,
    )


class PatientPage(Schema):
    patients: list[PatientOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last")


@router.get("", response=PatientPage)
def patients_list(
    request,
    q: str = Query("", max_length=200, description="Name words, a phone in any format, an email or an external id"),
    updated_since: datetime | None = Query(None, description="Only patients changed at or after this instant"),
    cursor: str = Query("", max_length=100),
    limit: int = Query(50, ge=1, le=500),
):
    """The practice's patients, a page at a time, in a stable order."""
    since = as_utc(updated_since, "updated_since")
    page = list_patients(practice_of(request), q=q, updated_since=since, cursor=cursor, limit=limit)
    return {"patients": [_patient_out(p) for p in page.patients], "next_cursor": page.next_cursor}


@router.put("/by-external-id/{external_id}", response={200: PatientOut, 201: PatientOut})
def patients_upsert(request, external_id: str, payload: PatientIn):
    """Create the patient with this external id, or update the one that has it: one idempotent call
    for a sync. The body is the patient as the EHR/PMS has them; ``external_id`` in it, if sent, must
    be the one in the path. A field left out of the body stays as it is on an existing patient."""
    if payload.external_id and payload.external_id != external_id:
        raise InvalidInput("external_id", "must be the external id of the path")
    record = _record(payload, payload.model_fields_set | {"first_name"})
    synced = sync_patient(practice_of(request), external_id, record, source=Source.API, actor=actor_of(request))
    return Status(201 if synced.created else 200, _patient_out(synced.patient, synced.kept))


@router.delete("/{patient_id}", response={204: None})
def patients_delete(request, patient_id: str):
    """Delete a patient. Consent stays with their addresses, and the ledger keeps its history."""
    delete_patient(_get_patient(request, patient_id))
    return Status(204, None)


@router.get("/{patient_id}", response=PatientOut)
def patients_get(request, patient_id: str):
    return _patient_out(_get_patient(request, patient_id))


@router.patch("/{patient_id}", response=PatientOut)
def patients_update(request, patient_id: str, payload: PatientPatch):
    patient = _get_patient(request, patient_id)
    synced = update_from(
        patient, _record(payload, payload.model_fields_set), source=Source.API, actor=actor_of(request)
    )
    return _patient_out(synced.patient, synced.kept)


def _get_patient(request, patient_id: str) -> Patient:
    return owned_or_404(Patient, request, patient_id)
