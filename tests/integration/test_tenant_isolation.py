"""No practice ever reaches another's data: every API operation, every way of knocking, and the patient pages.

Practices A and B each have a patient, a category of their own, blocks, a
sent message, an in-app notice, a push subscription and a conversation, and
one person (the same phone and email address) is a patient of both. B has
also opted that phone and address out and asked for a resubscribe email.

Every operation of the OpenAPI document (read from ``/api/v1/openapi.json``,
so an endpoint added tomorrow is covered tomorrow) is called with B's real
object ids and a body that is valid for B's objects:

- with no key, or a malformed, revoked or near-miss one: 401, every operation;
- with practice A's valid key: 404 for every operation that names one of B's
  objects (never a 403, which would confirm that it exists), and on A's own
  collections (lists, creation, the consent of an address) A sees and changes
  only A's data;
- no answer ever carries B's data that the request did not carry itself, and
  not one row of B's changes.

The pages that answer without an API key (email unsubscribe and resubscribe,
the patient portal), the provider webhooks and the sandbox are checked the
same way: a link made for B shows and changes only B, a forged one is a 400
or a 404, and a webhook signed for one practice never acts for the other.

``make_tenant`` also gives the API fuzz (test_api_fuzz.py) a practice with
one object of every kind.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.utils import timezone

from consentry.consent import ledger, tokens
from consentry.consent.models import ConsentEvent, ResubscribeRequest
from consentry.conversations.models import Conversation
from consentry.events.models import WebhookEndpoint
from consentry.messaging.models import Delivery, Message
from consentry.patients.models import ApiKey, Category, Location, Patient, Practice
from consentry.patients.practices import create_api_key, issue_api_key
from tests.conftest import (
    TWILIO_TOKEN,
    Api,
    drain_worker,
    make_patient,
    make_practice,
    read_received,
    send_sms_webhook,
    summary,
    twilio_signature,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
SHARED_PHONE = "+14155550111"  # one person, a patient of both practices
SHARED_EMAIL = "sam@example.com"
B_TWILIO_TOKEN = "elm-clinic-auth-token-fedcba9876543210"


# --- two practices with one object of every kind -------------------------------------------------------------------


@dataclass
class Tenant:
    practice: Practice
    key: str
    api: Api
    patient: Patient
    own_phone: str
    own_email: str
    category: str  # a category of its own (the built-in ones every practice has)
    blocked: list[str]  # what its blocks of both phones name
    message_id: str
    conversation_id: str
    subscription_id: int
    spare_key_id: int  # a second API key of the practice (the first is ``key``)
    endpoint: str
    webhook_endpoint_id: str
    texts: list[str] = field(default_factory=list)  # words only this practice's data holds
    location_id: str = ""  # a location of its own, with its own texting number
    location_number: str = ""

    @property
    def markers(self) -> list[str]:
        """What would show that an answer carries this practice's data."""
        return [
            str(self.practice.pk),
            self.practice.name,
            self.practice.texting_number,
            str(self.patient.pk),
            self.patient.first_name,
            self.own_phone,
            self.own_email,
            self.category,
            self.message_id,
            self.conversation_id,
            self.endpoint,
            self.webhook_endpoint_id,
            *self.texts,
            self.location_id,
            self.location_number,
        ]


