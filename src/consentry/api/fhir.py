"""FHIR R4: patients in (Patient, transaction Bundle), consent and communications out.

Thin glue: the body is read here (``application/fhir+json`` or ``application/json``), the mapping
both ways and the import's rules are ``records/fhir.py``'s. Answers are ``application/fhir+json``;
refusals are the API's one error body (``{"error": {"code", "message", "field"}}``), the field
naming the FHIR element at fault (``entry[3].resource.telecom[0].value``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Header, Query, Router
from ninja.errors import HttpError

from consentry.api.auth import actor_of, owned_or_404, practice_of
from consentry.api.errors import error
from consentry.errors import InvalidInput
from consentry.messaging.selectors import list_deliveries
from consentry.patients.models import Patient
from consentry.records import fhir

router = Router(tags=["fhir"])

FHIR_JSON = "application/fhir+json"
ACCEPTED = (FHIR_JSON, "application/json")

PATIENT_EXAMPLE = {
    "resourceType": "Patient",
    "identifier": [
        {
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
        }
    ],
    "name": [
        {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
        {"use": "usual", "given": ["Jim"]},
    ],
    "telecom": [
        {"system": "phone", "value": "(415) 555-0132", "use": "mobile", "rank": 1},
        {"system": "phone", "value": "(415) 555-0199", "use": "home"},
        {"system": "email", "value": "jim@example.com"},
    ],
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}, "preferred": True}],
    "birthDate": "1974-12-25",
}
BUNDLE_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"resource": PATIENT_EXAMPLE, "request": {"method": "POST", "url": "Patient"}},
        {
            "resource": {
                **PATIENT_EXAMPLE,
                "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12346"}],
                "name": [{"family": "Chalmers", "given": ["Anne"]}],
                "telecom": [{"system": "sms", "value": "(415) 555-0133"}],
            },
            "request": {"method": "PUT", "url": "Patient?identifier=urn:oid:1.2.36.146.595.217.0.1|12346"},
        },
    ],
}


PATIENT_ID = "5b0e3f4c-2a51-4a8e-9d7c-0e6f1b9a7c31"
AT = "2027-01-15T14:30:00+00:00"
MR = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}
    ]
}
PATIENT_OUT_EXAMPLE = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "meta": {"lastUpdated": AT},
    "identifier": [{"use": "usual", "type": MR, "value": "12345"}],
    "name": [{"use": "usual", "family": "Chalmers", "given": ["Jim"]}],
    "telecom": [
        {"system": "phone", "value": "+14155550132", "use": "mobile", "rank": 1},
        {"system": "phone", "value": "+14155550199"},
        {"system": "email", "value": "jim@example.com"},
    ],
    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}, "preferred": True}],
}
_KEPT = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "information",
            "code": "business-rule",
            "details": {
                "coding": [{"system": "urn:consentry:fhir:issue", "code": "sms_opted_out"}],
                "text": "this number opted out of texts, and stays opted out: only the person can opt back in",
            },
            "diagnostics": "this number opted out of texts, and stays opted out: only the person can opt back in",
            "expression": ["Patient.telecom[0]"],
        }
    ],
}
TRANSACTION_RESPONSE_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "transaction-response",
    "entry": [
        {
            "fullUrl": f"https://consentry.example/api/v1/fhir/Patient/{PATIENT_ID}",
            "response": {"status": "201 Created", "location": f"Patient/{PATIENT_ID}", "lastModified": AT},
        },
        {
            "fullUrl": "https://consentry.example/api/v1/fhir/Patient/0c6e2f7a-9b1d-4e3c-8a5f-2d7b9e1c4a60",
            "response": {
                "status": "200 OK",
                "location": "Patient/0c6e2f7a-9b1d-4e3c-8a5f-2d7b9e1c4a60",
                "lastModified": AT,
                "outcome": _KEPT,
            },
        },
    ],
}
CONSENT_SEARCHSET_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "searchset",
    "total": 1,
    "link": [{"relation": "self", "url": f"https://consentry.example/api/v1/fhir/Consent?patient={PATIENT_ID}"}],
    "entry": [
        {
            "fullUrl": "urn:uuid:3d1f0a2b-8c4e-5f6a-9b7c-1e2d3f4a5b6c",
            "search": {"mode": "match"},
            "resource": {
                "resourceType": "Consent",
                "id": "8a2c4e6f-1b3d-5f7a-9c1e-3b5d7f9a1c2e",
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Text messages to +14155550132: opted out '
                    "(since ledger event 118, 2027-01-15T14:30:00+00:00)</div>",
                },
                "extension": [{"url": "urn:consentry:fhir:address", "valueString": "+14155550132"}],
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                            "display": "Privacy Consent",
                        }
                    ]
                },
                "category": [
                    {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
                    {"coding": [{"system": "urn:consentry:fhir:channel", "code": "sms"}]},
                ],
                "patient": {"reference": f"Patient/{PATIENT_ID}"},
                "dateTime": AT,
                "sourceReference": {
                    "identifier": {"system": "urn:consentry:fhir:ledger-event", "value": "118"},
                    "display": "Consentry consent ledger event 118 (sms_keyword)",
                },
                "policyRule": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "OPTOUT",
                            "display": "opt-out",
                        },
                        {"system": "urn:consentry:fhir:consent-state", "code": "opted_out"},
                    ]
                },
                "provision": {"type": "deny", "period": {"start": AT}},
            },
        }
    ],
}
COMMUNICATION_SEARCHSET_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "searchset",
    "link": [{"relation": "self", "url": f"https://consentry.example/api/v1/fhir/Communication?patient={PATIENT_ID}"}],
    "entry": [
        {
            "fullUrl": "urn:uuid:5c7e9a1b-3d5f-5a7c-9e1b-3d5f7a9c1e3b",
            "search": {"mode": "match"},
            "resource": {
                "resourceType": "Communication",
                "id": "5521",
                "extension": [{"url": "urn:consentry:fhir:address", "valueString": "+14155550132"}],
                "identifier": [{"system": "urn:consentry:fhir:delivery", "value": "5521"}],
                "basedOn": [
                    {
                        "identifier": {
                            "system": "urn:consentry:fhir:message",
                            "value": "9d3c1e57-6f0b-4a8e-b1a2-7c4d2e8f9a10",
                        },
                        "display": "Consentry message 9d3c1e57-6f0b-4a8e-b1a2-7c4d2e8f9a10",
                    }
                ],
                "status": "not-done",
                "statusReason": {
                    "coding": [{"system": "urn:consentry:fhir:reason", "code": "sms_opted_out"}],
                    "text": "sms_opted_out",
                },
                "category": [
                    {"coding": [{"system": "urn:consentry:fhir:category", "code": "appointment_reminder"}]},
                    {"coding": [{"system": "urn:consentry:fhir:kind", "code": "automation"}]},
                ],
                "medium": [
                    {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "code": "SMSWRIT"},
                            {"system": "urn:consentry:fhir:channel", "code": "sms"},
                        ]
                    }
                ],
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "recipient": [{"reference": f"Patient/{PATIENT_ID}"}],
            },
        }
    ],
}


def _resource(resource_types: str, description: str) -> dict:
    """A FHIR resource in the document: a JSON object with its resourceType; fhir.resources checks the rest."""
    return {
        "type": "object",
        "description": description,
        "properties": {"resourceType": {"type": "string", "enum": resource_types.split("|")}},
        "required": ["resourceType"],
        "additionalProperties": True,
    }


def _body_of(resource_type: str, description: str, example: dict) -> dict:
    """A request body: FHIR JSON (``application/json`` is read the same, undeclared so that clients see one body)."""
    return {
        "required": True,
        "content": {FHIR_JSON: {"schema": _resource(resource_type, description), "example": example}},
    }


def _answers(**statuses: tuple[str, str, str, dict]) -> dict:
    """The document's answers: status -> (resource types, description, what it is, an example)."""
    return {
        int(status.removeprefix("s")): {
            "description": description,
            "content": {FHIR_JSON: {"schema": _resource(resource_types, what), "example": example}},
        }
        for status, (resource_types, description, what, example) in statuses.items()
    }


