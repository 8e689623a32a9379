"""Signed outbound events: endpoints registered over the API, events sent by the real worker to a
receiver on loopback that verifies each one with the recipe of docs/webhooks.md.

Every event here comes from the real action (a STOP through Twilio's signed
webhook, a status callback, a reply, a staff opt-out over the API), and
reaches the receiver over HTTP through the task queue (``drain_worker``).
Retries are reached by moving the clock past their backoff.
"""

from __future__ import annotations

import io
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from consentry.events.models import WebhookDelivery, WebhookEndpoint
from consentry.events.tasks import ATTEMPTS, RETRY_DELAYS
from consentry.messaging.models import Delivery
from consentry.patients.practices import create_api_key
from tests.conftest import Api, drain_worker, make_patient, make_practice, send_sms_webhook, twilio_signature
from tests.fakes.webhook_receiver import start_receiver, stop_receiver, verify_by_hand

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
EVERY = ["consent.changed", "delivery.status_changed", "message.received", "optout.flagged"]


@pytest.fixture
def receiver(settings):
    """The practice's system on this machine: loopback addresses allowed, as an operator would for an EHR on
    the practice's own network."""
    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = True
    fake = start_receiver()
    yield fake
    stop_receiver(fake)


@pytest.fixture
def patient(practice):
    return make_patient(practice, first_name="Ava", phones=[(PHONE, "mobile")])


def register(api, receiver, path="/hooks", events=EVERY, status=201) -> dict:
    response = api.post("/webhook-endpoints", {"url": receiver.endpoint(path), "events": events})
    assert response.status_code == status, response.content
    body = response.json()
    if status == 201:
        receiver.secrets[path] = body["secret"]
    return body


def log(api, endpoint, **params) -> list[dict]:
    response = api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", **params)
    assert response.status_code == 200, response.content
    return response.json()["deliveries"]


def later(seconds: float):
    """The clock moved on by ``seconds`` (and ticking), so that the backoff's tasks are due."""
    return time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True)


# --- registration ----------------------------------------------------------------------------------------------------


def test_an_endpoint_is_registered_and_its_secret_is_shown_once_and_stored_encrypted(api, receiver):
    created = register(api, receiver, events=["message.received", "consent.changed"])
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["consent.changed", "message.received"]  # each once, in their own order
    assert created["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}

    listed = api.get("/webhook-endpoints")
    one = api.get(f"/webhook-endpoints/{created['id']}")
    assert listed.status_code == 200 and one.status_code == 200
    assert [e["id"] for e in listed.json()] == [created["id"]]
    assert created["secret"] not in listed.content.decode() + one.content.decode()
    assert one.json()["url"] == receiver.endpoint("/hooks")

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {WebhookEndpoint._meta.db_table}")
        [(raw,)] = cursor.fetchall()
    assert created["secret"].removeprefix("whsec_") not in raw
    assert WebhookEndpoint.objects.get().secret == created["secret"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "https://ehr.example.com/hooks", "events": ["consent.changed", "patient.created"]}, "events"),
        ({"url": "https://ehr.example.com/hooks", "events": []}, "events"),
        ({"url": "https://ehr.example.com/hooks"}, "events"),
        ({"url": "ftp://ehr.example.com/hooks", "events": ["consent.changed"]}, "url"),
        ({"url": "https://user:pw@ehr.example.com/hooks", "events": ["consent.changed"]}, "url"),
        ({"url": "not a url", "events": ["consent.changed"]}, "url"),
        ({"url": "https://", "events": ["consent.changed"]}, "url"),
        ({"url": "https://ehr.example.com:99999/hooks", "events": ["consent.changed"]}, "url"),
        ({"url": "https://ehr.example.com/" + "a" * 2048, "events": ["consent.changed"]}, "url"),
        ({"url": "http://ehr.example.com/hooks", "events": ["consent.changed"]}, "url"),  # https only
    ],
)
def test_a_bad_endpoint_is_a_422_naming_its_field_and_nothing_is_stored(api, body, field):
    response = api.post("/webhook-endpoints", body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"].split(".")[0] == field  # events.1: the second one
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://api.localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10:8443/hooks",
        "https://[::1]/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://ehr.clinic.test/hooks",  # a name that resolves to a private address (below)
    ],
)
def test_an_endpoint_on_this_machine_or_a_private_network_is_refused_unless_the_operator_allows_it(
    api, settings, monkeypatch, url
):
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "ehr.clinic.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.20.30.40", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = False
    refused = api.post("/webhook-endpoints", {"url": url, "events": ["consent.changed"]})
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["field"] == "url"
    assert "CONSENTRY_WEBHOOKS_ALLOW_PRIVATE" in refused.json()["error"]["message"]
    assert not WebhookEndpoint.objects.exists()

    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = True
    assert api.post("/webhook-endpoints", {"url": url, "events": ["consent.changed"]}).status_code == 201