def _ok(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.json() if response.content else {}


def push_keys() -> dict:
    """The keys of a browser's PushSubscription: a P-256 point and a 16-byte secret, base64url."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return {"p256dh": b64(point), "auth": b64(os.urandom(16))}


def make_tenant(
    name: str,
    number: str,
    first_name: str,
    own_phone: str,
    own_email: str,
    category: str,
    blocked: list[str],
    twilio_token: str = TWILIO_TOKEN,
) -> Tenant:
    """A practice with a patient (its own phone and email, and the shared ones), and one object of every kind."""
    practice, key = make_practice(name, number)
    if twilio_token != TWILIO_TOKEN:
        practice.twilio_auth_token = twilio_token
        practice.save(update_fields=["twilio_auth_token"])
    api = Api(key)
    spare_key, _ = create_api_key(practice=practice, label=f"{first_name}'s spare key")
    patient = make_patient(
        practice,
        first_name,
        phones=[(own_phone, "mobile"), (SHARED_PHONE, "mobile")],
        emails=[own_email, SHARED_EMAIL],
        external_id="EHR-7",  # the same external id at both practices: each EHR numbers its own patients
    )
    _ok(api.post("/categories", {"key": category, "notification_channels": ["email"]}), 201)
    _ok(api.put(f"/patients/{patient.pk}/due", {"category": "recall", "due_on": "2027-01-15"}), 200)
    for phone in (own_phone, SHARED_PHONE):
        _ok(api.post("/blocks", {"number": phone, "categories": blocked}), 201)
    sms, notice, inbound = f"{first_name}, your forms are ready", f"Dr. Lee answered {first_name}", f"{first_name} here"
    message = _ok(
        api.post(
            "/messages",
            {
                "kind": "manual",
                "category": "document_shared",
                "patient_ids": [str(patient.pk)],
                "content": {"sms": sms, "email": {"subject": "Forms", "text": sms}},
            },
        ),
        202,
    )
    _ok(
        api.post(
            "/messages",
            {
                "kind": "notification",
                "category": "message_received",
                "patient_ids": [str(patient.pk)],
                "content": {"in_app": notice},
            },
        ),
        202,
    )
    drain_worker()
    assert (
        send_sms_webhook(
            Client(), body=inbound, sender=own_phone, to=number, sid=f"SM{first_name}", token=twilio_token
        ).status_code
        == 200
    )
    endpoint = f"https://push.example.com/{first_name.lower()}"
    subscription = _ok(
        api.post(f"/patients/{patient.pk}/push-subscriptions", {"endpoint": endpoint, "keys": push_keys()}), 201
    )
    webhook_url = f"https://ehr.{first_name.lower()}.example/events"
    webhook = _ok(api.post("/webhook-endpoints", {"url": webhook_url, "events": ["consent.changed"]}), 201)
    location_number = number[:-2] + "50"
    location = _ok(api.post("/locations", {"name": f"{first_name}'s North", "texting_number": location_number}), 201)
    return Tenant(
        location_id=location["id"],
        location_number=location_number,
        spare_key_id=spare_key.pk,
        practice=practice,
        key=key,
        api=api,
        patient=patient,
        own_phone=own_phone,
        own_email=own_email,
        category=category,
        blocked=blocked,
        message_id=message["id"],
        conversation_id=str(Conversation.objects.get(practice=practice, phone=own_phone).pk),
        subscription_id=subscription["id"],
        endpoint=endpoint,
        webhook_endpoint_id=webhook["id"],
        texts=[sms, notice, inbound, webhook_url, webhook["secret"]],
    )


@pytest.fixture
def a(db) -> Tenant:
    return make_tenant(
        "Oak Clinic", "+14155550100", "Ottilie", "+14155550121", "ottilie@example.com", "oak_newsletter", ["recall"]
    )


@pytest.fixture
def b(a) -> Tenant:
    b = make_tenant(
        "Elm Clinic",
        "+14155550200",
        "Berenike",
        "+14155550122",
        "berenike@example.com",
        "elm_lab_results",
        ["survey"],
        twilio_token=B_TWILIO_TOKEN,
    )
    # B's own consent decisions about the shared person, which A must never see or undo.
    _ok(b.api.post("/contacts/opt-out", {"address": SHARED_PHONE, "reason": "asked at the desk"}), 200)
    _ok(b.api.post("/contacts/opt-out", {"address": SHARED_EMAIL, "reason": "asked at the desk"}), 200)
    _ok(b.api.post("/contacts/resubscribe-email", {"email": SHARED_EMAIL}), 202)
    drain_worker()
    return b


def rows_of(practice: Practice) -> dict[str, list[dict]]:
    """Every row of every table of the service that belongs to this practice, as stored.

    Tables are found by their ``practice`` column, or one foreign key away
    from it (a delivery's events, a conversation's entries, a patient's push
    subscriptions), so a table added later is compared too.
    """
    snapshot = {}
    for model in apps.get_models():
        if not model.__module__.startswith("consentry."):
            continue
        lookup = _practice_lookup(model)
        if lookup is not None:
            snapshot[model._meta.label] = list(model.objects.filter(**{lookup: practice.pk}).order_by("pk").values())
    return snapshot


def _practice_lookup(model) -> str | None:
    if model is Practice:
        return "pk"
    names = {f.name for f in model._meta.concrete_fields}
    if "practice" in names or "practice_id" in names:
        return "practice" if "practice" in names else "practice_id"
    for f in model._meta.concrete_fields:
        if f.is_relation and any(g.name == "practice" for g in f.related_model._meta.concrete_fields):
            return f"{f.name}__practice"
    return None  # a table of the whole service (the worker's heartbeat, the senders' pace)


def assert_unchanged(before: dict, practice: Practice, what: str) -> None:
    after = rows_of(practice)
    changed = [table for table in before if before[table] != after[table]]
    assert not changed, f"{what} changed {practice.name}'s rows in {changed}"


def assert_no_leak(tenant: Tenant, response, request_text: str, what: str) -> None:
    """The answer holds none of the tenant's data, except what the request itself carried."""
    text = response.content.decode("utf-8", "replace")
    leaked = [m for m in tenant.markers if m and m in text and m not in request_text]
    assert not leaked, f"{what} answered {response.status_code} with {tenant.practice.name}'s {leaked}: {text[:300]}"


# --- every operation of the API, and what it is sent ----------------------------------------------------------------


def operations() -> list[tuple[str, str, dict]]:
    """(label, path, operation) of every operation of the OpenAPI document, e.g. "GET /patients/{patient_id}"."""
    document = Client().get(f"{API}/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete", "head", "options", "trace"):
                short = path.removeprefix(API)
                found.append((f"{method.upper()} {short}", short, operation))
    assert found, "the OpenAPI document lists no operation"
    return found


@dataclass
class Call:
    body: dict | None = None
    query: dict = field(default_factory=dict)


NOTHING = lambda b: Call()  # noqa: E731

# What each operation is sent: a plausible request for B's objects (the path parameters are B's, from PATH_VALUES).
# An operation that is not here fails every test below, by name: a new endpoint must say what it is sent.
REQUESTS: dict[str, Callable[[Tenant], Call]] = {
    "POST /patients": lambda b: Call(
        {"first_name": "Cy", "phones": [{"number": SHARED_PHONE}], "emails": [SHARED_EMAIL]}
    ),
    "GET /patients/{patient_id}": NOTHING,
    "PATCH /patients/{patient_id}": lambda b: Call(
        {"do_not_contact": True, "marketing_consent": "no", "channel_opt_outs": ["email"]}
    ),
    "GET /contacts/status": lambda b: Call(query={"address": SHARED_PHONE}),
    "GET /contacts/history": lambda b: Call(query={"address": SHARED_PHONE}),
    "POST /contacts/opt-out": lambda b: Call({"address": SHARED_EMAIL, "reason": "asked by phone"}),
    "POST /contacts/resubscribe-email": lambda b: Call({"email": SHARED_EMAIL}),
    "GET /blocks": NOTHING,
    "GET /patients": lambda b: Call(query={"limit": 500}),
    "GET /messages": lambda b: Call(query={"limit": 500}),
    "GET /messages/{message_id}/deliveries.csv": NOTHING,
    "GET /messages/{message_id}/deliveries": NOTHING,
    "GET /deliveries": lambda b: Call(query={"limit": 500}),
    "GET /patients/{patient_id}/deliveries": NOTHING,
    "PUT /patients/by-external-id/{external_id}": lambda b: Call({"first_name": "Taken", "last_name": "Over"}),
    "DELETE /patients/{patient_id}": NOTHING,
    "GET /keys": NOTHING,
    "POST /keys": lambda b: Call({"label": "Reports", "scopes": ["read"]}),
    "DELETE /keys/{key_id}": NOTHING,
    "POST /blocks": lambda b: Call({"number": SHARED_PHONE, "categories": [b.category]}),
    "PUT /blocks/{number}": lambda b: Call({"categories": ["marketing"]}),
    "DELETE /blocks/{number}": NOTHING,
    "GET /categories": NOTHING,
    "POST /categories": lambda b: Call({"key": b.category, "notification_channels": ["sms"]}),
    "PUT /categories/{key}": lambda b: Call({"notification_channels": ["sms"], "quiet_hours_exempt": True}),
    "POST /messages": lambda b: Call(
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [str(b.patient.pk)],
            "content": {"sms": "Results are in"},
        }
    ),
    "GET /messages/{message_id}": NOTHING,
    "GET /conversations": lambda b: Call(query={"limit": 500}),
    "PUT /patients/{patient_id}/due": lambda b: Call({"category": "recall", "due_on": "2027-01-15"}),
    "GET /recalls": lambda b: Call(query={"category": "recall", "due_before": "2100-01-01"}),
    "GET /conversations/{conversation_id}": NOTHING,
    "POST /conversations/{conversation_id}/replies": lambda b: Call({"body": "See you Tuesday"}),
    "POST /conversations/{conversation_id}/opt-out": NOTHING,
    "GET /practice": NOTHING,
    "PATCH /practice": lambda b: Call({"name": "Renamed Clinic", "frequency_caps": True}),
    "GET /push/public-key": NOTHING,
    "POST /patients/{patient_id}/push-subscriptions": lambda b: Call(
        {"endpoint": "https://push.example.com/new", "keys": push_keys()}
    ),
    "GET /patients/{patient_id}/push-subscriptions": NOTHING,
    "DELETE /patients/{patient_id}/push-subscriptions/{subscription_id}": NOTHING,
    "GET /patients/{patient_id}/notices": NOTHING,
    "POST /patients/{patient_id}/portal-link": NOTHING,
    "GET /webhook-endpoints": NOTHING,
    "POST /webhook-endpoints": lambda b: Call({"url": "https://ehr.example.com/events", "events": ["consent.changed"]}),
    "GET /webhook-endpoints/{endpoint_id}": NOTHING,
    "DELETE /webhook-endpoints/{endpoint_id}": NOTHING,
    "GET /webhook-endpoints/{endpoint_id}/deliveries": NOTHING,
    "POST /fhir/Patient": lambda b: Call(fhir_patient(b)),
    "POST /fhir": lambda b: Call(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": fhir_patient(b), "request": {"method": "PUT", "url": "Patient?identifier=EHR-7"}}],
        }
    ),
    "GET /fhir/Patient/{patient_id}": NOTHING,
    "GET /fhir/Consent": lambda b: Call(query={"patient": str(b.patient.pk)}),
    "GET /fhir/Communication": lambda b: Call(query={"patient": str(b.patient.pk)}),
    "GET /locations": NOTHING,
    "POST /locations": lambda b: Call({"name": "Annex", "texting_number": "+14155550177"}),
    "GET /locations/{location_id}": NOTHING,
    "PATCH /locations/{location_id}": lambda b: Call({"name": "Taken Over", "timezone": "America/Denver"}),
    "DELETE /locations/{location_id}": NOTHING,
}


