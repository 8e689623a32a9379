"""FHIR R4 both ways: a Patient (alone or in a transaction Bundle) becomes a sync of the patient, and a
patient, their addresses' consent and their deliveries become Patient, Consent and Communication.

Every resource is read and written with ``fhir.resources``' R4 models (its ``R4B`` package: the
resources used here are the same in R4 and R4B). What is read, what is written and why, field by
field, is docs/fhir.md.

Reading goes through ``sync.sync_patient()``, so a FHIR import obeys every sync rule: an opt-out,
an unsubscribe or a block stays with its address, and preferences Consentry keeps are not
overwritten. What was not applied as sent, and what Consentry does not store, comes back as
information issues of an OperationOutcome.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

import pydantic
from django.db import transaction
from django.db.models import Max
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from consentry import text
from consentry.consent import ledger
from consentry.consent.models import ConsentEvent, Source, Subject
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_email, normalize_phone
from consentry.patients.models import ContactKind, ContactPoint, Patient, Practice
from consentry.records.services import PhoneInput
from consentry.records.sync import PatientRecord, Synced, sync_patient
from consentry.vocabulary import Channel, LineType, Status

# Consentry's own code systems (channels, consent states, reasons...): one prefix, documented in docs/fhir.md.
SYSTEM = "urn:consentry:fhir"
MR = "MR"  # v2-0203: the medical record number, the identifier an EHR keys its patients by
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
BCP47 = "urn:ietf:bcp:47"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
# Stable ids for resources Consentry has no FHIR read of (a Consent, a Communication): fullUrl urn:uuid:...
_IDS = uuid.UUID("6f0d4c1e-2f6b-5d1a-9a57-3c1f8e0b7a42")

MAX_ENTRIES = 100  # one transaction: on SQLite, every other write waits for it (about 2 s for 100)
MAX_TEXT = 100  # a name's length, as the patient record keeps it
MAX_LANGUAGE = 16
TELECOM_SYSTEMS = ("phone", "fax", "email", "pager", "url", "sms", "other")
# Patient elements read (the others are reported as not stored); id and meta are the sender's, never kept.
READ = {"resourceType", "id", "meta", "text", "identifier", "name", "telecom", "communication"}


class InvalidFhir(InvalidInput):
    """A resource that is not valid FHIR R4, or not one Consentry can import: every problem, each with its element
    (``telecom[0].value``, ``entry[3].resource.birthDate``). Nothing was written."""

    def __init__(self, problems: Sequence[tuple[str, str]]):
        super().__init__(*problems[0])
        self.problems = list(problems)


@dataclass(frozen=True)
class Issue:
    """Something the import did not apply as sent, and why: an OperationOutcome issue of severity information."""

    expression: str  # where, as FHIRPath from the resource: "Patient.telecom[1]"
    reason: str  # Consentry's code: sms_opted_out, not_stored, not_current...
    message: str
    code: str = "informational"  # the issue type: informational, or business-rule for what a sync rule kept


# --- reading -------------------------------------------------------------------------------------------------------


def _where(loc: Iterable[Any], at: str) -> str:
    path = at
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = "resourceType" if part == "resource_type" else str(part)
            path += f".{name}" if path else name
    return path or "body"


def _checked(model: Any, data: Any, at: str) -> Any:
    """``data`` as this R4 model, or every problem named by its element."""
    if not isinstance(data, dict):
        raise InvalidFhir([(at or "body", "must be a JSON object (a FHIR resource)")])
    expected = model.__name__
    if data.get("resourceType") != expected:
        raise InvalidFhir([(_where(["resourceType"], at), f"must be {expected}")])
    if found := text.first_problem(data):
        where, why = found
        raise InvalidFhir([(f"{at}.{where}" if at else where, why)])
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [(_where(e.get("loc", ()), at), str(e.get("msg", "invalid"))) for e in exc.errors()]
        raise InvalidFhir(problems or [(at or "body", "is not valid FHIR R4")]) from None
    except LookupError:  # fhir.resources finds no model for a resourceType inside (an entry's, a contained one)
        raise InvalidFhir([(at or "body", "holds a resource of an unknown resourceType")]) from None
    except (ValueError, TypeError, AttributeError) as exc:  # a model's own validators, outside pydantic's errors
        raise InvalidFhir([(at or "body", f"is not valid FHIR R4: {exc}")]) from None


def _ended(end: Any, now: datetime) -> bool:
    """Whether a Period's end (a year, a year-month, a date or an instant) is past."""
    if end is None:
        return False
    if isinstance(end, datetime):
        return (end if end.tzinfo else end.replace(tzinfo=UTC)) <= now
    if isinstance(end, date):
        return end < now.date()
    parts = [int(p) for p in str(end).split("-")[:2] if p.isdigit()]
    if len(parts) == 1:
        return date(parts[0] + 1, 1, 1) <= now.date()
    if len(parts) == 2:
        year, month = (parts[0], parts[1] + 1) if parts[1] < 12 else (parts[0] + 1, 1)
        return date(year, month, 1) <= now.date()
    return False


