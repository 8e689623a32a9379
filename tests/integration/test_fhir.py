"""FHIR R4 over HTTP: patients in (a Patient, a transaction Bundle) through the sync rules, and a patient, their
addresses' consent and their deliveries out, every answer checked with fhir.resources' R4 models."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from django.test import Client
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent.models import ConsentEvent
from consentry.patients.models import ContactPoint, Patient
from consentry.records.services import update_patient
from tests.conftest import Api, drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"
MOBILE, HOME, WORK, OLD = "+14155550132", "+14155550199", "+14155550177", "+14155550100"

# The shape of HL7's own example Patient (hl7.org/fhir/R4/patient-example.json), with numbers of this practice's region.
JIM = {
    "resourceType": "Patient",
    "id": "example",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Peter James Chalmers</div>'},
    "identifier": [
        {
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345",
            "period": {"start": "2001-05-06"},
            "assigner": {"display": "Acme Healthcare"},
        },
        {"use": "old", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "A-77"},
    ],
    "active": True,
    "name": [
        {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
        {"use": "usual", "given": ["Jim"]},
        {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"], "period": {"end": "2002"}},
    ],
    "telecom": [
        {"use": "home"},
        {"system": "phone", "value": "(415) 555-0177", "use": "work", "rank": 2},
        {"system": "phone", "value": "(415) 555-0132", "use": "mobile", "rank": 1},
        {"system": "phone", "value": "(415) 555-0100", "use": "old", "period": {"end": "2014"}},
        {"system": "email", "value": "Jim.Chalmers@Example.com", "use": "home"},
        {"system": "fax", "value": "(415) 555-0150"},
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
    "communication": [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "nl"}]}},
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True},
    ],
    "managingOrganization": {"reference": "Organization/1"},
}


def post(api: Api, path: str, body, content_type: str = FHIR_JSON, **headers):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return api.client.post(f"/api/v1/fhir{path}", raw, content_type=content_type, **headers)


def fhir_json(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:600])
    assert response["Content-Type"] == FHIR_JSON
    return response.json()


def searchset(api: Api, resource: str, patient, **params) -> tuple[Bundle, dict]:
    body = fhir_json(api.get(f"/fhir/{resource}", patient=str(patient), **params))
    bundle = Bundle.model_validate(body)  # the whole answer is valid R4, every entry's resource included
    assert bundle.type == "searchset"
    return bundle, body


def resources(body: dict) -> list[dict]:
    return [e["resource"] for e in body.get("entry", [])]


def ledger_size(practice) -> int:
    return ConsentEvent.objects.filter(practice=practice).count()


def person(external_id: str, given: str, family: str, telecom: list[dict]) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": external_id}],
        "name": [{"family": family, "given": [given]}],
        "telecom": telecom,
    }


# --- import ----------------------------------------------------------------------------------------------------


def test_a_patient_is_imported_by_its_identifier_and_read_back_as_valid_r4(practice, api):
    response = post(api, "/Patient", JIM)
    exported = fhir_json(response, 201)
    patient = Patient.objects.get(practice=practice, external_id="12345")  # the MR identifier, not the old one
    assert response["Location"] == f"http://testserver/api/v1/fhir/Patient/{patient.pk}"
    FhirPatient.model_validate(exported)
    rest = api.get(f"/patients/{patient.pk}").json()
    assert (rest["first_name"], rest["last_name"]) == ("Jim", "Chalmers")  # the usual given name, the official family
    # Telecom in order; the old number (use old, period over) and the fax are not read; mobile is the preferred phone.
    assert rest["phones"] == [
        {"number": WORK, "line_type": "unknown", "valid": True},
        {"number": MOBILE, "line_type": "mobile", "valid": True},
    ]
    assert rest["emails"] == ["jim.chalmers@example.com"] and rest["preferred_phone"] == MOBILE
    assert patient.language == "es"  # the preferred communication
    assert exported["id"] == str(patient.pk) and exported["identifier"][0]["value"] == "12345"
    assert exported["telecom"] == [
        {"system": "phone", "value": WORK},
        {"system": "phone", "value": MOBILE, "use": "mobile", "rank": 1},
        {"system": "email", "value": "jim.chalmers@example.com"},
    ]
    assert exported["name"] == [{"use": "usual", "family": "Chalmers", "given": ["Jim"]}]
    assert "birthDate" not in exported  # not stored


def test_prefer_operation_outcome_says_what_was_not_read_and_plain_json_is_accepted(practice, api):
    response = post(api, "/Patient", JIM, content_type="application/json", HTTP_PREFER="return=OperationOutcome")
    body = fhir_json(response, 201)
    OperationOutcome.model_validate(body)
    issues = {(i["expression"][0], i["details"]["coding"][0]["code"]) for i in body["issue"]}
    assert ("Patient.telecom[0]", "no_value") in issues
    assert ("Patient.telecom[3]", "not_current") in issues
    assert ("Patient.telecom[5]", "not_stored") in issues
    not_stored = next(i for i in body["issue"] if i["expression"] == ["Patient"])
    assert all(w in not_stored["diagnostics"] for w in ("birthDate", "gender", "address", "active"))
    assert {i["severity"] for i in body["issue"]} == {"information"}
    again = post(api, "/Patient", JIM, HTTP_PREFER="return=minimal")
    assert (
        again.status_code == 200
        and again.content == b""
        and again["Location"].endswith(str(Patient.objects.get(external_id="12345").pk))
    )


def test_a_round_trip_changes_nothing(practice, api):
    fhir_json(post(api, "/Patient", JIM), 201)
    patient = Patient.objects.get(practice=practice, external_id="12345")
    exported = fhir_json(api.get(f"/fhir/Patient/{patient.pk}"))
    events, points = ledger_size(practice), list(ContactPoint.objects.filter(practice=practice).values())
    rest = api.get(f"/patients/{patient.pk}").json()

    again = post(api, "/Patient", exported, HTTP_PREFER="return=OperationOutcome")
    assert fhir_json(again, 200)["issue"] == [
        {"severity": "information", "code": "informational", "diagnostics": "updated"}
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": exported, "request": {"method": "PUT", "url": "Patient?identifier=12345"}}],
    }
    answer = fhir_json(post(api, "", bundle))
    assert answer["entry"][0]["response"]["status"] == "200 OK" and "outcome" not in answer["entry"][0]["response"]

    reexported = fhir_json(api.get(f"/fhir/Patient/{patient.pk}"))
    assert {k: v for k, v in reexported.items() if k != "meta"} == {k: v for k, v in exported.items() if k != "meta"}
    assert ledger_size(practice) == events
    assert list(ContactPoint.objects.filter(practice=practice).values()) == points
    after = api.get(f"/patients/{patient.pk}").json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {k: v for k, v in rest.items() if k != "updated_at"}
    assert Patient.objects.filter(practice=practice).count() == 1


def test_a_transaction_bundle_imports_several_patients_and_again_changes_nothing(practice, api):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                "resource": JIM,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": person("E-2", "Anne", "Chalmers", [{"system": "sms", "value": "415-555-0133"}]),
                "request": {"method": "PUT", "url": "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|E-2"},
            },
            {
                "resource": person(
                    "E-3",
                    "Bo",
                    "Lee",
                    [{"system": "phone", "value": MOBILE}, {"system": "email", "value": "bo@example.com"}],
                ),
                "request": {"method": "PUT", "url": "Patient?identifier=urn%3Aoid%3A2.16.840.1.113883.19.5%7CE-3"},
            },
        ],
    }
    body = fhir_json(post(api, "", bundle))
    Bundle.model_validate(body)
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 3
    ids = {p.external_id: p for p in Patient.objects.filter(practice=practice)}
    assert set(ids) == {"12345", "E-2", "E-3"}
    for entry, external_id in zip(body["entry"], ["12345", "E-2", "E-3"], strict=True):
        assert entry["response"]["location"] == f"Patient/{ids[external_id].pk}"
        assert fhir_json(api.get(f"/fhir/{entry['response']['location']}"))["identifier"][0]["value"] == external_id
    anne = api.get(f"/patients/{ids['E-2'].pk}").json()
    assert anne["phones"] == [{"number": "+14155550133", "line_type": "mobile", "valid": True}]  # sms: a mobile
    # Jim and Bo share a phone, as a family does: one address, its consent shared.
    assert ContactPoint.objects.filter(practice=practice, address=MOBILE).count() == 1

    events = ledger_size(practice)
    again = fhir_json(post(api, "", bundle))
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 3
    assert ledger_size(practice) == events and Patient.objects.filter(practice=practice).count() == 3


def _bundle(*resources, method="POST"):
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": r, "request": {"method": method, "url": "Patient"}} for r in resources],
    }


def _three_good():
    return [person(f"E-{i}", f"P{i}", "Doe", [{"system": "sms", "value": f"415-555-01{40 + i}"}]) for i in range(3)]


def _bad_phone():
    return person("E-9", "Zed", "Doe", [{"system": "phone", "value": "not a phone"}])


def _with(change):
    resource = copy.deepcopy(JIM)
    change(resource)
    return resource


@pytest.mark.parametrize(
    ("bundle", "field"),
    [
        (_bundle(*_three_good(), _bad_phone()), "entry[3].resource.telecom[0].value"),
        (_bundle(*_three_good(), _with(lambda r: r.update(birthDate="1974-13-25"))), "entry[3].resource.birthDate"),
        (_bundle(*_three_good(), _with(lambda r: r.pop("identifier"))), "entry[3].resource.identifier"),
        (
            _bundle(*_three_good(), {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
            "entry[3].resource",
        ),
        (_bundle(_three_good()[0], _three_good()[0]), "entry[1].resource.identifier[0]"),  # the same patient twice
        (_bundle(*_three_good(), method="DELETE"), "entry[0].request.method"),
        (
            {
                **_bundle(*_three_good()),
                "entry": [
                    {"resource": _three_good()[0], "request": {"method": "PUT", "url": "Patient?identifier=E-7"}}
                ],
            },
            "entry[0].request.url",
        ),
        ({**_bundle(*_three_good()), "type": "batch"}, "type"),
        (_bundle(*_three_good(), {"resourceType": "NoSuchResource"}), "body"),  # no model to name an element by
        ({**_bundle(*_three_good()), "entry": [{"resource": _three_good()[0]}]}, "entry[0].request"),
        (
            _bundle(*_three_good(), _with(lambda r: r["name"][1]["given"].__setitem__(0, "J\udfffim"))),
            "entry[3].resource.name[1].given[0]",
        ),
    ],
)
def test_an_invalid_entry_changes_nothing_and_the_error_names_it(practice, api, bundle, field):
    events = ledger_size(practice)
    response = post(api, "", bundle)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error"]["code"] == "invalid" and body["error"]["field"] == field, body
    assert body["errors"][0] == body["error"]
    assert not Patient.objects.filter(practice=practice).exists() and ledger_size(practice) == events


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        (_with(lambda r: r.pop("identifier")), "identifier"),
        (_with(lambda r: r.update(identifier=[{"use": "old", "value": "A-77"}])), "identifier"),
        (_with(lambda r: r.update(name=[{"family": "Chalmers"}])), "name"),
        (_with(lambda r: r["telecom"][1].update(system="pigeon")), "telecom[1].system"),
        (_with(lambda r: r["telecom"][1].update(rank=0)), "telecom[1].rank"),
        (_with(lambda r: r["telecom"][4].update(value="jim at example")), "telecom[4].value"),
        (_with(lambda r: r["name"][1].update(given=["J" * 101])), "name[1].given[0]"),
        (_with(lambda r: r.update(resourceType="Practitioner")), "resourceType"),
        (_with(lambda r: r.update(unknownElement=1)), "unknownElement"),
        ([JIM], "body"),
    ],
)
def test_an_invalid_patient_is_a_422_naming_its_element_and_creates_nothing(practice, api, resource, field):
    response = post(api, "/Patient", resource)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field, response.json()
    assert not Patient.objects.filter(practice=practice).exists()


def test_a_body_that_is_not_json_or_not_fhir_json_is_refused(practice, api):
    assert post(api, "/Patient", b"{not json").json()["error"]["code"] == "bad_request"
    refused = post(api, "/Patient", JIM, content_type="text/plain")
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "unsupported_media_type"
    assert not Patient.objects.filter(practice=practice).exists()


# --- the sync rules, through FHIR -------------------------------------------------------------------------------


def test_a_fhir_sync_never_undoes_an_opt_out_or_an_unsubscribe(practice, api):
    fhir_json(post(api, "/Patient", JIM), 201)
    patient = Patient.objects.get(external_id="12345")
    assert send_sms_webhook(Client(), body="STOP", sender=MOBILE, sid="SMstop").status_code == 200
    assert api.post("/contacts/opt-out", {"address": "jim.chalmers@example.com", "reason": "asked"}).status_code == 200
    stop = ConsentEvent.objects.get(practice=practice, address=MOBILE, subject="sms", state="opted_out")

    # The EHR sends the patient again, as a Patient and in a transaction: the choices stay, and the answers say so.
    outcome = fhir_json(post(api, "/Patient", JIM, HTTP_PREFER="return=OperationOutcome"))
    kept = {(i["expression"][0], i["details"]["coding"][0]["code"], i["code"]) for i in outcome["issue"]}
    assert ("Patient.telecom[2]", "sms_opted_out", "business-rule") in kept
    assert ("Patient.telecom[4]", "email_unsubscribed", "business-rule") in kept
    answer = fhir_json(post(api, "", _bundle(JIM)))
    entry_outcome = OperationOutcome.model_validate(answer["entry"][0]["response"]["outcome"])
    assert {i.details.coding[0].code for i in entry_outcome.issue} >= {"sms_opted_out", "email_unsubscribed"}

    assert api.get("/contacts/status", address=MOBILE).json()["sms"] == "opted_out"
    assert api.get("/contacts/status", address="jim.chalmers@example.com").json()["email"] == "unsubscribed"
    _, body = searchset(api, "Consent", patient.pk)
    sms = next(c for c in resources(body) if _channel(c) == "sms" and _address(c) == MOBILE)
    assert sms["provision"]["type"] == "deny"
    assert sms["sourceReference"]["identifier"]["value"] == str(stop.seq)  # still the STOP's event


def test_preferences_consentry_keeps_are_not_overwritten_by_a_fhir_sync(practice, api):
    fhir_json(post(api, "/Patient", JIM), 201)
    patient = Patient.objects.get(external_id="12345")
    update_patient(patient=patient, preferred_phone=WORK, source="staff", actor="staff:1")  # as the staff app does
    outcome = fhir_json(post(api, "/Patient", JIM, HTTP_PREFER="return=OperationOutcome"))
    assert ("Patient.telecom[2]", "consentry_keeps_contact_preferences") in {
        (i["expression"][0], i["details"]["coding"][0]["code"]) for i in outcome["issue"]
    }
    assert api.get(f"/patients/{patient.pk}").json()["preferred_phone"] == WORK

    practice.contact_preferences_source = "ehr"  # now the EHR owns it: its rank 1 wins
    practice.save(update_fields=["contact_preferences_source"])
    fhir_json(post(api, "/Patient", JIM))
    assert api.get(f"/patients/{patient.pk}").json()["preferred_phone"] == MOBILE


# --- exports -------------------------------------------------------------------------------------------------------


def _channel(consent: dict) -> str:
    return next(
        c["code"] for cat in consent["category"] for c in cat["coding"] if c["system"] == "urn:consentry:fhir:channel"
    )


def _address(resource: dict) -> str:
    return next(e["valueString"] for e in resource["extension"] if e["url"] == "urn:consentry:fhir:address")


def _rule(consent: dict) -> set[str]:
    return {c["code"] for c in consent["policyRule"]["coding"]}


def test_the_consent_export_is_each_address_consent_with_its_ledger_event(practice, api):
    patient = make_patient(
        practice, "Ava", phones=[(MOBILE, "mobile"), (HOME, "landline")], emails=["ava@example.com"], external_id="A-1"
    )
    assert send_sms_webhook(Client(), body="STOP", sender=MOBILE, sid="SMava").status_code == 200
    assert api.post("/blocks", {"number": HOME, "categories": ["recall"]}).status_code == 201
    stop = ConsentEvent.objects.get(practice=practice, address=MOBILE, subject="sms", state="opted_out")
    block = ConsentEvent.objects.get(practice=practice, address=HOME, subject="block")

    bundle, body = searchset(api, "Consent", patient.pk)
    consents = resources(body)
    for consent in consents:
        Consent.model_validate(consent)
    assert body["total"] == 5
    assert [(_address(c), _channel(c)) for c in consents] == [
        (MOBILE, "sms"),
        (MOBILE, "voice"),
        (HOME, "sms"),
        (HOME, "voice"),
        ("ava@example.com", "email"),
    ]
    for consent in consents:
        assert consent["status"] == "active" and consent["patient"] == {"reference": f"Patient/{patient.pk}"}
        assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
        assert consent["category"][0]["coding"][0] == {
            "system": "http://loinc.org",
            "code": "59284-0",
            "display": "Patient Consent",
        }
        assert consent["policyRule"]["coding"]
        # What the API's own consent status says, the Consent says.
        status = api.get("/contacts/status", address=_address(consent)).json()
        allowed = (
            status["email"] == "subscribed"
            if _channel(consent) == "email"
            else (_channel(consent) == "voice" or status["sms"] == "opted_in")
        )
        assert (consent["provision"]["type"] == "permit") is allowed, (consent, status)

    mobile_sms, _, home_sms, home_voice, email = consents
    assert mobile_sms["provision"]["type"] == "deny" and _rule(mobile_sms) == {"OPTOUT", "opted_out"}
    assert mobile_sms["sourceReference"]["identifier"] == {
        "system": "urn:consentry:fhir:ledger-event",
        "value": str(stop.seq),
    }
    assert datetime.fromisoformat(mobile_sms["provision"]["period"]["start"]) == stop.created_at
    assert datetime.fromisoformat(mobile_sms["dateTime"]) == stop.created_at
    # Never opted out: permitted by default, with no ledger event to name.
    assert home_sms["provision"]["type"] == "permit" and _rule(home_sms) == {"IMPLIED", "opted_in"}
    assert "sourceReference" not in home_sms and "period" not in home_sms["provision"]
    # The practice blocked the number for recalls: calls and texts of that category are denied, since the block.
    for consent in (home_sms, home_voice):
        nested = consent["provision"]["provision"]
        assert nested == [
            {
                "type": "deny",
                "period": {"start": nested[0]["period"]["start"]},
                "code": [{"coding": [{"system": "urn:consentry:fhir:category", "code": "recall"}]}],
            }
        ]
        assert datetime.fromisoformat(nested[0]["period"]["start"]) == block.created_at
    assert home_voice["sourceReference"]["identifier"]["value"] == str(block.seq)
    assert email["provision"]["type"] == "permit" and "sourceReference" not in email

    # START opts the phone back in: permitted, since the START's event, an opt-in.
    assert send_sms_webhook(Client(), body="START", sender=MOBILE, sid="SMava2").status_code == 200
    start = ConsentEvent.objects.filter(practice=practice, address=MOBILE, subject="sms").latest("seq")
    _, body = searchset(api, "Consent", f"Patient/{patient.pk}")  # a reference works as well as an id
    mobile_sms = resources(body)[0]
    assert mobile_sms["provision"]["type"] == "permit" and _rule(mobile_sms) == {"OPTIN", "opted_in"}
    assert mobile_sms["sourceReference"]["identifier"]["value"] == str(start.seq)


def test_a_bounced_email_is_denied_without_being_called_an_opt_out(practice, api):
    from consentry.consent import services as consent_services

    patient = make_patient(practice, "Cy", emails=["cy@example.com"])
    consent_services.record_email_state(
        practice=practice, email="cy@example.com", state="bounced", source="esp_webhook", actor="esp"
    )
    _, body = searchset(api, "Consent", patient.pk)
    (email,) = resources(body)
    assert email["provision"]["type"] == "deny" and _rule(email) == {"bounced"}


def _send(api, patient, content):
    response = api.post(
        "/messages",
        {"kind": "manual", "category": "document_shared", "patient_ids": [str(patient.pk)], "content": content},
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_communication_export_is_the_patient_deliveries(practice, api):
    patient = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=["ava@example.com"])
    first = _send(api, patient, {"email": {"subject": "Forms", "text": "Your forms are ready"}})
    drain_worker()
    assert send_sms_webhook(Client(), body="STOP", sender=MOBILE, sid="SMava").status_code == 200
    second = _send(api, patient, {"sms": "Your forms are ready"})  # to an opted-out phone: skipped

    bundle, body = searchset(api, "Communication", patient.pk)
    communications = resources(body)
    for communication in communications:
        Communication.model_validate(communication)
    rest = api.get(f"/patients/{patient.pk}/deliveries").json()["deliveries"]
    assert [c["id"] for c in communications] == [str(d["id"]) for d in rest]  # newest first, as the API lists them
    by_message = {c["basedOn"][0]["identifier"]["value"]: c for c in communications}
    skipped, emailed = by_message.pop(second), by_message.pop(first)
    (confirmation,) = by_message.values()  # the STOP's confirmation, a keyword reply, waiting for the worker
    assert {"system": "urn:consentry:fhir:kind", "code": "keyword_reply"} in [
        coding for category in confirmation["category"] for coding in category["coding"]
    ]
    assert confirmation["status"] == "in-progress" and "sent" not in confirmation
    assert skipped["status"] == "not-done"
    assert skipped["statusReason"]["coding"] == [{"system": "urn:consentry:fhir:reason", "code": "sms_opted_out"}]
    assert skipped["medium"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
        "code": "SMSWRIT",
    }
    assert "sent" not in skipped
    assert emailed["status"] == "completed" and "statusReason" not in emailed
    assert emailed["medium"][0]["coding"][0]["code"] == "EMAILWRIT" and emailed["sent"]
    assert emailed["basedOn"][0]["identifier"] == {"system": "urn:consentry:fhir:message", "value": first}
    assert emailed["recipient"] == [{"reference": f"Patient/{patient.pk}"}] == [emailed["subject"]]
    assert _address(emailed) == "ava@example.com"
    assert "Your forms are ready" not in json.dumps(body)  # the words stay in Consentry, encrypted
    drain_worker()
    _, body = searchset(api, "Communication", patient.pk)
    assert next(c for c in resources(body) if c["id"] == confirmation["id"])["status"] == "completed"

    # A page at a time: the next link gives the rest, once.
    pages, link = [], f"/api/v1/fhir/Communication?patient={patient.pk}&_count=2"
    while link:
        page = fhir_json(api.client.get(link))
        Bundle.model_validate(page)
        pages.append([c["id"] for c in resources(page)])
        following = [x["url"] for x in page["link"] if x["relation"] == "next"]
        link = f"{urlsplit(following[0]).path}?{urlsplit(following[0]).query}" if following else ""
    assert pages == [[c["id"] for c in communications[:2]], [communications[2]["id"]]]
    refused = api.get("/fhir/Communication", patient=str(patient.pk), _cursor="not-a-cursor")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "_cursor"


# --- tenancy -------------------------------------------------------------------------------------------------------


def test_another_practices_patient_is_a_404_and_an_identifier_is_each_practices_own(practice, api):
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    theirs = make_patient(elm, "Zed", phones=[(MOBILE, "mobile")], external_id="12345")
    for path, params in [
        (f"/fhir/Patient/{theirs.pk}", {}),
        ("/fhir/Consent", {"patient": str(theirs.pk)}),
        ("/fhir/Communication", {"patient": str(theirs.pk)}),
        ("/fhir/Consent", {"patient": f"Patient/{theirs.pk}"}),
        ("/fhir/Patient/not-an-id", {}),
        ("/fhir/Consent", {"patient": "not-an-id"}),
        ("/fhir/Communication", {"patient": "Patient/12"}),
    ]:
        response = api.get(path, **params)
        assert response.status_code == 404, (path, params, response.content)
        assert response.json()["error"]["code"] == "not_found" and "Zed" not in response.content.decode()
    # The same identifier at this practice is this practice's own patient: Elm's is untouched.
    fhir_json(post(api, "/Patient", JIM), 201)
    assert Patient.objects.get(pk=theirs.pk).first_name == "Zed"
    assert Patient.objects.get(practice=practice, external_id="12345").first_name == "Jim"
    assert fhir_json(Api(elm_key).get(f"/fhir/Patient/{theirs.pk}"))["name"][0]["given"] == ["Zed"]


# --- whatever arrives, never a 500 ---------------------------------------------------------------------------------

texts = st.text(max_size=20) | st.text(st.characters(categories=["Cs", "Cc", "L", "N", "P", "Z"]), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=10,
)
# Elements of a Patient, each either as FHIR shapes it or as anything at all.
telecoms = st.fixed_dictionaries(
    {},
    optional={
        "system": st.sampled_from(["phone", "sms", "email", "fax", "pager"]) | texts,
        "value": st.sampled_from(["(415) 555-0132", "+14155550199", "a@example.com", "555", ""]) | texts,
        "use": st.sampled_from(["home", "work", "mobile", "old", "temp"]) | texts,
        "rank": st.integers(-2, 3) | json_values,
        "period": st.fixed_dictionaries({}, optional={"end": st.sampled_from(["2014", "2099-05", "2020-01-01"])}),
    },
)
patients = st.fixed_dictionaries(
    {"resourceType": st.just("Patient")},
    optional={
        "identifier": st.lists(
            st.fixed_dictionaries({}, optional={"value": texts, "use": st.sampled_from(["usual", "old"]) | texts}),
            max_size=2,
        )
        | json_values,
        "name": st.lists(
            st.fixed_dictionaries({}, optional={"given": st.lists(texts, max_size=2), "family": texts}), max_size=2
        )
        | json_values,
        "telecom": st.lists(telecoms, max_size=4) | json_values,
        "communication": json_values,
        "birthDate": texts,
        "extension": json_values,
    },
)
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=patients | json_values)
def test_random_patients_never_500(practice, api, body):
    assert post(api, "/Patient", json.dumps(body)).status_code in (200, 201, 400, 422)


@FUZZ
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {"resource": patients},
            optional={
                "request": st.fixed_dictionaries(
                    {"method": st.sampled_from(["POST", "PUT", "GET"]) | texts},
                    optional={"url": st.sampled_from(["Patient", "Patient?identifier=x|1", "Patient?x=1"]) | texts},
                )
            },
        ),
        max_size=3,
    )
)
def test_random_transactions_never_500_and_a_refused_one_changes_nothing(practice, api, entries):
    before = Patient.objects.filter(practice=practice).count(), ledger_size(practice)
    response = post(api, "", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert response.status_code in (200, 400, 422)
    if response.status_code != 200:
        assert (Patient.objects.filter(practice=practice).count(), ledger_size(practice)) == before


def test_a_language_not_applied_is_never_silent(practice, api):
    fhir_json(post(api, "/Patient", JIM), 201)
    dutch = _with(lambda r: r.update(communication=[{"language": {"coding": [{"code": "nl"}]}, "preferred": True}]))
    outcome = fhir_json(post(api, "/Patient", dutch, HTTP_PREFER="return=OperationOutcome"))
    kept = [i["expression"] for i in outcome["issue"] if "language_kept" in json.dumps(i.get("details"))]
    language = Patient.objects.get(practice=practice, external_id="12345").language
    # The patient's language changes, or the answer says it was not applied, and where.
    assert language == "nl" or kept == [["Patient.communication[0].language"]], outcome


def test_a_transaction_has_at_most_100_entries(practice, api):
    people = [person(f"E-{i}", "P", "Doe", []) for i in range(101)]
    response = post(api, "", _bundle(*people))
    assert response.status_code == 422 and response.json()["error"]["field"] == "entry"
    assert fhir_json(post(api, "", _bundle(*people[:100])))["entry"][99]["response"]["status"] == "201 Created"


def test_the_documents_fhir_examples_are_valid_r4(db):
    document = Client().get("/api/v1/openapi.json").json()
    models = {"Patient": FhirPatient, "Bundle": Bundle, "OperationOutcome": OperationOutcome}
    checked = 0
    for operations in document["paths"].values():
        for operation in operations.values():
            bodies = [operation.get("requestBody", {})] + list(operation["responses"].values())
            for content in (b.get("content", {}).get(FHIR_JSON) for b in bodies):
                if content is not None:
                    example = content["example"]
                    models[example["resourceType"]].model_validate(example)
                    checked += 1
    assert checked == 8  # two requests, six answers