def fhir_patient(b: Tenant) -> dict:
    """A FHIR Patient of B's patient's external id, with the shared person's addresses."""
    return {
        "resourceType": "Patient",
        "identifier": [{"value": b.patient.external_id}],
        "name": [{"family": "Over", "given": ["Taken"]}],
        "telecom": [{"system": "sms", "value": SHARED_PHONE}, {"system": "email", "value": SHARED_EMAIL}],
    }


# Path parameters, by name: B's real objects.
PATH_VALUES: dict[str, Callable[[Tenant], str]] = {
    "patient_id": lambda b: str(b.patient.pk),
    "message_id": lambda b: b.message_id,
    "conversation_id": lambda b: b.conversation_id,
    "subscription_id": lambda b: str(b.subscription_id),
    "number": lambda b: b.own_phone,  # blocked at B only
    "key": lambda b: b.category,  # B's own category
    "key_id": lambda b: str(b.spare_key_id),
    "external_id": lambda b: b.patient.external_id,
    "endpoint_id": lambda b: b.webhook_endpoint_id,
    "location_id": lambda b: b.location_id,
}

# Operations that answer without a key on purpose, each with its reason. None: GET /push/public-key shows no
# practice data and could be public, but asks for a key like every other operation. The OpenAPI document and
# /api/v1/docs are no operations: they show the API's shape, never data, and are public (see the last test).
PUBLIC: dict[str, str] = {}