def _not_begun(start: Any, now: datetime) -> bool:
    if start is None:
        return False
    if isinstance(start, datetime):
        return (start if start.tzinfo else start.replace(tzinfo=UTC)) > now
    if isinstance(start, date):
        return start > now.date()
    digits = str(start).split("-")[0]
    return digits.isdigit() and int(digits) > now.year


def _current(element: Any, now: datetime) -> bool:
    period = getattr(element, "period", None)
    if getattr(element, "use", None) == "old":
        return False
    return period is None or not (_ended(period.end, now) or _not_begun(period.start, now))


def _is_mr(identifier: Any) -> bool:
    codings = identifier.type.coding if identifier.type and identifier.type.coding else []
    return any(c.code == MR and c.system in (None, V2_0203) for c in codings)


def pick_identifier(resource: FhirPatient, now: datetime) -> tuple[int, Any]:
    """The identifier Consentry keys the patient by (its external id), and its position.

    Among the identifiers that have a value and are current (not ``use: old``, no period ended): the
    first of type MR (the medical record number), else the first ``use: usual``, else the first
    ``use: official``, else the first. None: a 422, since a sync without a key could not find the
    patient again.
    """
    candidates = [
        (i, ident)
        for i, ident in enumerate(resource.identifier or [])
        if ident.value and ident.value.strip() and _current(ident, now)
    ]
    if not candidates:
        raise InvalidFhir(
            [("identifier", "a Patient needs a current identifier with a value (its id in your EHR, e.g. its MRN)")]
        )
    for test in (_is_mr, lambda i: i.use == "usual", lambda i: i.use == "official", lambda i: True):
        for position, ident in candidates:
            if test(ident):
                return position, ident
    raise AssertionError("unreachable: the last test takes any identifier")


@dataclass
class PatientIn:
    """A FHIR Patient as a sync's record, with where each field of the record came from."""

    external_id: str
    identifier_system: str | None
    record: PatientRecord
    issues: list[Issue]
    paths: dict[str, str] = field(default_factory=dict)  # record field ("phones[1]") -> element ("telecom[3]")

    def element(self, record_field: str) -> str:
        """The element a field of the record (or of a sync's answer: ``phones[0].number``) came from."""
        for key in (record_field, record_field.split(".")[0], record_field.split("[")[0]):
            if key in self.paths:
                return self.paths[key]
        return record_field


def _names(resource: FhirPatient, now: datetime) -> tuple[str, str, dict[str, str]]:
    """(first name, last name, their elements): the given name of the first current name of use usual, else
    official, else any; the family name likewise, official first."""
    names = [(i, n) for i, n in enumerate(resource.name or []) if _current(n, now) and n.use not in ("maiden",)]
    order = {"usual": 0, "official": 1, None: 2}

    def by(first: str) -> list[tuple[int, Any]]:
        rank = dict(order, **{first: -1})
        return sorted(names, key=lambda n: (rank.get(n[1].use, 3), n[0]))

    given = next(((i, n.given[0].strip()) for i, n in by("usual") if n.given and n.given[0].strip()), None)
    if given is None:
        raise InvalidFhir([("name", "a Patient needs a current name with a given name")])
    family = next(((i, n.family.strip()) for i, n in by("official") if n.family and n.family.strip()), None)
    paths = {"first_name": f"name[{given[0]}].given[0]"}
    if family is not None:
        paths["last_name"] = f"name[{family[0]}].family"
    for record_field, value in (("first_name", given[1]), ("last_name", family[1] if family else "")):
        if len(value) > MAX_TEXT:
            raise InvalidFhir([(paths[record_field], f"is at most {MAX_TEXT} characters")])
    return given[1], family[1] if family else "", paths


