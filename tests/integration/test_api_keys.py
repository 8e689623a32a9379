"""API keys with scopes: created, listed and revoked over the API, and every operation's scope
enforced (403), table-driven over the OpenAPI document."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client

from consentry.patients.models import ApiKey
from consentry.patients.practices import create_api_key
from tests.conftest import Api, make_practice

pytestmark = pytest.mark.django_db

# The scope each operation needs: read for what only reads, send for what sends a message, manage
# for every other change. Written out here, not derived: the test holds the code to it.
SCOPES = {
    "GET /api/v1/patients": "read",
    "GET /api/v1/patients/{patient_id}": "read",
    "DELETE /api/v1/patients/{patient_id}": "manage",
    "PUT /api/v1/patients/by-external-id/{external_id}": "manage",
    "POST /api/v1/patients": "manage",
    "PATCH /api/v1/patients/{patient_id}": "manage",
    "PUT /api/v1/patients/{patient_id}/due": "manage",
    "GET /api/v1/recalls": "read",
    "GET /api/v1/contacts/status": "read",
    "GET /api/v1/contacts/history": "read",
    "POST /api/v1/contacts/opt-out": "manage",
    "POST /api/v1/contacts/resubscribe-email": "send",
    "GET /api/v1/blocks": "read",
    "POST /api/v1/blocks": "manage",
    "PUT /api/v1/blocks/{number}": "manage",
    "DELETE /api/v1/blocks/{number}": "manage",
    "GET /api/v1/categories": "read",
    "POST /api/v1/categories": "manage",
    "PUT /api/v1/categories/{key}": "manage",
    "POST /api/v1/messages": "send",
    "GET /api/v1/messages/{message_id}": "read",
    "GET /api/v1/messages": "read",
    "GET /api/v1/messages/{message_id}/deliveries.csv": "read",
    "GET /api/v1/messages/{message_id}/deliveries": "read",
    "GET /api/v1/deliveries": "read",
    "GET /api/v1/patients/{patient_id}/deliveries": "read",
    "GET /api/v1/conversations": "read",
    "GET /api/v1/conversations/{conversation_id}": "read",
    "POST /api/v1/conversations/{conversation_id}/replies": "send",
    "POST /api/v1/conversations/{conversation_id}/opt-out": "manage",
    "GET /api/v1/practice": "read",
    "PATCH /api/v1/practice": "manage",
    "GET /api/v1/keys": "read",
    "POST /api/v1/keys": "manage",
    "DELETE /api/v1/keys/{key_id}": "manage",
    "GET /api/v1/push/public-key": "read",
    "GET /api/v1/patients/{patient_id}/notices": "read",
    "GET /api/v1/patients/{patient_id}/push-subscriptions": "read",
    "POST /api/v1/patients/{patient_id}/push-subscriptions": "manage",
    "DELETE /api/v1/patients/{patient_id}/push-subscriptions/{subscription_id}": "manage",
    "POST /api/v1/patients/{patient_id}/portal-link": "manage",
    "GET /api/v1/webhook-endpoints": "read",
    "POST /api/v1/webhook-endpoints": "manage",
    "GET /api/v1/webhook-endpoints/{endpoint_id}": "read",
    "DELETE /api/v1/webhook-endpoints/{endpoint_id}": "manage",
    "GET /api/v1/webhook-endpoints/{endpoint_id}/deliveries": "read",
    "GET /api/v1/locations": "read",
    "POST /api/v1/locations": "manage",
    "GET /api/v1/locations/{location_id}": "read",
    "PATCH /api/v1/locations/{location_id}": "manage",
    "DELETE /api/v1/locations/{location_id}": "manage",
    "POST /api/v1/fhir": "manage",
    "POST /api/v1/fhir/Patient": "manage",
    "GET /api/v1/fhir/Patient/{patient_id}": "read",
    "GET /api/v1/fhir/Consent": "read",
    "GET /api/v1/fhir/Communication": "read",
}
EVERY = ["read", "send", "manage"]
PARAMS = {"external_id": "EHR-1", "key_id": "1", "number": "%2B14155550100", "key": "recall", "subscription_id": "1"}


def operations(client) -> list[str]:
    document = client.get("/api/v1/openapi.json").json()
    return sorted(f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops)


def call(client: Client, operation: str, key: str):
    method, path = operation.split(" ", 1)
    url = re.sub(r"\{(\w+)\}", lambda m: PARAMS.get(m.group(1), str(uuid.uuid4())), path)
    return client.generic(method, url, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_the_scope_table_covers_every_operation_of_the_api(practice):
    assert sorted(SCOPES) == operations(Client())


@pytest.mark.parametrize("operation", sorted(SCOPES))
def test_every_operation_needs_its_scope_and_no_other(practice, operation):
    needed = SCOPES[operation]
    _, without = create_api_key(practice=practice, label="without", scopes=[s for s in EVERY if s != needed])
    _, only = create_api_key(practice=practice, label="only", scopes=[needed])
    refused = call(Client(), operation, without)
    assert refused.status_code == 403, (operation, refused.status_code, refused.content[:200])
    assert needed in refused.json()["error"]["message"]
    allowed = call(Client(), operation, only)
    assert allowed.status_code not in (401, 403), (operation, allowed.status_code, allowed.content[:200])


def test_keys_are_created_listed_and_revoked_and_the_secret_shows_once(practice, api):
    created = api.post("/keys", {"label": "EHR sync", "scopes": ["read", "send"]})
    assert created.status_code == 201
    body = created.json()
    assert body["scopes"] == ["read", "send"] and body["key"].startswith("csk_")
    listed = api.get("/keys")
    assert listed.status_code == 200 and body["key"] not in listed.content.decode()
    assert [k["label"] for k in listed.json()] == ["initial", "EHR sync"]
    assert ApiKey.objects.get(pk=body["id"]).key_hash != body["key"]
    new = Api(body["key"])
    assert new.get("/practice").status_code == 200
    assert new.post("/keys", {"label": "x", "scopes": ["manage"]}).status_code == 403  # not a manage key
    assert api.delete(f"/keys/{body['id']}").status_code == 204
    assert new.get("/practice").status_code == 401
    assert next(k for k in api.get("/keys").json() if k["id"] == body["id"])["revoked_at"]


@pytest.mark.parametrize(
    "payload",
    [{"label": "x", "scopes": []}, {"label": "x", "scopes": ["admin"]}, {"label": "x" * 101, "scopes": ["read"]}, {}],
)
def test_a_bad_key_request_is_refused_and_creates_nothing(practice, api, payload):
    before = ApiKey.objects.count()
    assert api.post("/keys", payload).status_code == 422
    assert ApiKey.objects.count() == before


def test_another_practices_key_cannot_be_revoked_or_seen(practice, api):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    theirs, secret = create_api_key(practice=elm, label="Elm EHR")
    assert api.delete(f"/keys/{theirs.pk}").status_code == 404
    assert api.delete(f"/keys/{2**63 - 1}").status_code == 404
    assert api.delete("/keys/99999999999999999999999").status_code == 422
    assert "Elm EHR" not in json.dumps(api.get("/keys").json())
    assert Api(secret).get("/practice").status_code == 200