@dataclass
class Request:
    label: str
    method: str
    url: str
    body: str

    def send(self, authorization: str | None):
        headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
        return Client().generic(self.method, self.url, self.body, content_type="application/json", **headers)

    @property
    def text(self) -> str:
        return f"{unquote(self.url)} {self.body}"


def requests_for(b: Tenant) -> list[Request]:
    """One request per operation of the document, aimed at B's objects; fails naming what the tables lack."""
    built, missing = [], []
    for label, path, operation in operations():
        if label not in REQUESTS:
            missing.append(f"{label}: add what it is sent to REQUESTS")
            continue
        call = REQUESTS[label](b)
        params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        unknown = [p for p in params if p not in PATH_VALUES]
        if unknown:
            missing.append(f"{label}: add B's value of path parameter(s) {unknown} to PATH_VALUES")
            continue
        url = path.format(**{p: quote(PATH_VALUES[p](b), safe="") for p in params})
        url = f"{API}{url}" + (f"?{urlencode(call.query)}" if call.query else "")
        body = json.dumps(call.body) if call.body is not None else ""
        built.append(Request(label, label.split()[0], url, body))
    assert not missing, "operations of the OpenAPI document this module does not cover:\n" + "\n".join(missing)
    return built


def isolated(check: Callable[[], None]) -> None:
    """Run one request and its checks in a savepoint that is rolled back: every operation meets the same data."""
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


def test_every_operation_of_the_api_is_in_the_tables(b):
    requests = requests_for(b)
    stale = set(REQUESTS) - {r.label for r in requests}
    assert not stale, f"REQUESTS names operations the API no longer has: {sorted(stale)}"
    a_key_stale = set(A_GETS) - set(REQUESTS)
    assert not a_key_stale, f"A_GETS names operations the API no longer has: {sorted(a_key_stale)}"


def test_every_request_of_the_table_reaches_b_with_b_own_key(b):
    """The control: B's key gets a success for every request that names B's objects.

    So A's 404 below means "not yours", never "malformed" or "no such id".
    """
    failures = []
    for request in requests_for(b):
        if "{" not in request.label:
            continue

        def check(request=request):
            response = request.send(f"Bearer {b.key}")
            if not 200 <= response.status_code < 300:
                failures.append(f"{request.label}: {response.status_code} {response.content[:200]!r}")

        isolated(check)
    assert not failures, "requests that do not reach B's objects with B's key:\n" + "\n".join(failures)