def _language(resource: FhirPatient) -> tuple[str | None, str | None]:
    """(the language, its element): the preferred communication's, else the first's."""
    found = list(enumerate(resource.communication or []))
    found.sort(key=lambda c: (not c[1].preferred, c[0]))
    for i, communication in found:
        concept = communication.language
        codes = [c for c in concept.coding or [] if c.code] if concept else []
        code = next((c.code for c in codes if c.system == BCP47), codes[0].code if codes else None)
        if code:
            where = f"communication[{i}].language"
            if len(code) > MAX_LANGUAGE:
                raise InvalidFhir([(where, f"a language code is at most {MAX_LANGUAGE} characters")])
            return code, where
    return None, None


def read_patient(practice: Practice, resource: FhirPatient, *, now: datetime | None = None) -> PatientIn:
    """A validated FHIR Patient as a sync record; refuses (naming the element) what cannot be imported."""
    now = now or datetime.now(UTC)
    position, identifier = pick_identifier(resource, now)
    external_id = identifier.value.strip()
    if len(external_id) > 128:
        raise InvalidFhir([(f"identifier[{position}].value", "is at most 128 characters")])
    first, last, paths = _names(resource, now)
    paths["external_id"] = f"identifier[{position}]"
    issues: list[Issue] = []
    phones: dict[str, tuple[str, int]] = {}  # E.164 -> (line type, telecom index), in order
    emails: dict[str, int] = {}
    ranked: tuple[int, int, str] | None = None  # (rank, index, number) of the best-ranked phone
    for i, telecom in enumerate(resource.telecom or []):
        where = f"telecom[{i}]"
        if telecom.system is not None and telecom.system not in TELECOM_SYSTEMS:
            raise InvalidFhir([(f"{where}.system", f"must be one of {', '.join(TELECOM_SYSTEMS)}")])
        value = (telecom.value or "").strip()
        if not value or telecom.system is None:
            issues.append(Issue(f"Patient.{where}", "no_value", "a telecom without a system and a value is not read"))
            continue
        if telecom.system not in ("phone", "sms", "email"):
            issues.append(
                Issue(f"Patient.{where}", "not_stored", f"Consentry does not use {telecom.system} contact points")
            )
            continue
        if not _current(telecom, now):
            issues.append(Issue(f"Patient.{where}", "not_current", "not current (use old, or its period is over)"))
            continue
        if telecom.system == "email":
            emails.setdefault(normalize_email(value, field=f"{where}.value"), i)
            continue
        number = normalize_phone(value, region=practice.region, field=f"{where}.value").number
        mobile = telecom.system == "sms" or telecom.use == "mobile"
        line_type, first_at = phones.get(number, (LineType.UNKNOWN.value, i))
        phones[number] = (LineType.MOBILE.value if mobile else line_type, first_at)
        if telecom.rank is not None and (ranked is None or (telecom.rank, i) < ranked[:2]):
            ranked = (telecom.rank, i, number)
    for n, (_, i) in enumerate(phones.values()):
        paths[f"phones[{n}]"] = f"telecom[{i}]"
    for n, i in enumerate(emails.values()):
        paths[f"emails[{n}]"] = f"telecom[{i}]"
    if ranked is not None:
        paths["preferred_phone"] = f"telecom[{ranked[1]}]"
    language, language_at = _language(resource)
    if language_at:
        paths["language"] = language_at
    unread = sorted({k.lstrip("_") for k in resource.model_dump(by_alias=True, exclude_none=True)} - READ)
    if unread:
        issues.append(Issue("Patient", "not_stored", f"Consentry does not store {', '.join(unread)}"))
    record = PatientRecord(
        first_name=first,
        last_name=last,
        phones=[PhoneInput(number, line_type) for number, (line_type, _) in phones.items()],
        emails=list(emails),
        preferred_phone=ranked[2] if ranked else None,
        language=language,
    )
    return PatientIn(external_id, identifier.system, record, issues, paths)


@dataclass
class Imported:
    patient: Patient
    created: bool
    issues: list[Issue]


def _sync(practice: Practice, found: PatientIn, *, actor: str, at: str = "") -> Imported:
    try:
        synced = sync_patient(practice, found.external_id, found.record, source=Source.PMS_SYNC, actor=actor)
    except InvalidInput as exc:
        if isinstance(exc, InvalidFhir):
            raise
        raise InvalidFhir([(at + found.element(exc.field), exc.message)]) from None
    return Imported(synced.patient, synced.created, found.issues + _kept_issues(found, synced))


