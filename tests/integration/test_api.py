"""The REST contract: auth, tenancy, patients, status, blocks, messages, bad input."""

import json

import pytest

from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, EmailState, Source
from consentry.messaging.models import Delivery, Message
from consentry.patients.models import Patient
from tests.conftest import Api, make_practice

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


def _patient(api, **overrides):
    body = {
        "first_name": "Ava",
        "last_name": "Rivera",
        "phones": [{"number": "(415) 555-0111", "line_type": "mobile"}],
        "emails": ["Ava.Rivera@Example.com"],
        **overrides,
    }
    response = api.post("/patients", body)
    assert response.status_code == 201, response.content
    return response.json()


def _message(api, patient_ids, kind="automation", category="appointment_reminder", content=None, **more):
    return api.post(
        "/messages",
        {
            "kind": kind,
            "category": category,
            "patient_ids": patient_ids,
            "content": content or {"sms": "See you tomorrow at 9", "email": {"subject": "Reminder", "text": "See you"}},
            **more,
        },
    )


def test_requests_without_a_valid_key_are_refused(client):
    assert client.get("/api/v1/blocks").status_code == 401
    assert client.get("/api/v1/blocks", HTTP_AUTHORIZATION="Bearer csk_nope").status_code == 401


def test_create_patient_normalizes_addresses(api):
    body = _patient(
        api, preferred_phone="415-555-0111", timezone="America/Chicago", external_id="pms-1", marketing_consent="yes"
    )
    assert body["phones"] == [{"number": PHONE, "line_type": "mobile", "valid": True}]
    assert body["emails"] == ["ava.rivera@example.com"]
    assert body["preferred_phone"] == PHONE
    assert api.get(f"/patients/{body['id']}").json() == body