def _malformed_keys(b: Tenant) -> dict[str, str | None]:
    revoked = issue_api_key(practice=b.practice, label="old")
    ApiKey.objects.filter(practice=b.practice, label="old").update(revoked_at=timezone.now())
    off_by_one = b.key[:-1] + ("A" if b.key[-1] != "A" else "B")
    return {
        "no Authorization header": None,
        "an empty header": "",
        "Bearer and no key": "Bearer ",
        "the key prefix only": "Bearer csk_",
        "garbage": "Bearer !!not-a-key!!",
        "another scheme": "Basic " + base64.b64encode(b"elm:password").decode(),
        "B's key under another scheme": f"Token {b.key}",
        "B's key one character off": f"Bearer {off_by_one}",
        "B's revoked key": f"Bearer {revoked}",
        "a very long key": "Bearer csk_" + "a" * 20_000,
    }


def test_without_a_valid_key_every_operation_is_refused_with_401(request, b):
    keys = _malformed_keys(b)
    before = rows_of(b.practice)
    failures, tried = [], 0
    for call in requests_for(b):
        for variant, authorization in keys.items():
            response = call.send(authorization)
            tried += 1
            expected = 200 if call.label in PUBLIC else 401
            if response.status_code != expected:
                failures.append(f"{call.label} with {variant}: {response.status_code}, expected {expected}")
            assert_no_leak(b, response, call.text + (authorization or ""), f"{call.label} with {variant}")
    assert not failures, "\n".join(failures)
    assert_unchanged(before, b.practice, "requests without a valid key")
    summary(
        request,
        f"Tenant isolation: {tried} requests ({tried // len(keys)} operations x {len(keys)} missing or "
        f"malformed keys), all refused with 401",
    )


# --- practice A's key on B's objects --------------------------------------------------------------------------------


def _a_blocks_only(a, b, body):
    assert body == [{"number": p, "categories": a.blocked} for p in sorted([a.own_phone, SHARED_PHONE])], body


def _a_categories_only(a, b, body):
    keys = {c["key"] for c in body}
    assert a.category in keys and b.category not in keys, keys
    assert keys == set(Category.objects.filter(practice=a.practice).values_list("key", flat=True))


def _a_conversations_only(a, b, body):
    assert [c["id"] for c in body] == [a.conversation_id], body


def _a_status_of_the_shared_phone(a, b, body):
    # B opted the phone out and blocked it for other categories: A sees its own consent only.
    assert (body["sms"], body["blocked_categories"]) == ("opted_in", a.blocked), body


def _a_history_of_the_shared_phone(a, b, body):
    mine = set(ledger_hashes(a.practice))
    assert body["events"] and {e["hash"] for e in body["events"]} <= mine, body
    assert body["status"]["sms"] == "opted_in", body


def ledger_hashes(practice):
    return ConsentEvent.objects.filter(practice=practice).values_list("hash", flat=True)


def _created_for_a(a, b, body):
    assert Patient.objects.get(pk=body["id"]).practice_id == a.practice.pk


def _opted_out_at_a(a, b, body):
    # B unsubscribed the address long ago; at A it was subscribed and is unsubscribed now, in A's ledger.
    assert body["changed"] is True and body["status"]["email"] == "unsubscribed", body
    assert body["event"]["hash"] in set(ledger_hashes(a.practice))


def _refuses_b_category(a, b, body):
    assert body["error"]["field"] == "categories" and b.category in body["error"]["message"], body


def _unknown_patient(a, b, body):
    assert body["error"]["field"] == "patient_ids", body


def _a_block_of_its_own(a, b, body):
    assert body == {"number": b.own_phone, "categories": ["marketing"]}, body


def _a_category_of_its_own(a, b, body):
    assert Category.objects.get(practice=a.practice, key=b.category).notification_channels == ["sms"]


def _a_messages_only(a, b, body):
    listed = {m["id"] for m in body["messages"]}
    assert a.message_id in listed and listed <= _a_message_ids(a), body


def _a_deliveries_only(a, b, body):
    assert body["deliveries"] and {d["message_id"] for d in body["deliveries"]} <= _a_message_ids(a), body


def _a_message_ids(a) -> set[str]:
    return {str(pk) for pk in Message.objects.filter(practice=a.practice).values_list("pk", flat=True)}


def _a_patients_only(a, b, body):
    assert {p["id"] for p in body["patients"]} == {str(a.patient.pk)}, body


def _a_own_patient_of_that_external_id(a, b, body):
    assert body["id"] == str(a.patient.pk) and body["first_name"] == "Taken", body