def _kept_issues(found: PatientIn, synced: Synced) -> list[Issue]:
    issues = [
        Issue(f"Patient.{found.element(k.field)}", k.reason, k.message, code="business-rule") for k in synced.kept
    ]
    language = found.record.language
    if language and synced.patient.language != language:
        issues.append(
            Issue(
                f"Patient.{found.paths['language']}",
                "language_kept",
                f"the patient's language stays {synced.patient.language!r}: Consentry sets it when it creates a patient",
            )
        )
    return issues


def import_patient(practice: Practice, data: Any, *, actor: str) -> Imported:
    """Create or update the practice's patient of this FHIR Patient's identifier, by the sync rules."""
    resource = _checked(FhirPatient, data, "")
    found = read_patient(practice, resource)
    with transaction.atomic():
        return _sync(practice, found, actor=actor)


@dataclass
class EntryResult:
    imported: Imported
    status: str  # "201 Created" or "200 OK"


def import_transaction(practice: Practice, data: Any, *, actor: str) -> list[EntryResult]:
    """A transaction Bundle of Patients (POST Patient, PUT Patient?identifier=...), all or nothing: every entry
    is checked before the first write, and any refusal names its entry and changes nothing."""
    bundle = _checked(Bundle, data, "")
    if bundle.type != "transaction":
        raise InvalidFhir([("type", "must be transaction (entries applied all or nothing)")])
    entries = bundle.entry or []
    if len(entries) > MAX_ENTRIES:
        raise InvalidFhir([("entry", f"at most {MAX_ENTRIES} entries in one transaction")])
    found: list[PatientIn] = []
    seen: dict[str, int] = {}
    now = datetime.now(UTC)
    for i, entry in enumerate(entries):
        at = f"entry[{i}]"
        if entry.resource is None or entry.resource.get_resource_type() != "Patient":
            kind = entry.resource.get_resource_type() if entry.resource is not None else "nothing"
            raise InvalidFhir([(f"{at}.resource", f"only Patient resources are imported, not {kind}")])
        try:
            patient_in = read_patient(practice, entry.resource, now=now)
        except InvalidInput as exc:
            raise InvalidFhir([(f"{at}.resource.{exc.field}", exc.message)]) from None
        _check_request(entry.request, patient_in, at)
        if patient_in.external_id in seen:
            raise InvalidFhir(
                [
                    (
                        f"{at}.resource.{patient_in.paths['external_id']}",
                        f"the same patient as entry[{seen[patient_in.external_id]}]: one entry per patient",
                    )
                ]
            )
        seen[patient_in.external_id] = i
        found.append(patient_in)
    results = []
    with transaction.atomic():
        for i, patient_in in enumerate(found):
            imported = _sync(practice, patient_in, actor=actor, at=f"entry[{i}].resource.")
            results.append(EntryResult(imported, "201 Created" if imported.created else "200 OK"))
    return results


def _check_request(request: Any, found: PatientIn, at: str) -> None:
    """An entry's request: POST Patient, or PUT Patient?identifier=[system|]value naming the identifier the
    Patient is keyed by (so that both say the same patient)."""
    if request is None:
        raise InvalidFhir([(f"{at}.request", "a transaction entry needs a request: POST Patient, or PUT Patient?...")])
    url = (request.url or "").strip()
    if request.ifNoneExist or request.ifMatch or request.ifNoneMatch or request.ifModifiedSince:
        raise InvalidFhir([(f"{at}.request", "conditional headers are not supported: POST creates or updates")])
    if request.method == "POST":
        if url.rstrip("/") != "Patient":
            raise InvalidFhir([(f"{at}.request.url", "must be Patient")])
        return
    if request.method != "PUT":
        raise InvalidFhir([(f"{at}.request.method", "must be POST (Patient) or PUT (Patient?identifier=...)")])
    resource_type, _, query = url.partition("?")
    params = parse_qs(query, keep_blank_values=True)
    if resource_type != "Patient" or set(params) != {"identifier"} or len(params["identifier"]) != 1:
        raise InvalidFhir([(f"{at}.request.url", "must be Patient?identifier=[system|]value (a conditional update)")])
    system, bar, value = params["identifier"][0].rpartition("|")
    named = (system if bar else None, value)
    if named[1] != found.external_id or (named[0] is not None and named[0] != (found.identifier_system or "")):
        raise InvalidFhir(
            [
                (
                    f"{at}.request.url",
                    f"names identifier {params['identifier'][0]!r}, but the Patient is keyed by "
                    f"{found.paths['external_id']} ({(found.identifier_system or '') + '|' + found.external_id!r})",
                )
            ]
        )