def test_the_same_url_twice_and_more_than_ten_endpoints_are_refused(api, receiver):
    register(api, receiver, "/0")
    assert register(api, receiver, "/0", status=422)["error"]["field"] == "url"
    for i in range(1, 10):
        register(api, receiver, f"/{i}")
    refused = register(api, receiver, "/10", status=422)
    assert "10 endpoints" in refused["error"]["message"]
    assert WebhookEndpoint.objects.count() == 10


def test_another_practices_endpoint_is_a_404_and_never_listed(api, receiver):
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    theirs = register(Api(elm_key), receiver, "/elm")
    for path in (f"/webhook-endpoints/{theirs['id']}", f"/webhook-endpoints/{theirs['id']}/deliveries"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api.delete(f"/webhook-endpoints/{theirs['id']}").status_code == 404
    assert api.get("/webhook-endpoints/not-a-uuid").status_code == 404
    assert api.get("/webhook-endpoints").json() == []
    assert WebhookEndpoint.objects.filter(pk=theirs["id"]).exists()


# --- each event, from the real action ------------------------------------------------------------------------------


def test_a_stop_through_twilios_webhook_sends_the_message_and_the_consent_change_signed(client, api, receiver, patient):
    register(api, receiver)
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMstop").status_code == 200
    drain_worker()

    [received] = receiver.events(kind="message.received")
    assert received["data"]["text"] == "STOP" and received["data"]["keyword"] == "opt_out"
    assert received["data"]["from"] == PHONE and received["data"]["patient_ids"] == [str(patient.pk)]
    [changed] = receiver.events(kind="consent.changed")
    data = changed["data"]
    assert (data["subject"], data["address"], data["state"], data["source"]) == (
        "sms",
        PHONE,
        "opted_out",
        "sms_keyword",
    )
    assert data["patient_ids"] == [str(patient.pk)] and data["message_id"] == received["data"]["message_id"]
    assert set(changed) == {"type", "timestamp", "data"}
    # The confirmation text went out too (the sandbox delivers it at once): its delivery says so.
    [confirmation] = receiver.events(kind="delivery.status_changed")
    assert (confirmation["data"]["address"], confirmation["data"]["status"]) == (PHONE, "delivered")
    assert all(r["status"] == 204 for r in receiver.requests)
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 3


def test_a_replayed_stop_webhook_emits_nothing_more(client, api, receiver, patient):
    """The replay's transaction is rolled back (the message id is known): its events with it."""
    register(api, receiver)
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMsame")
    rows = WebhookDelivery.objects.count()
    assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMsame").status_code == 200
    assert WebhookDelivery.objects.count() == rows == 2  # the text received and the opt-out, once
    drain_worker()
    assert len(receiver.events(kind="message.received")) == 1


def test_a_status_callback_sends_the_deliverys_new_status(client, api, receiver, patient, twilio):
    register(api, receiver, events=["delivery.status_changed"])
    sent = api.post(
        "/messages",
        {"kind": "manual", "category": "document_shared", "patient_ids": [str(patient.pk)], "content": {"sms": "Hi"}},
    )
    assert sent.status_code == 202
    drain_worker()
    delivery = Delivery.objects.get()
    params = {"AccountSid": "AC" + "1" * 32, "MessageSid": delivery.provider_ref, "MessageStatus": "delivered"}
    signature = twilio_signature("http://testserver/webhooks/twilio/status", params)
    assert client.post("/webhooks/twilio/status", params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 204
    drain_worker()

    statuses = [e["data"] for e in receiver.events(kind="delivery.status_changed")]
    assert [s["status"] for s in statuses] == ["sent", "delivered"]
    last = statuses[-1]
    assert last["delivery_id"] == delivery.pk and last["message_id"] == sent.json()["id"]
    assert (last["patient_id"], last["channel"], last["address"]) == (str(patient.pk), "sms", PHONE)
    assert last["delivered_at"]
    assert receiver.events(kind="message.received") == []  # not subscribed


def test_a_reply_sends_its_text(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    send_sms_webhook(client, body="Can I come at 3 instead?", sender=PHONE, sid="SMreply")
    drain_worker()
    [event] = receiver.events()
    assert event["type"] == "message.received"
    conversation = api.get("/conversations").json()[0]
    assert event["data"]["text"] == "Can I come at 3 instead?" and event["data"]["keyword"] == "none"
    assert event["data"]["conversation_id"] == conversation["id"] and event["data"]["to"] == "+14155550100"
    # Kept encrypted in the log, shown decrypted to the practice.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT payload FROM {WebhookDelivery._meta.db_table}")
        [(raw,)] = cursor.fetchall()
    assert "come at 3" not in raw
    [row] = log(api, endpoint)
    assert row["payload"] == event and row["status"] == "delivered"


def test_a_reply_flagged_as_a_possible_opt_out_is_sent_as_flagged(client, api, receiver, patient):
    register(api, receiver, events=["optout.flagged", "consent.changed"])
    send_sms_webhook(client, body="please stop texting me", sender=PHONE, sid="SMplease")
    drain_worker()
    [flagged] = receiver.events()
    conversation = api.get("/conversations").json()[0]
    assert flagged["type"] == "optout.flagged"
    assert flagged["data"]["conversation_id"] == conversation["id"] and flagged["data"]["phone"] == PHONE
    assert flagged["data"]["rule"] == conversation["flag_rule"] and flagged["data"]["flagged_at"]
    assert flagged["data"]["patient_ids"] == [str(patient.pk)]

    # Staff confirm it over the API: the opt-out is a consent change.
    assert api.post(f"/conversations/{conversation['id']}/opt-out", {}).status_code == 200
    drain_worker()
    [changed] = receiver.events(kind="consent.changed")
    assert (changed["data"]["state"], changed["data"]["source"]) == ("opted_out", "staff")
    assert changed["data"]["actor"] == "api:initial"


def test_a_staff_opt_out_of_an_email_over_the_api_is_a_consent_change(api, receiver, practice):
    person = make_patient(practice, first_name="Bo", emails=["bo@example.org"])
    register(api, receiver, events=["consent.changed"])
    assert (
        api.post("/contacts/opt-out", {"address": "bo@example.org", "reason": "asked at the desk"}).status_code == 200
    )
    drain_worker()
    [event] = receiver.events()
    data = event["data"]
    assert (data["subject"], data["address"], data["state"]) == ("email", "bo@example.org", "unsubscribed")
    assert data["patient_ids"] == [str(person.pk)]
    assert "asked at the desk" not in str(event)  # the staff member's words stay in the encrypted note


def test_legacy_opt_outs_imported_from_a_file_are_consent_changes(api, receiver, practice, tmp_path):
    register(api, receiver, events=["consent.changed"])
    path = tmp_path / "old-system.csv"
    path.write_text(
        "external_id,first_name,phone,line_type,email,sms_opt_out,email_unsubscribed\n"
        "old-1,Dee,(415) 555-0144,mobile,dee@example.com,yes,no\n"
        "old-2,Eli,(415) 555-0155,mobile,eli@example.com,no,yes\n"
    )
    call_command("import", "patients", str(path), "--practice", str(practice.pk), stdout=io.StringIO())
    drain_worker()
    changes = {(e["data"]["address"], e["data"]["state"], e["data"]["source"]) for e in receiver.events()}
    assert {("+14155550144", "opted_out", "import"), ("eli@example.com", "unsubscribed", "import")} <= changes
    by_address = {e["data"]["address"]: e["data"]["patient_ids"] for e in receiver.events()}
    dee = api.get("/patients", q="Dee").json()["patients"]
    assert by_address["+14155550144"] == [p["id"] for p in dee if p["first_name"] == "Dee"]


def test_an_endpoint_gets_only_the_events_it_subscribes_to_and_another_practice_none(client, api, receiver, patient):
    register(api, receiver, "/consent", events=["consent.changed"])
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    register(Api(elm_key), receiver, "/elm")
    send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMonly")
    drain_worker()
    assert [e["type"] for e in receiver.events("/consent")] == ["consent.changed"]
    assert receiver.events("/elm") == []


# --- signatures -----------------------------------------------------------------------------------------------------


def test_the_documented_recipe_refuses_a_tampered_body_a_wrong_secret_and_an_old_timestamp(
    client, api, receiver, patient
):
    secret = register(api, receiver, events=["message.received"])["secret"]
    send_sms_webhook(client, body="Running late", sender=PHONE, sid="SMsig")
    drain_worker()
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-signature"].startswith("v1,")

    # The library and the by-hand recipe both accept the event as sent...
    assert Webhook(secret).verify(body, headers)["data"]["text"] == "Running late"
    assert verify_by_hand(secret, headers, body, time.time())["data"]["text"] == "Running late"
    # ... and refuse it tampered with, signed with another secret, or replayed much later.
    tampered = body.replace(b"Running late", b"Running early")
    other = register(api, receiver, "/other", events=["message.received"])["secret"]
    for check in (
        lambda: Webhook(secret).verify(tampered, headers),
        lambda: Webhook(other).verify(body, headers),
        lambda: Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"}),
    ):
        with pytest.raises(WebhookVerificationError):
            check()
    for by_hand in (
        lambda: verify_by_hand(secret, headers, tampered, time.time()),
        lambda: verify_by_hand(other, headers, body, time.time()),
        lambda: verify_by_hand(secret, headers, body, time.time() + 3600),
    ):
        with pytest.raises(ValueError):
            by_hand()


def test_a_receiver_that_refuses_the_signature_gets_the_event_again_later(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    right = receiver.secrets["/hooks"]
    receiver.secrets["/hooks"] = "whsec_" + "QUJD" * 8  # the receiver was configured with a wrong secret
    send_sms_webhook(client, body="Hello", sender=PHONE, sid="SMwrong")
    drain_worker()
    assert [r["status"] for r in receiver.requests] == [401] and receiver.received == []
    [row] = log(api, endpoint)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 401)

    receiver.secrets["/hooks"] = right  # fixed
    with later(RETRY_DELAYS[0].total_seconds() + 1):
        drain_worker()
    assert [r["status"] for r in receiver.requests] == [401, 204]
    # Every attempt carries the same webhook-id, signed again with a fresh timestamp.
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


# --- retries, the log, deletion ------------------------------------------------------------------------------------


def test_a_500_is_retried_after_its_backoff_and_the_log_lists_each_attempt(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    receiver.answers["/hooks"] = [500]
    send_sms_webhook(client, body="Is the office open?", sender=PHONE, sid="SM500")
    drain_worker()
    [row] = log(api, endpoint)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
    assert "500" in row["last_error"]
    due = datetime.fromisoformat(row["next_attempt_at"])
    assert timedelta(seconds=4) < due - datetime.now(UTC) <= RETRY_DELAYS[0]

    drain_worker()  # not due yet: nothing is sent
    assert len(receiver.requests) == 1

    with later(RETRY_DELAYS[0].total_seconds() + 1):
        drain_worker()
    assert [r["status"] for r in receiver.requests] == [500, 204]
    [row] = log(api, endpoint)
    assert (row["status"], row["attempts"], row["last_status_code"], row["last_error"]) == ("delivered", 2, 204, "")
    assert [(a["status_code"], bool(a["error"])) for a in row["attempt_log"]] == [(500, True), (204, False)]
    assert row["delivered_at"] and row["next_attempt_at"] is None
    assert api.get(f"/webhook-endpoints/{endpoint['id']}").json()["deliveries"]["delivered"] == 1


def test_an_endpoint_that_never_answers_2xx_is_given_up_after_about_a_day(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    receiver.answers["/hooks"] = [503] * ATTEMPTS
    send_sms_webhook(client, body="Hello?", sender=PHONE, sid="SMdown")
    drain_worker()
    waited = 0.0
    for delay in RETRY_DELAYS:
        waited += delay.total_seconds() + 1
        with later(waited):
            drain_worker()
    assert len(receiver.requests) == ATTEMPTS == 8
    assert timedelta(hours=24) < sum(RETRY_DELAYS, timedelta()) < timedelta(hours=30)
    [row] = log(api, endpoint)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", ATTEMPTS, None)
    assert [a["status_code"] for a in row["attempt_log"]] == [503] * ATTEMPTS
    assert [d["id"] for d in log(api, endpoint, status="failed")] == [row["id"]]
    assert log(api, endpoint, status="pending") == []
    with later(waited + 86400):
        drain_worker()
    assert len(receiver.requests) == ATTEMPTS  # nothing left to try


def test_a_redirect_is_not_followed(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    receiver.answers["/hooks"] = [307]
    send_sms_webhook(client, body="Hi", sender=PHONE, sid="SMredirect")
    drain_worker()
    assert [r["path"] for r in receiver.requests] == ["/hooks"]
    [row] = log(api, endpoint)
    assert row["last_status_code"] == 307 and "not followed" in row["last_error"]


def test_deleting_an_endpoint_stops_its_deliveries_even_those_waiting_for_a_retry(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    receiver.answers["/hooks"] = [500]
    send_sms_webhook(client, body="one", sender=PHONE, sid="SMd1")
    drain_worker()
    send_sms_webhook(client, body="two", sender=PHONE, sid="SMd2")  # not sent yet
    assert api.delete(f"/webhook-endpoints/{endpoint['id']}").status_code == 204
    assert api.get(f"/webhook-endpoints/{endpoint['id']}").status_code == 404
    with later(RETRY_DELAYS[0].total_seconds() + 1):
        drain_worker()
    send_sms_webhook(client, body="three", sender=PHONE, sid="SMd3")
    drain_worker()
    assert [r["status"] for r in receiver.requests] == [500]
    assert not WebhookDelivery.objects.exists()


def test_the_log_pages_newest_first(client, api, receiver, patient):
    endpoint = register(api, receiver, events=["message.received"])
    for i in range(5):
        send_sms_webhook(client, body=f"text {i}", sender=PHONE, sid=f"SMpage{i}")
    drain_worker()
    first = api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", limit=3).json()
    assert [d["payload"]["data"]["text"] for d in first["deliveries"]] == ["text 4", "text 3", "text 2"]
    rest = api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", limit=3, cursor=first["next_cursor"]).json()
    assert [d["payload"]["data"]["text"] for d in rest["deliveries"]] == ["text 1", "text 0"]
    assert rest["next_cursor"] is None
    for bad in ({"cursor": "bm90IGEgY3Vyc29y"}, {"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, {"status": "lost"}):
        assert api.get(f"/webhook-endpoints/{endpoint['id']}/deliveries", **bad).status_code == 422


# --- the private-address guard when sending ------------------------------------------------------------------------


def test_an_endpoint_registered_on_a_private_network_is_not_sent_to_once_the_operator_forbids_it(
    client, api, receiver, patient, settings
):
    endpoint = register(api, receiver, events=["message.received"])
    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = False
    send_sms_webhook(client, body="Hello", sender=PHONE, sid="SMguard")
    drain_worker()
    assert receiver.server.connections == 0 and receiver.requests == []
    [row] = log(api, endpoint)
    assert row["last_status_code"] is None
    assert row["last_error"].startswith("not sent: 127.0.0.1 resolves to 127.0.0.1, not to the internet")


def test_a_name_that_resolves_here_when_sending_is_not_sent_to(client, api, receiver, patient, settings, monkeypatch):
    """DNS changed since registration: the name now leads to this machine."""
    real = socket.getaddrinfo
    port = receiver.server.server_address[1]

    def resolver(host, *args, **kwargs):
        if host == "ehr.clinic.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    settings.CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = False
    endpoint = api.post(
        "/webhook-endpoints", {"url": f"https://ehr.clinic.test:{port}/hooks", "events": ["message.received"]}
    ).json()  # the name does not resolve when registered
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    send_sms_webhook(client, body="Hello", sender=PHONE, sid="SMrebind")
    drain_worker()
    assert receiver.server.connections == 0
    [row] = log(api, endpoint)
    assert "not to the internet" in row["last_error"]


# --- cost when no one listens ----------------------------------------------------------------------------------------


def test_a_stop_at_a_practice_without_endpoints_costs_one_small_query_and_writes_nothing(client, practice, patient):
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    WebhookEndpoint.objects.create(practice=elm, url="https://ehr.example.com/h", events=EVERY, secret="whsec_eA==")
    with CaptureQueriesContext(connection) as queries:
        assert send_sms_webhook(client, body="STOP", sender=PHONE, sid="SMcost").status_code == 200
    endpoint_table, delivery_table = WebhookEndpoint._meta.db_table, WebhookDelivery._meta.db_table
    touching = [q["sql"] for q in queries.captured_queries if endpoint_table in q["sql"] or delivery_table in q["sql"]]
    # One per event the STOP causes: the text received, the opt-out (its confirmation goes later, from the worker).
    assert len(touching) == 2, touching
    assert all(q.startswith("SELECT") and delivery_table not in q for q in touching)
    assert not WebhookDelivery.objects.exists()


def test_a_read_key_lists_but_cannot_register(practice, receiver):
    _, read_key = create_api_key(practice=practice, label="reports", scopes=["read"])
    reader = Api(read_key)
    assert reader.get("/webhook-endpoints").status_code == 200
    assert register(reader, receiver, status=403)["error"]["code"] == "forbidden"