def _a_keys_only(a, b, body):
    assert {k["id"] for k in body} == set(ApiKey.objects.filter(practice=a.practice).values_list("pk", flat=True))


def _a_key_of_its_own(a, b, body):
    assert ApiKey.objects.get(pk=body["id"]).practice_id == a.practice.pk


def _a_practice(a, b, body):
    assert body["id"] == str(a.practice.pk) and body["texting_number"] == a.practice.texting_number, body


def _a_renamed(a, b, body):
    _a_practice(a, b, body)
    assert Practice.objects.get(pk=a.practice.pk).name == "Renamed Clinic"


def _a_recalls_only(a, b, body):
    assert [r["id"] for r in body] == [str(a.patient.pk)], body


def _no_practice_data(a, b, body):
    assert set(body) == {"enabled", "public_key"}, body


def _a_webhook_endpoints_only(a, b, body):
    assert [e["id"] for e in body] == [a.webhook_endpoint_id], body


def _a_webhook_endpoint_of_its_own(a, b, body):
    assert WebhookEndpoint.objects.get(pk=body["id"]).practice_id == a.practice.pk


def _a_own_fhir_patient_of_that_identifier(a, b, body):
    assert (body["resourceType"], body["id"], body["name"][0]["given"]) == ("Patient", str(a.patient.pk), ["Taken"])


def _a_own_patient_in_the_transaction(a, b, body):
    assert [e["response"]["location"] for e in body["entry"]] == [f"Patient/{a.patient.pk}"], body


def _a_locations_only(a, b, body):
    assert [loc["id"] for loc in body] == [a.location_id], body


def _a_location_of_its_own(a, b, body):
    assert Location.objects.get(pk=body["id"]).practice_id == a.practice.pk


def _no_such_patient(a, b, body):
    assert body["error"]["code"] == "not_found", body


def _not_unsubscribed_at_a(a, b, body):
    # At B the address is unsubscribed and may be sent a resubscribe email; at A it is subscribed.
    assert body["error"]["code"] == "not_unsubscribed" and "subscribed" in body["error"]["message"], body
    assert not ResubscribeRequest.objects.filter(practice=a.practice).exists()


# What A's key gets from the operations that do not name one of B's objects (lists, creation, an address's
# consent), and the proof that A saw and changed only A's data. Every other operation names B's object in its
# path and must answer 404. Two operations with a path parameter are here: a block is a number on the practice's
# own list, so A putting B's number on A's list is A's own business (PUT /blocks/{number}); and an external id
# is the practice's own EHR's, so A's PUT by B's patient's external id updates A's own patient of that id.
A_GETS: dict[str, tuple[int, Callable]] = {
    "POST /patients": (201, _created_for_a),
    "GET /contacts/status": (200, _a_status_of_the_shared_phone),
    "GET /contacts/history": (200, _a_history_of_the_shared_phone),
    "POST /contacts/opt-out": (200, _opted_out_at_a),
    "POST /contacts/resubscribe-email": (409, _not_unsubscribed_at_a),
    "GET /blocks": (200, _a_blocks_only),
    "GET /patients": (200, _a_patients_only),
    "GET /messages": (200, _a_messages_only),
    "GET /deliveries": (200, _a_deliveries_only),
    "PUT /patients/by-external-id/{external_id}": (200, _a_own_patient_of_that_external_id),
    "GET /keys": (200, _a_keys_only),
    "POST /keys": (201, _a_key_of_its_own),
    "POST /blocks": (422, _refuses_b_category),  # B's own category is no category of A's
    "PUT /blocks/{number}": (200, _a_block_of_its_own),
    "GET /categories": (200, _a_categories_only),
    "POST /categories": (201, _a_category_of_its_own),  # A may have a category of the same name
    "POST /messages": (422, _unknown_patient),  # B's patient is an unknown patient to A
    "GET /conversations": (200, _a_conversations_only),
    "GET /recalls": (200, _a_recalls_only),
    "GET /practice": (200, _a_practice),
    "PATCH /practice": (200, _a_renamed),
    "GET /push/public-key": (200, _no_practice_data),
    "GET /webhook-endpoints": (200, _a_webhook_endpoints_only),
    "POST /webhook-endpoints": (201, _a_webhook_endpoint_of_its_own),
    # A FHIR import is keyed by the practice's own EHR's identifier, as the PUT by external id is.
    "POST /fhir/Patient": (200, _a_own_fhir_patient_of_that_identifier),
    "POST /fhir": (200, _a_own_patient_in_the_transaction),
    # A search names B's patient in its query: as for an object in a path, a 404.
    "GET /fhir/Consent": (404, _no_such_patient),
    "GET /fhir/Communication": (404, _no_such_patient),
    "GET /locations": (200, _a_locations_only),
    "POST /locations": (201, _a_location_of_its_own),
}