# --- writing -------------------------------------------------------------------------------------------------------


def _json(model: Any, data: dict) -> dict:
    """``data`` checked as this R4 model, as JSON."""
    return model.model_validate(data).model_dump(mode="json", exclude_none=True)


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def patient_ref(patient: Patient) -> dict:
    return {"reference": f"Patient/{patient.pk}"}


def patient_resource(patient: Patient) -> dict:
    """The patient as a FHIR Patient: what Consentry keeps of them (docs/fhir.md), read back as it was imported."""
    points = [link.contact_point for link in patient.contacts.select_related("contact_point").order_by("position")]
    preferred = patient.preferred_phone_id
    telecom: list[dict[str, Any]] = []
    for point in points:
        if point.kind == ContactKind.PHONE:
            phone: dict[str, Any] = {"system": "phone", "value": point.address}
            if point.line_type == LineType.MOBILE:
                phone["use"] = "mobile"
            if point.pk == preferred:
                phone["rank"] = 1
            telecom.append(phone)
    telecom += [{"system": "email", "value": p.address} for p in points if p.kind == ContactKind.EMAIL]
    name: dict[str, Any] = {"use": "usual", "given": [patient.first_name]}
    if patient.last_name:
        name["family"] = patient.last_name
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {"lastUpdated": _instant(patient.updated_at)},
        "name": [name],
        "telecom": telecom or None,
        "communication": [{"language": {"coding": [{"system": BCP47, "code": patient.language}]}, "preferred": True}]
        if patient.language
        else None,
    }
    if patient.external_id:
        data["identifier"] = [
            {
                "use": "usual",
                "type": {"coding": [{"system": V2_0203, "code": MR, "display": "Medical record number"}]},
                "value": patient.external_id,
            }
        ]
    return _json(FhirPatient, data)


def outcome(issues: Sequence[Issue], summary: str) -> dict:
    """An OperationOutcome: what was not applied as sent and why, else one issue saying what was done."""
    found = [
        {
            "severity": "information",
            "code": issue.code,
            "details": {"coding": [{"system": f"{SYSTEM}:issue", "code": issue.reason}], "text": issue.message},
            "diagnostics": issue.message,
            "expression": [issue.expression],
        }
        for issue in issues
    ]
    return _json(OperationOutcome, {"resourceType": "OperationOutcome", "issue": found or [_done(summary)]})


def _done(summary: str) -> dict:
    return {"severity": "information", "code": "informational", "diagnostics": summary}


def transaction_response(results: Sequence[EntryResult], base: str) -> dict:
    """The transaction-response Bundle: per entry, its status, location and (when there is something to say) an
    OperationOutcome of what was kept."""
    entries = []
    for result in results:
        patient = result.imported.patient
        response: dict[str, Any] = {
            "status": result.status,
            "location": f"Patient/{patient.pk}",
            "lastModified": _instant(Patient.objects.values_list("updated_at", flat=True).get(pk=patient.pk)),
        }
        if result.imported.issues:
            response["outcome"] = outcome(result.imported.issues, "")
        entries.append({"fullUrl": f"{base}/Patient/{patient.pk}", "response": response})
    return _json(Bundle, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries or None})