def test_patients_sharing_a_phone_share_one_contact_point(api, practice):
    a = _patient(api)
    b = _patient(api, first_name="Ben")
    assert a["phones"] == b["phones"]
    assert practice.contact_points.filter(address=PHONE).count() == 1


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"phones": [{"number": "12", "line_type": "mobile"}]}, "phones[0].number"),
        ({"phones": [{"number": "not a phone", "line_type": "mobile"}]}, "phones[0].number"),
        ({"emails": ["nobody-at-example"]}, "emails[0]"),
        ({"first_name": "  "}, "first_name"),
        ({"preferred_phone": "+14155550999"}, "preferred_phone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_invalid_patient_input_is_a_422_naming_the_field_and_writes_nothing(api, overrides, field):
    before = (Patient.objects.count(), ConsentEvent.objects.count())
    response = api.post("/patients", {"first_name": "Ava", **overrides})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert (Patient.objects.count(), ConsentEvent.objects.count()) == before


@pytest.mark.parametrize(
    "overrides",
    [{"marketing_consent": "maybe"}, {"phones": [{"number": PHONE, "line_type": "fax"}]}, {"first_name": None}],
)
def test_schema_violations_are_422_naming_the_field(api, overrides):
    response = api.post("/patients", {"first_name": "Ava", **overrides})
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert response.json()["error"] == response.json()["errors"][0]
    assert any(f.split(".")[0].split("[")[0] in overrides for f in fields), fields


def test_malformed_json_is_a_clear_client_error(api):
    response = api.client.post("/api/v1/patients", "{not json", content_type="application/json")
    assert response.status_code in (400, 422)


def test_oversized_bodies_are_refused_with_413_before_parsing(api, settings):
    settings.MAX_REQUEST_BYTES = 1000
    response = api.post("/patients", {"first_name": "A" * 5000})
    assert response.status_code == 413
    assert not Patient.objects.exists()


def test_another_practices_objects_answer_404(api):
    other_practice, other_key = make_practice(name="Elm", number="+14155550900")
    other = Api(other_key)
    patient = _patient(api)
    message = _message(api, [patient["id"]]).json()
    assert other.get(f"/patients/{patient['id']}").status_code == 404
    assert other.get(f"/messages/{message['id']}").status_code == 404
    response = _message(other, [patient["id"]])
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "patient_ids"


def test_contact_status_reports_sms_email_and_blocks(api, practice):
    _patient(api)
    assert api.get("/contacts/status", address="(415) 555-0111").json() == {
        "address": PHONE,
        "sms": "opted_in",
        "email": None,
        "blocked_categories": [],
    }
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    assert api.post("/blocks", {"number": PHONE, "categories": ["recall"]}).status_code == 201
    assert api.get("/contacts/status", address=PHONE).json() == {
        "address": PHONE,
        "sms": "opted_out",
        "email": None,
        "blocked_categories": ["recall"],
    }
    consent.record_email_state(
        practice=practice,
        email="ava.rivera@example.com",
        state=EmailState.BOUNCED,
        source=Source.ESP_WEBHOOK,
        actor="esp",
    )
    assert api.get("/contacts/status", address="AVA.Rivera@example.com").json() == {
        "address": "ava.rivera@example.com",
        "sms": None,
        "email": "bounced",
        "blocked_categories": None,
    }
    response = api.get("/contacts/status", address="nonsense")
    assert response.status_code == 422 and response.json()["error"]["field"] == "address"


def test_blocks_can_be_added_updated_and_removed(api):
    assert api.post("/blocks", {"number": "415 555 0111", "categories": ["recall"]}).json() == {
        "number": PHONE,
        "categories": ["recall"],
    }
    assert api.put(f"/blocks/{PHONE}", {"categories": ["recall", "survey"]}).json()["categories"] == [
        "recall",
        "survey",
    ]
    assert api.get("/blocks").json() == [{"number": PHONE, "categories": ["recall", "survey"]}]
    assert api.delete(f"/blocks/{PHONE}").status_code == 204
    assert api.get("/blocks").json() == []
    assert api.delete(f"/blocks/{PHONE}").status_code == 404
    assert ConsentEvent.objects.filter(subject="block").count() == 3


def test_blocks_refuse_unknown_categories_and_bad_numbers(api):
    response = api.post("/blocks", {"number": PHONE, "categories": ["recalls"]})
    assert response.status_code == 422 and response.json()["error"]["field"] == "categories"
    response = api.post("/blocks", {"number": "abc", "categories": ["recall"]})
    assert response.status_code == 422 and response.json()["error"]["field"] == "number"
    assert not ConsentEvent.objects.filter(subject="block").exists()


def test_create_message_returns_one_delivery_per_recipient_and_channel_decided(api, practice):
    ava = _patient(api)
    landline = _patient(
        api,
        first_name="Dora",
        phones=[{"number": "+14155550122", "line_type": "landline"}],
        emails=["dora@example.com"],
    )
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    response = _message(
        api,
        [ava["id"], landline["id"]],
        content={"sms": "Reminder", "voice": "This is a reminder", "email": {"subject": "R", "text": "x"}},
    )
    assert response.status_code == 202
    body = response.json()
    by_patient = {}
    for d in body["deliveries"]:
        by_patient.setdefault(d["patient_id"], []).append((d["channel"], d["address"], d["status"], d["reason"]))
    assert by_patient[ava["id"]] == [("sms", PHONE, "skipped", "sms_opted_out"), ("voice", PHONE, "pending", None)]
    assert by_patient[landline["id"]] == [
        ("sms", "+14155550122", "skipped", "no_text_capable_phone"),
        ("voice", "+14155550122", "pending", None),
    ]
    assert api.get(f"/messages/{body['id']}").json()["deliveries"] == body["deliveries"]


def test_manual_transactional_message_warns_about_missing_marketing_consent_before_anything_is_queued(api):
    from django_tasks_db.models import DBTaskResult

    eli = _patient(api, marketing_consent="no")
    ava = _patient(api, first_name="Ava", marketing_consent="yes")
    refused = _message(api, [eli["id"], ava["id"]], kind="manual", content={"sms": "Your forms are ready"})
    assert refused.status_code == 409
    assert refused.json()["warnings"] == {eli["id"]: ["no_marketing_consent"]}
    assert not Message.objects.exists() and not Delivery.objects.exists() and not DBTaskResult.objects.exists()
    # Acknowledged, it goes (to both), and still says what it warned about.
    response = _message(
        api, [eli["id"], ava["id"]], kind="manual", content={"sms": "Your forms are ready"}, acknowledge_warnings=True
    )
    assert response.status_code == 202
    body = response.json()
    assert [d["status"] for d in body["deliveries"]] == ["pending", "pending"]
    assert body["warnings"] == {eli["id"]: ["no_marketing_consent"]}
    # A message without warnings needs no acknowledgement.
    assert _message(api, [ava["id"]], kind="manual", content={"sms": "Hi"}).status_code == 202


@pytest.mark.parametrize(
    "change, field",
    [
        ({"kind": "blast"}, "kind"),
        ({"category": "gossip"}, "category"),
        ({"content": {}}, "content"),
        ({"content": {"sms": "   "}}, "content"),
        ({"content": {"email": {"subject": "", "text": "hi"}}}, "content.email.subject"),
        ({"content": {"sms": "x" * 1601}}, "content.sms"),
        ({"content": {"in_app": "hi"}}, "content.in_app"),
        ({"patient_ids": ["00000000-0000-0000-0000-000000000000"]}, "patient_ids"),
        ({"patient_ids": ["not-a-uuid"]}, "patient_ids"),
    ],
)
def test_bad_message_requests_are_422_naming_the_field_and_write_nothing(api, change, field):
    patient = _patient(api)
    request = {"kind": "automation", "category": "recall", "patient_ids": [patient["id"]], "content": {"sms": "hi"}}
    request.update(change)
    response = api.post("/messages", request)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    assert not Message.objects.exists() and not Delivery.objects.exists()


def test_unknown_content_channels_are_refused(api):
    patient = _patient(api)
    response = api.post(
        "/messages", {"kind": "manual", "category": "recall", "patient_ids": [patient["id"]], "content": {"fax": "hi"}}
    )
    assert response.status_code == 422
    assert not Message.objects.exists()


def test_openapi_and_docs_are_served(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = json.loads(spec.content)["paths"]
    for path in ("/api/v1/patients", "/api/v1/messages", "/api/v1/contacts/status", "/api/v1/blocks"):
        assert path in paths
    assert client.get("/api/v1/docs").status_code == 200


def test_patient_preferences_can_be_changed_and_drive_decisions(api):
    # This practice's EHR keeps the contact preferences: its syncs set them.
    assert api.patch("/practice", {"contact_preferences_source": "ehr"}).status_code == 200
    ava = _patient(
        api, phones=[{"number": "+14155550122", "line_type": "landline"}, {"number": PHONE, "line_type": "mobile"}]
    )
    response = api.client.patch(
        f"/api/v1/patients/{ava['id']}",
        json.dumps(
            {
                "preferred_phone": "+14155550122",
                "notification_overrides": {"appointment_reminder": {"sms": False}},
                "channel_opt_outs": ["email"],
                "do_not_contact": True,
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["preferred_phone"] == "+14155550122" and body["do_not_contact"] is True
    assert body["notification_overrides"] == {"appointment_reminder": {"sms": False}}
    assert ConsentEvent.objects.filter(subject="do_not_contact", state="on").count() == 1
    planned = _message(api, [ava["id"]], kind="notification").json()["deliveries"]
    assert [(d["channel"], d["status"], d["reason"]) for d in planned] == [
        ("sms", "skipped", "channel_off_for_type"),
        ("email", "skipped", "channel_opted_out_by_patient"),
    ]
    planned = _message(api, [ava["id"]], content={"sms": "x", "voice": "y"}).json()["deliveries"]
    assert planned[0]["reason"] == "do_not_contact"
    cleared = api.client.patch(
        f"/api/v1/patients/{ava['id']}", json.dumps({"preferred_phone": None}), content_type="application/json"
    ).json()
    assert cleared["preferred_phone"] is None and cleared["do_not_contact"] is True


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"notification_overrides": {"gossip": {"sms": True}}}, "notification_overrides.gossip"),
        ({"notification_overrides": {"recall": {"fax": True}}}, "notification_overrides.recall"),
        ({"notification_overrides": {"system": {"in_app": False}}}, "notification_overrides.system"),
        ({"channel_opt_outs": ["pigeon"]}, "channel_opt_outs"),
        ({"preferred_phone": "+14155550999"}, "preferred_phone"),
    ],
)
def test_bad_preference_changes_are_422_and_change_nothing(api, patch, field):
    ava = _patient(api)
    response = api.client.patch(
        f"/api/v1/patients/{ava['id']}", json.dumps({"do_not_contact": True, **patch}), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert api.get(f"/patients/{ava['id']}").json() == ava
    assert not ConsentEvent.objects.filter(subject="do_not_contact", state="on").exists()


def test_the_notification_grid_starts_from_the_defaults_and_admins_change_it(api):
    grid = {c["key"]: c["notification_channels"] for c in api.get("/categories").json()}
    assert grid["appointment_reminder"] == ["sms", "email"]
    assert grid["message_received"] == ["in_app", "email"]
    assert len(grid) == 13
    updated = api.put("/categories/appointment_reminder", {"notification_channels": ["email"]}).json()
    assert updated["notification_channels"] == ["email"]
    ava = _patient(api)
    planned = _message(api, [ava["id"]], kind="notification").json()["deliveries"]
    assert [(d["channel"], d["status"], d["reason"]) for d in planned] == [
        ("sms", "skipped", "channel_off_for_type"),
        ("email", "pending", None),
    ]
    assert api.put("/categories/appointment_reminder", {"notification_channels": ["fax"]}).status_code == 422
    assert api.put("/categories/nope", {"notification_channels": ["sms"]}).status_code == 404


def test_practices_can_add_their_own_categories(api):
    created = api.post("/categories", {"key": "flu_clinic", "marketing": True, "notification_channels": ["email"]})
    assert created.status_code == 201
    assert api.post("/categories", {"key": "flu_clinic"}).status_code == 422
    assert api.post("/categories", {"key": "Bad Key!"}).status_code == 422
    eli = _patient(api, marketing_consent="no")
    planned = _message(api, [eli["id"]], kind="broadcast", category="flu_clinic", content={"sms": "Flu shots!"}).json()
    assert planned["deliveries"][0]["reason"] == "no_marketing_consent"


def test_a_repeated_post_with_the_same_idempotency_key_sends_once(api):
    from consentry.providers.models import SandboxMessage
    from tests.conftest import drain_worker

    ava = _patient(api)
    body = {"kind": "manual", "category": "document_shared", "patient_ids": [ava["id"]], "content": {"sms": "Sign"}}
    first = api.post("/messages", body, HTTP_IDEMPOTENCY_KEY="order-42")
    drain_worker()
    again = api.post("/messages", body, HTTP_IDEMPOTENCY_KEY="order-42")
    drain_worker()
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["deliveries"][0]["status"] == "delivered"  # the current status of the first send
    assert Message.objects.count() == 1 and SandboxMessage.objects.count() == 1
    other = api.post("/messages", body, HTTP_IDEMPOTENCY_KEY="order-43")
    assert other.json()["id"] != first.json()["id"]


def test_reusing_an_idempotency_key_for_another_request_is_refused(api):
    ava = _patient(api)
    body = {"kind": "manual", "category": "document_shared", "patient_ids": [ava["id"]], "content": {"sms": "Sign"}}
    api.post("/messages", body, HTTP_IDEMPOTENCY_KEY="k1")
    response = api.post("/messages", {**body, "content": {"sms": "Something else"}}, HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert Message.objects.count() == 1
    too_long = api.post("/messages", body, HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert too_long.status_code == 422 and Message.objects.count() == 1


def test_idempotency_keys_belong_to_one_practice(api):
    _, other_key = make_practice(name="Elm", number="+14155550900")
    other = Api(other_key)
    ava, bea = _patient(api), _patient(other, first_name="Bea")
    a = api.post(
        "/messages",
        {"kind": "manual", "category": "recall", "patient_ids": [ava["id"]], "content": {"sms": "x"}},
        HTTP_IDEMPOTENCY_KEY="same",
    )
    b = other.post(
        "/messages",
        {"kind": "manual", "category": "recall", "patient_ids": [bea["id"]], "content": {"sms": "x"}},
        HTTP_IDEMPOTENCY_KEY="same",
    )
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


def test_the_openapi_document_lists_every_vocabulary(client):
    """Integrators see the allowed values: each vocabulary is one enum, used by the models and the schemas."""
    from consentry.consent.models import Source
    from consentry.vocabulary import Channel, Kind, LineType, MarketingConsent, Reason, Status

    document = client.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]

    def values(schema_name, field):
        spec = schemas[schema_name]["properties"][field]
        for option in [spec, *spec.get("anyOf", []), *spec.get("allOf", [])]:
            if "$ref" in option:
                return set(schemas[option["$ref"].rsplit("/", 1)[1]]["enum"])
            if "enum" in option:
                return set(option["enum"])
        raise AssertionError(f"{schema_name}.{field} lists no values: {spec}")

    assert values("MessageIn", "kind") == {"automation", "broadcast", "manual", "notification"}
    assert values("MessageOut", "kind") == set(Kind)
    assert values("DeliveryOut", "channel") == set(Channel)
    assert values("DeliveryOut", "status") == set(Status)
    assert values("DeliveryOut", "reason") == set(Reason) >= {"outcome_unknown", "not_dispatched"}
    assert values("PhoneIn", "line_type") == values("PhoneOut", "line_type") == set(LineType)
    assert values("PatientIn", "marketing_consent") == set(MarketingConsent)
    assert values("EventOut", "source") == set(Source.values)


def test_every_change_made_through_the_api_names_the_key_that_made_it(api, practice):
    from consentry.consent.models import ConsentEvent
    from consentry.messaging.models import Message

    patient = _patient(api, marketing_consent="yes", phones=[{"number": "+14155550111", "line_type": "mobile"}])
    assert api.post("/blocks", {"number": "+14155550111", "categories": ["recall"]}).status_code == 201
    assert (
        api.client.patch(
            f"/api/v1/patients/{patient['id']}", '{"do_not_contact": true}', content_type="application/json"
        ).status_code
        == 200
    )
    _message(api, [patient["id"]], kind="manual", content={"sms": "Forms to sign"})
    actors = set(ConsentEvent.objects.filter(practice=practice).values_list("actor", flat=True))
    assert actors == {"api:initial"}  # the key's label; never a bare "api"
    assert set(Message.objects.values_list("actor", flat=True)) == {"api:initial"}


def test_labels_and_the_last_visit_are_set_and_changed_over_the_api(api):
    created = _patient(api, tags=["Diabetic", "diabetic", "New parent"], last_visit_on="2026-03-01")
    assert (created["tags"], created["last_visit_on"]) == (["diabetic", "new parent"], "2026-03-01")
    changed = api.patch(f"/patients/{created['id']}", {"tags": [], "last_visit_on": None}).json()
    assert (changed["tags"], changed["last_visit_on"]) == ([], None)
    refused = api.patch(f"/patients/{created['id']}", {"tags": ["x" * 41]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "tags"