def test_practice_a_key_gets_404_for_every_object_of_b_and_only_its_own_data_elsewhere(request, a, b):
    before = rows_of(b.practice)
    failures, names_b, own = [], 0, 0
    for call in requests_for(b):
        if call.label in A_GETS:
            status, proof = A_GETS[call.label]
            own += 1
        elif "{" in call.label:
            status, proof = 404, None
            names_b += 1
        else:
            failures.append(f"{call.label}: add what A's key gets to A_GETS (it names no object of B's)")
            continue

        def check(call=call, status=status, proof=proof):
            response = call.send(f"Bearer {a.key}")
            if response.status_code != status:
                failures.append(f"{call.label}: {response.status_code}, expected {status}: {response.content[:200]!r}")
                return
            assert_no_leak(b, response, call.text, f"{call.label} with A's key")
            if proof is not None:
                proof(a, b, response.json() if response.content else None)
            assert_unchanged(before, b.practice, f"{call.label} with A's key")

        isolated(check)
    assert not failures, "\n".join(failures)
    assert_unchanged(before, b.practice, "practice A's requests")
    summary(
        request,
        f"Tenant isolation: practice A's key got 404 for all {names_b} operations that name B's objects "
        f"and saw only its own data in the {own} others; B's rows unchanged",
    )


# --- the pages and webhooks that answer without an API key ----------------------------------------------------------


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


def _page(client, method, url, **data):
    return getattr(client, method)(url, data) if data else getattr(client, method)(url)


def test_a_link_made_for_b_shows_and_changes_only_b_and_a_forged_one_is_400_or_404(a, b):
    a_before = rows_of(a.practice)
    request_id = ResubscribeRequest.objects.get(practice=b.practice).pk
    links = {
        "unsubscribe": f"/email/unsubscribe/{tokens.unsubscribe_token(b.practice.pk, SHARED_EMAIL)}",
        "resubscribe": f"/email/resubscribe/{tokens.resubscribe_token(request_id, SHARED_EMAIL)}",
        "portal": f"/portal/{tokens.portal_token(b.patient.pk)}",
    }
    forms = {
        "unsubscribe": {"List-Unsubscribe": "One-Click"},
        "resubscribe": {},
        "portal": {"resubscribe": SHARED_EMAIL},
    }
    for kind, url in links.items():
        for method in ("get", "post"):
            response = _page(Client(), method, url, **forms[kind])
            assert response.status_code in (200, 429), (kind, method, response.status_code)
            page = response.content.decode()
            assert b.practice.name in page, (kind, method)
            assert_no_leak(a, response, url, f"{method.upper()} B's {kind} page")
    # What B's links did, they did at B: the address is subscribed again there, after B's own confirmation.
    assert ledger.address_status(b.practice.pk, SHARED_EMAIL).email == "subscribed"
    assert_unchanged(a_before, a.practice, "B's links")

    b_before = rows_of(b.practice)
    forged = {
        "unsubscribe": [
            _tampered(links["unsubscribe"].rsplit("/", 1)[1]),
            tokens.resubscribe_token(request_id, SHARED_EMAIL),
            tokens.unsubscribe_token("not-a-practice", SHARED_EMAIL),
            "x" * 3000,
            "%00",
            tokens.portal_token(b.patient.pk),
        ],
        "resubscribe": [
            _tampered(links["resubscribe"].rsplit("/", 1)[1]),
            tokens.resubscribe_token(request_id, a.own_email),  # B's request, another address
            tokens.resubscribe_token(10**9, SHARED_EMAIL),
            tokens.unsubscribe_token(b.practice.pk, SHARED_EMAIL),
        ],
        "portal": [
            _tampered(links["portal"].rsplit("/", 1)[1]),
            tokens.unsubscribe_token(b.practice.pk, SHARED_EMAIL),
            tokens.resubscribe_token(request_id, ""),
        ],
    }
    prefixes = {"unsubscribe": "/email/unsubscribe/", "resubscribe": "/email/resubscribe/", "portal": "/portal/"}
    for kind, bad_tokens in forged.items():
        for token in bad_tokens:
            for method in ("get", "post"):
                url = prefixes[kind] + token
                response = _page(Client(), method, url, **forms[kind])
                assert response.status_code in (400, 404), (kind, method, token[:40], response.status_code)
                assert_no_leak(a, response, url, f"forged {kind} link")
                assert_no_leak(b, response, url, f"forged {kind} link")
    assert_unchanged(a_before, a.practice, "forged links")
    assert_unchanged(b_before, b.practice, "forged links")