def _refusal(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


UNSUPPORTED = {415: _refusal("The body is not application/fhir+json (or application/json)")}
NO_PATIENT = {404: _refusal("No such patient at this practice (another practice's, or not an id)")}


def _fhir(data: dict, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(data), content_type=FHIR_JSON, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _read(request: HttpRequest) -> Any:
    """The body, as JSON, if sent as FHIR JSON or JSON."""
    if request.content_type not in ACCEPTED:
        raise _Refused(415, "unsupported_media_type", f"send the resource as {FHIR_JSON} (or application/json)")
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body is not JSON") from None


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def _refusals(handler: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Every element at fault of an invalid resource, in the one error body (``errors`` lists them all)."""

    @wraps(handler)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return handler(request, *args, **kwargs)
        except fhir.InvalidFhir as exc:
            problems = [error("invalid", message, field)["error"] for field, message in exc.problems]
            return JsonResponse({"error": problems[0], "errors": problems}, status=422)
        except _Refused as exc:
            return JsonResponse(error(exc.code, exc.message), status=exc.status)

    return wrapper


def _base(request: HttpRequest) -> str:
    """The FHIR base URL of this API, e.g. https://consentry.example/api/v1/fhir."""
    path = request.path
    return request.build_absolute_uri(path[: path.index("/fhir") + len("/fhir")])


def _patient(request: HttpRequest, reference: str) -> Patient:
    """The practice's patient a search names (``123e...`` or ``Patient/123e...``): else a 404."""
    return owned_or_404(Patient, request, reference.strip().removeprefix("Patient/"))


@router.post(
    "",
    openapi_extra={
        "requestBody": _body_of("Bundle", "A transaction Bundle of Patient entries", BUNDLE_EXAMPLE),
        "responses": {
            **_answers(
                s200=(
                    "Bundle",
                    "Every entry applied",
                    "A transaction-response Bundle: per entry its status, location, outcome",
                    TRANSACTION_RESPONSE_EXAMPLE,
                )
            ),
            **UNSUPPORTED,
        },
    },
)
@_refusals
def transaction(request):
    """Import patients in one transaction: entries ``POST Patient`` and ``PUT Patient?identifier=system|value``,
    all applied or none. Each is a sync of the patient with that identifier (created, or updated by the sync rules:
    an opt-out is never undone). The answer is a ``transaction-response`` Bundle; an entry's ``response.outcome``
    says what was kept and why. An invalid entry changes nothing, and the error names it (``entry[3].resource...``)."""
    results = fhir.import_transaction(practice_of(request), _read(request), actor=actor_of(request))
    return _fhir(fhir.transaction_response(results, _base(request)))


@router.post(
    "/Patient",
    openapi_extra={
        "requestBody": _body_of("Patient", "A FHIR R4 Patient with an identifier", PATIENT_EXAMPLE),
        "responses": {
            **_answers(
                s201=(
                    "Patient|OperationOutcome",
                    "Created",
                    "The patient as Consentry keeps them; with Prefer: return=OperationOutcome, what was kept and why",
                    PATIENT_OUT_EXAMPLE,
                ),
                s200=(
                    "Patient|OperationOutcome",
                    "Updated: the practice had a patient with this identifier",
                    "The patient as Consentry keeps them; with Prefer: return=OperationOutcome, what was kept and why",
                    PATIENT_OUT_EXAMPLE,
                ),
            ),
            **UNSUPPORTED,
        },
    },
)
@_refusals
def patient_create(
    request,
    prefer: str = Header(
        "",
        alias="Prefer",
        max_length=200,
        description="return=representation (the Patient, the default), return=OperationOutcome (what was kept and why) "
        "or return=minimal (no body)",
    ),
):
    """Import one patient: created, or updated if the practice has a patient with its identifier (201 or 200), by the
    sync rules (an opt-out, an unsubscribe or a block stays; preferences Consentry keeps are not overwritten)."""
    imported = fhir.import_patient(practice_of(request), _read(request), actor=actor_of(request))
    status = 201 if imported.created else 200
    location = f"{_base(request)}/Patient/{imported.patient.pk}"
    wanted = prefer.replace(" ", "").lower()
    if "return=operationoutcome" in wanted:
        summary = "created" if imported.created else "updated"
        return _fhir(fhir.outcome(imported.issues, summary), status, Location=location)
    if "return=minimal" in wanted:
        return HttpResponse(status=status, headers={"Location": location})
    imported.patient.refresh_from_db()
    return _fhir(fhir.patient_resource(imported.patient), status, Location=location)


@router.get(
    "/Patient/{patient_id}",
    openapi_extra={
        "responses": _answers(
            s200=("Patient", "The patient", "The patient as Consentry keeps them", PATIENT_OUT_EXAMPLE)
        )
    },
)
def patient_read(request, patient_id: str):
    """The patient as a FHIR Patient: identifier (the external id), name, telecom, language."""
    return _fhir(fhir.patient_resource(owned_or_404(Patient, request, patient_id)))


@router.get(
    "/Consent",
    openapi_extra={
        "responses": {
            **_answers(
                s200=(
                    "Bundle",
                    "The patient's consents",
                    "A searchset Bundle of Consent: each address's, per channel",
                    CONSENT_SEARCHSET_EXAMPLE,
                )
            ),
            **NO_PATIENT,
        }
    },
)
def consent_search(request, patient: str = Query(..., max_length=200, description="The patient's id")):
    """Each of the patient's addresses' communication consent, as Consent: texts and calls for each phone, email for
    each email address; permit or deny, since when, and the consent ledger event it began with."""
    found = _patient(request, patient)
    return _fhir(fhir.consent_searchset(found, links={"self": request.build_absolute_uri()}))


@router.get(
    "/Communication",
    openapi_extra={
        "responses": {
            **_answers(
                s200=(
                    "Bundle",
                    "The patient's deliveries",
                    "A searchset Bundle of Communication, newest first",
                    COMMUNICATION_SEARCHSET_EXAMPLE,
                )
            ),
            **NO_PATIENT,
        }
    },
)
def communication_search(
    request,
    patient: str = Query(..., max_length=200, description="The patient's id"),
    count: int = Query(100, ge=1, le=500, alias="_count"),
    cursor: str = Query("", max_length=200, alias="_cursor", description="From the previous page's next link"),
):
    """The patient's deliveries as Communication, newest first, a page at a time (the Bundle's ``next`` link)."""
    found = _patient(request, patient)
    try:
        page = list_deliveries(practice_of(request), patient_id=found.pk, cursor=cursor, limit=count)
    except InvalidInput as exc:
        raise InvalidInput("_cursor", exc.message) from None
    links = {"self": request.build_absolute_uri()}
    if page.next_cursor:
        query = {"patient": patient, "_count": count, "_cursor": page.next_cursor}
        links["next"] = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
    return _fhir(fhir.communication_searchset(found, page.deliveries, links=links))