# The consent of an address, as a Consent: permit or deny, from the ledger's projection, with the event behind it.
CHANNEL_NAMES = {Channel.SMS: "Text messages", Channel.VOICE: "Calls", Channel.EMAIL: "Email"}
CONSENT_CATEGORY = {"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}
SCOPE = {
    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
    "code": "patient-privacy",
    "display": "Privacy Consent",
}
RULES = {
    "OPTIN": "opt-in",
    "OPTOUT": "opt-out",
    "IMPLIED": "implied consent",
}


@dataclass(frozen=True)
class _AddressConsent:
    channel: Channel
    point: ContactPoint
    permit: bool
    state: str | None  # Consentry's state of the channel: opted_in, opted_out, subscribed, unsubscribed, bounced
    event: ConsentEvent | None  # the ledger event the current state began with
    blocked: tuple[str, ...] = ()  # categories the practice blocked the number for
    block_event: ConsentEvent | None = None


def _latest_events(practice_id: Any, addresses: list[str]) -> dict[tuple[str, str], ConsentEvent]:
    """The latest SMS, email and block event of each address: when its current state began."""
    last = (
        ConsentEvent.objects.filter(
            practice_id=practice_id, address__in=addresses, subject__in=[Subject.SMS, Subject.EMAIL, Subject.BLOCK]
        )
        .values("address", "subject")
        .annotate(last=Max("seq"))
        .values_list("last", flat=True)
    )
    events = ConsentEvent.objects.filter(practice_id=practice_id, seq__in=list(last))
    return {(e.address, e.subject): e for e in events}


def _address_consents(patient: Patient) -> list[_AddressConsent]:
    points = [link.contact_point for link in patient.contacts.select_related("contact_point").order_by("position")]
    addresses = [p.address for p in points]
    state = ledger.consent_state(patient.practice_id, addresses)  # what decide() and the staff app read
    events = _latest_events(patient.practice_id, addresses)
    found = []
    for point in points:
        address = point.address
        if point.kind == ContactKind.EMAIL:
            email = (
                "bounced"
                if address in state.email_bounced
                else "unsubscribed"
                if address in state.email_unsubscribed
                else "subscribed"
            )
            event = events.get((address, Subject.EMAIL))
            found.append(_AddressConsent(Channel.EMAIL, point, email == "subscribed", email, event))
            continue
        blocked = tuple(sorted(state.blocks.get(address, ())))
        block_event = events.get((address, Subject.BLOCK))
        opted_out = address in state.sms_opted_out
        sms_event = events.get((address, Subject.SMS))
        sms = "opted_out" if opted_out else "opted_in"
        found.append(_AddressConsent(Channel.SMS, point, not opted_out, sms, sms_event, blocked, block_event))
        # Consentry records no opt-out of calls: a call's consent is the number's blocks, begun with their event.
        found.append(_AddressConsent(Channel.VOICE, point, True, None, block_event, blocked, block_event))
    return found


def _rule(consent: _AddressConsent) -> dict:
    codings = []
    if consent.state == "bounced":
        pass  # no consent choice: the address cannot be written to
    elif not consent.permit:
        codings.append({"system": ACT_CODE, "code": "OPTOUT", "display": RULES["OPTOUT"]})
    elif consent.state is not None and consent.event is not None:
        codings.append({"system": ACT_CODE, "code": "OPTIN", "display": RULES["OPTIN"]})
    else:
        codings.append({"system": ACT_CODE, "code": "IMPLIED", "display": RULES["IMPLIED"]})
    if consent.state is not None:
        codings.append({"system": f"{SYSTEM}:consent-state", "code": consent.state})
    return {"coding": codings}


def _narrative(consent: _AddressConsent) -> str:
    words = f"{CHANNEL_NAMES[consent.channel]} to {consent.point.address}: "
    words += {
        "opted_in": "opted in",
        "opted_out": "opted out",
        "subscribed": "subscribed",
        "unsubscribed": "unsubscribed",
        "bounced": "bounced (nothing is sent until the address is corrected)",
        None: "allowed",
    }[consent.state]
    if consent.blocked:
        words += f"; blocked for {', '.join(consent.blocked)}"
    if consent.event is not None:
        words += f" (since ledger event {consent.event.seq}, {_instant(consent.event.created_at)})"
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(words)}</div>'