@pytest.mark.filterwarnings(
    "ignore::anymail.exceptions.AnymailInsecureWebhookWarning", "ignore::anymail.exceptions.AnymailNotSupportedWarning"
)
def test_a_webhook_signed_for_one_practice_never_acts_for_the_other(a, b, settings):
    settings.CONSENTRY_PUBLIC_URL = ""
    before = {t.practice.pk: rows_of(t.practice) for t in (a, b)}
    url = "http://testserver/webhooks/twilio/sms"

    def sms(to, token, sender=SHARED_PHONE, body="START"):
        params = {
            "From": sender,
            "To": to,
            "Body": body,
            "MessageSid": "SMforged",
            "AccountSid": "AC1",
            "NumMedia": "0",
        }
        return Client().post(
            "/webhooks/twilio/sms", params, HTTP_X_TWILIO_SIGNATURE=twilio_signature(url, params, token)
        )

    # START would opt the shared phone back in at B: only B's own signature may say so.
    assert sms(b.practice.texting_number, TWILIO_TOKEN).status_code == 403  # A's token, B's number
    assert sms(a.practice.texting_number, B_TWILIO_TOKEN).status_code == 403  # B's token, A's number
    assert (
        Client()
        .post(
            "/webhooks/twilio/sms",
            {"From": SHARED_PHONE, "To": b.practice.texting_number, "Body": "START", "MessageSid": "SMx"},
        )
        .status_code
        == 403
    )
    ref = (
        Delivery.objects.filter(practice=b.practice).exclude(provider_ref="").values_list("provider_ref", flat=True)[0]
    )
    status = {"MessageSid": ref, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    status_url = "http://testserver/webhooks/twilio/status"
    for token in (TWILIO_TOKEN, "", "x" * 40):
        signature = twilio_signature(status_url, status, token) if token else ""
        assert Client().post("/webhooks/twilio/status", status, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403

    # The ESP's webhooks: refused without the configured secret, and without the ESP's credentials once it is set.
    event = [
        {
            "event": "spamreport",
            "email": SHARED_EMAIL,
            "sg_message_id": ref,
            "sg_event_id": "e1",
            "timestamp": 1700000000,
        }
    ]
    mail = {
        "headers": f"Subject: unsubscribe {tokens.unsubscribe_token(a.practice.pk, SHARED_EMAIL)}\n",
        "to": "unsubscribe@example.com",
    }
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "WEBHOOK_SECRET"}
    assert (
        Client()
        .post("/webhooks/anymail/sendgrid/tracking/", json.dumps(event), content_type="application/json")
        .status_code
        == 403
    )
    assert Client().post("/webhooks/anymail/sendgrid/inbound/", mail).status_code == 403
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "sendgrid:secret"}
    wrong = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"sendgrid:guess").decode()}
    assert Client().post(
        "/webhooks/anymail/sendgrid/tracking/", json.dumps(event), content_type="application/json", **wrong
    ).status_code in (400, 403)
    assert Client().post("/webhooks/anymail/sendgrid/inbound/", mail, **wrong).status_code in (400, 403)

    for tenant in (a, b):
        assert_unchanged(before[tenant.practice.pk], tenant.practice, "forged webhooks")

    # B's own signature works, and acts at B only.
    assert sms(b.practice.texting_number, B_TWILIO_TOKEN).status_code == 200
    assert read_received() == 1  # the worker reads what the webhook stored
    assert ledger.address_status(b.practice.pk, SHARED_PHONE).sms == "opted_in"
    assert_unchanged(before[a.practice.pk], a.practice, "B's signed webhook")


def test_outside_a_demo_the_sandbox_and_the_index_show_no_practice_data(a, b, settings):
    settings.DEMO_MODE, settings.DEBUG = False, False
    before = {t.practice.pk: rows_of(t.practice) for t in (a, b)}
    for method, url, data in [
        ("get", "/sandbox/", {}),
        ("get", "/sandbox/outbox", {}),
        ("get", f"/sandbox/outbox?to={quote(SHARED_PHONE)}", {}),
        (
            "post",
            "/sandbox/reply",
            {"form": "new", "from": SHARED_PHONE, "practice": str(b.practice.pk), "body": "START"},
        ),
    ]:
        response = _page(Client(), method, url, **data)
        assert response.status_code == 404, (url, response.status_code)
        for tenant in (a, b):
            assert_no_leak(tenant, response, url + json.dumps(data), f"{method.upper()} {url}")
    for url in ("/", "/healthz", f"{API}/openapi.json", f"{API}/docs"):
        response = Client().get(url)
        assert response.status_code == 200, url
        for tenant in (a, b):
            assert_no_leak(tenant, response, url, f"GET {url}")
    for tenant in (a, b):
        assert_unchanged(before[tenant.practice.pk], tenant.practice, "the sandbox outside a demo")