def consent_resource(patient: Patient, consent: _AddressConsent) -> dict:
    provision: dict[str, Any] = {"type": "permit" if consent.permit else "deny"}
    if consent.event is not None:
        provision["period"] = {"start": _instant(consent.event.created_at)}
    if consent.blocked and consent.channel in (Channel.SMS, Channel.VOICE):
        block: dict[str, Any] = {
            "type": "deny",
            "code": [{"coding": [{"system": f"{SYSTEM}:category", "code": key}]} for key in consent.blocked],
        }
        if consent.block_event is not None:
            block["period"] = {"start": _instant(consent.block_event.created_at)}
        provision["provision"] = [block]
    data: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(uuid.uuid5(_IDS, f"consent:{patient.pk}:{consent.point.address}:{consent.channel}")),
        "text": {"status": "generated", "div": _narrative(consent)},
        "status": "active",
        "scope": {"coding": [SCOPE]},
        "category": [
            {"coding": [CONSENT_CATEGORY]},
            {"coding": [{"system": f"{SYSTEM}:channel", "code": consent.channel.value}]},
        ],
        "patient": patient_ref(patient),
        "policyRule": _rule(consent),
        "provision": provision,
        "extension": [{"url": f"{SYSTEM}:address", "valueString": consent.point.address}],
    }
    if consent.event is not None:
        data["dateTime"] = _instant(consent.event.created_at)
        data["sourceReference"] = {
            "identifier": {"system": f"{SYSTEM}:ledger-event", "value": str(consent.event.seq)},
            "display": f"Consentry consent ledger event {consent.event.seq} ({consent.event.source})",
        }
    return _json(Consent, data)


def _searchset(resources: list[dict], links: dict[str, str], *, total: int | None = None) -> dict:
    entries = [
        {"fullUrl": f"urn:uuid:{uuid.uuid5(_IDS, r['resourceType'] + ':' + r['id'])}", "resource": r}
        | {"search": {"mode": "match"}}
        for r in resources
    ]
    data = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items()] or None,
        "entry": entries or None,
    }
    return _json(Bundle, data)


def consent_searchset(patient: Patient, *, links: dict[str, str]) -> dict:
    """A searchset of Consent: for each of the patient's phones its texts and its calls, for each email its email."""
    resources = [consent_resource(patient, c) for c in _address_consents(patient)]
    return _searchset(resources, links, total=len(resources))


# What became of a delivery, as a Communication's status (and, for one not done, why).
COMMUNICATION_STATUS = {
    Status.PENDING: "in-progress",
    Status.DEFERRED: "on-hold",
    Status.SENT: "completed",
    Status.DELIVERED: "completed",
    Status.UNDELIVERED: "not-done",
    Status.FAILED: "not-done",
    Status.SKIPPED: "not-done",
}
MEDIUM = {Channel.SMS: "SMSWRIT", Channel.VOICE: "PHONE", Channel.EMAIL: "EMAILWRIT", Channel.IN_APP: "ONLINEWRIT"}


def communication_resource(patient: Patient, delivery: Any) -> dict:
    """A delivery (messaging's ``Delivery``, with its message) as a Communication. The message's words are not in
    it: they stay encrypted in Consentry (GET /api/v1/messages/{id} reads them)."""
    status = COMMUNICATION_STATUS.get(delivery.status, "unknown")
    data: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(delivery.pk),
        "identifier": [{"system": f"{SYSTEM}:delivery", "value": str(delivery.pk)}],
        "basedOn": [
            {
                "identifier": {"system": f"{SYSTEM}:message", "value": str(delivery.message_id)},
                "display": f"Consentry message {delivery.message_id}",
            }
        ],
        "status": status,
        "category": [
            {"coding": [{"system": f"{SYSTEM}:category", "code": delivery.message.category}]},
            {"coding": [{"system": f"{SYSTEM}:kind", "code": delivery.message.kind}]},
        ],
        "medium": [
            {
                "coding": [
                    {"system": PARTICIPATION_MODE, "code": MEDIUM[delivery.channel]},
                    {"system": f"{SYSTEM}:channel", "code": delivery.channel},
                ]
            }
        ],
        "subject": patient_ref(patient),
        "recipient": [patient_ref(patient)],
        "sent": _instant(delivery.sent_at) if delivery.sent_at else None,
        "received": _instant(delivery.delivered_at) if delivery.delivered_at else None,
        "extension": [{"url": f"{SYSTEM}:address", "valueString": delivery.address}] if delivery.address else None,
    }
    if status in ("not-done", "on-hold"):
        reason = delivery.reason or delivery.status
        data["statusReason"] = {
            "coding": [{"system": f"{SYSTEM}:reason", "code": reason}],
            "text": delivery.error or reason,
        }
    return _json(Communication, data)


def communication_searchset(patient: Patient, deliveries: Iterable[Any], *, links: dict[str, str]) -> dict:
    """A searchset of Communication: the patient's deliveries, newest first, one page."""
    return _searchset([communication_resource(patient, d) for d in deliveries], links)
