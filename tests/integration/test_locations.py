"""Locations: each with its own number. Texts reach the practice by any of its numbers, go from the
patient's location's number, and a STOP to any number stops texts from all of the practice's numbers."""

from __future__ import annotations

import json
from datetime import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.errors import InvalidInput
from consentry.keywords.models import InboundMessage
from consentry.messaging.models import Delivery, SenderPace
from consentry.patients.models import Location, Patient
from consentry.patients.practices import update_connection, update_practice
from consentry.providers.models import SandboxMessage
from tests.conftest import (
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    Api,
    drain_worker,
    make_practice,
    send_sms_webhook,
    twilio_signature,
)

pytestmark = pytest.mark.django_db

MAIN = "+14155550100"  # the practice's own number (conftest's practice)
NORTH = "+14155550142"
SOUTH = "+14155550143"
PHONE = "+14155550111"
SERVICE = "MG" + "0123456789abcdef" * 2


def _location(api, name="North", number=NORTH, **more):
    answer = api.post("/locations", {"name": name, "texting_number": number, **more})
    assert answer.status_code == 201, answer.content
    return answer.json()


def _patient(api, phone=PHONE, location_id=None, **more):
    body = {"first_name": "Ava", "phones": [{"number": phone, "line_type": "mobile"}], **more}
    if location_id is not None:
        body["location_id"] = location_id
    answer = api.post("/patients", body)
    assert answer.status_code == 201, answer.content
    return answer.json()


def _text(api, patient_id, body="Forms to sign", kind="manual", category="document_shared"):
    answer = api.post(
        "/messages", {"kind": kind, "category": category, "patient_ids": [patient_id], "content": {"sms": body}}
    )
    assert answer.status_code == 202, answer.content
    return answer.json()


# --- the API ---------------------------------------------------------------------------------------------------


def test_locations_are_created_listed_read_changed_and_deleted(practice, api):
    north = _location(api, timezone="America/Denver", twilio_messaging_service_sid=SERVICE)
    assert north["texting_number"] == NORTH and north["timezone"] == "America/Denver"
    assert north["twilio_messaging_service_sid"] == SERVICE and north["patients"] == 0
    south = _location(api, "South", "(415) 555-0143")
    assert south["texting_number"] == SOUTH
    assert south["timezone"] == practice.timezone  # none given: the practice's
    assert [loc["name"] for loc in api.get("/locations").json()] == ["North", "South"]
    assert api.get(f"/locations/{north['id']}").json() == north
    changed = api.patch(f"/locations/{north['id']}", {"name": "North Side", "twilio_messaging_service_sid": ""})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["twilio_messaging_service_sid"]) == ("North Side", "")
    assert changed.json()["texting_number"] == NORTH  # not sent: unchanged
    assert api.delete(f"/locations/{south['id']}").status_code == 204
    assert api.get(f"/locations/{south['id']}").status_code == 404
    assert [loc["name"] for loc in api.get("/locations").json()] == ["North Side"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "Again", "texting_number": MAIN}, "texting_number"),  # the practice's own number
        ({"name": "Again", "texting_number": NORTH}, "texting_number"),  # another location's
        ({"name": "Again", "texting_number": "+14155550101"}, "texting_number"),  # another practice's
        ({"name": "Again", "texting_number": "+14155550144"}, "texting_number"),  # another practice's location's
        ({"name": "Again", "texting_number": "not a number"}, "texting_number"),
        ({"name": "North", "texting_number": SOUTH}, "name"),  # the practice has a North already
        ({"name": "  ", "texting_number": SOUTH}, "name"),
        ({"name": "Again", "texting_number": SOUTH, "timezone": "Mars/Olympus"}, "timezone"),
        (
            {"name": "Again", "texting_number": SOUTH, "twilio_messaging_service_sid": "MG123"},
            "twilio_messaging_service_sid",
        ),
        ({"name": "Again", "texting_number": SOUTH, "color": "red"}, None),
    ],
)
def test_a_bad_location_is_a_422_and_creates_nothing(practice, api, body, field):
    _location(api)
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    _location(Api(elm_key), "Elm North", "+14155550144")
    before = Location.objects.count()
    answer = api.post("/locations", body)
    assert answer.status_code == 422, answer.content
    if field:
        assert answer.json()["error"]["field"] == field
    assert Location.objects.count() == before


def test_a_change_to_a_taken_number_is_a_422_and_changes_nothing(practice, api):
    north = _location(api)
    _location(api, "South", SOUTH)
    answer = api.patch(f"/locations/{north['id']}", {"name": "Renamed", "texting_number": SOUTH})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "texting_number"
    assert api.get(f"/locations/{north['id']}").json()["name"] == "North"  # the valid field did not apply either
    assert api.patch(f"/locations/{north['id']}", {"texting_number": NORTH}).status_code == 200  # its own: fine


def test_a_practice_cannot_take_a_locations_number(practice, api):
    _location(api)
    with pytest.raises(InvalidInput):
        make_practice(name="Elm Clinic", number=NORTH)
    with pytest.raises(InvalidInput):
        update_connection(practice, texting_number=NORTH)
    practice.refresh_from_db()
    assert practice.texting_number == MAIN


def test_another_practices_locations_are_not_found_nor_listed(practice, api):
    theirs = _location(Api(make_practice(name="Elm Clinic", number="+14155550101")[1]), "Elm North", SOUTH)
    assert api.get(f"/locations/{theirs['id']}").status_code == 404
    assert api.patch(f"/locations/{theirs['id']}", {"name": "Mine now"}).status_code == 404
    assert api.delete(f"/locations/{theirs['id']}").status_code == 404
    assert api.get("/locations/not-a-uuid").status_code == 404
    assert api.get("/locations").json() == []
    assert Location.objects.get(pk=theirs["id"]).name == "Elm North"
    # Nor can a patient be put there.
    answer = api.post("/patients", {"first_name": "Ava", "location_id": theirs["id"]})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "location_id"
    assert not Patient.objects.filter(practice=practice).exists()


def test_a_patient_belongs_to_a_location_over_the_api(practice, api):
    north = _location(api)
    patient = _patient(api, location_id=north["id"])
    assert patient["location_id"] == north["id"]
    assert api.get(f"/locations/{north['id']}").json()["patients"] == 1
    bad = api.patch(f"/patients/{patient['id']}", {"location_id": "5b0e3f4c-2a51-4a8e-9d7c-0e6f1b9a7c31"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "location_id"
    assert api.patch(f"/patients/{patient['id']}", {"first_name": "Avery"}).json()["location_id"] == north["id"]
    assert api.patch(f"/patients/{patient['id']}", {"location_id": None}).json()["location_id"] is None
    again = api.put("/patients/by-external-id/EHR-7", {"first_name": "Ben", "location_id": north["id"]})
    assert again.status_code == 201 and again.json()["location_id"] == north["id"]
    # Deleting the location leaves the patient, with none.
    assert api.delete(f"/locations/{north['id']}").status_code == 204
    assert api.get(f"/patients/{again.json()['id']}").json()["location_id"] is None


# --- sending: from the patient's location's number -------------------------------------------------------------


def test_texts_go_from_the_patients_locations_number_through_twilio(practice, api, twilio):
    north = _location(api, twilio_messaging_service_sid=SERVICE)
    south = _location(api, "South", SOUTH)
    at_north = _patient(api, "+14155550111", north["id"])
    at_south = _patient(api, "+14155550112", south["id"])
    nowhere = _patient(api, "+14155550113")
    for patient in (at_north, at_south, nowhere):
        _text(api, patient["id"])
    drain_worker()
    sent = {r["form"]["To"]: r["form"] for r in twilio.messages()}
    assert sent["+14155550111"]["From"] == NORTH
    assert sent["+14155550111"]["MessagingServiceSid"] == SERVICE  # the location's service, its number as sender
    assert sent["+14155550112"]["From"] == SOUTH and "MessagingServiceSid" not in sent["+14155550112"]
    assert sent["+14155550113"]["From"] == MAIN and "MessagingServiceSid" not in sent["+14155550113"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    # Each number keeps its own pace: a long code each.
    assert {f"sms:{n}" for n in (NORTH, SOUTH, MAIN)} <= set(SenderPace.objects.values_list("sender", flat=True))


def test_a_call_goes_from_the_patients_locations_number(practice, api, twilio):
    north = _location(api)
    patient = _patient(api, location_id=north["id"], phones=[{"number": "+14155550122", "line_type": "landline"}])
    answer = api.post(
        "/messages",
        {
            "kind": "automation",
            "category": "appointment_reminder",
            "patient_ids": [patient["id"]],
            "content": {"sms": "Reminder", "voice": "Your appointment is tomorrow at nine."},
        },
    )
    assert answer.status_code == 202
    drain_worker()
    [call] = twilio.calls()
    assert (call["form"]["To"], call["form"]["From"]) == ("+14155550122", NORTH)


def test_the_sandbox_records_the_locations_number_as_the_sender(practice, api):
    north = _location(api)
    _text(api, _patient(api, location_id=north["id"])["id"])
    _text(api, _patient(api, "+14155550112")["id"])
    drain_worker()
    assert dict(SandboxMessage.objects.values_list("to", "sender")) == {PHONE: NORTH, "+14155550112": MAIN}


def test_a_status_callback_for_a_text_from_a_locations_number_is_checked_with_the_practices_token(
    client, practice, api, twilio
):
    north = _location(api)
    _text(api, _patient(api, location_id=north["id"])["id"])
    drain_worker()
    delivery = Delivery.objects.get()
    params = {"AccountSid": TWILIO_ACCOUNT, "From": NORTH, "To": PHONE, "MessageSid": delivery.provider_ref}
    url = "http://testserver/webhooks/twilio/status"
    forged = {**params, "MessageStatus": "delivered"}
    bad = client.post("/webhooks/twilio/status", forged, HTTP_X_TWILIO_SIGNATURE=twilio_signature(url, forged, "x"))
    assert bad.status_code == 403
    params["MessageStatus"] = "delivered"
    signed = twilio_signature(url, params, TWILIO_TOKEN)
    assert client.post("/webhooks/twilio/status", params, HTTP_X_TWILIO_SIGNATURE=signed).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


# --- receiving: by the number texted ---------------------------------------------------------------------------


def test_a_text_to_a_locations_number_reaches_the_practice_and_is_answered_from_that_number(client, practice, api):
    north = _location(api)
    _location(api, "South", SOUTH)
    _patient(api, location_id=north["id"])  # belongs to North, texts South
    answer = send_sms_webhook(client, body="HELP", sender=PHONE, to=SOUTH, sid="SMhelp")
    assert answer.status_code == 200
    inbound = InboundMessage.objects.get()
    assert (inbound.practice_id, inbound.to_number, inbound.from_number) == (practice.pk, SOUTH, PHONE)
    drain_worker()
    [reply] = SandboxMessage.objects.filter(to=PHONE)
    assert reply.sender == SOUTH  # back from the number it was sent to, not the patient's location's
    assert Delivery.objects.get().from_number == SOUTH


def test_a_text_to_a_locations_number_signed_with_another_token_is_403(client, practice, api):
    _location(api)
    answer = send_sms_webhook(client, body="STOP", sender=PHONE, to=NORTH, token="someone-elses-token")
    assert answer.status_code == 403
    assert not InboundMessage.objects.exists() and not ConsentEvent.objects.exists()


def test_a_text_to_a_locations_number_is_checked_with_the_practices_current_token(client, practice, api):
    _location(api)
    assert send_sms_webhook(client, body="HELP", sender=PHONE, to=NORTH, sid="SM1").status_code == 200
    practice.twilio_auth_token = "a-rotated-token-0123456789abcdef"
    practice.save(update_fields=["twilio_auth_token"])
    assert send_sms_webhook(client, body="STOP", sender=PHONE, to=NORTH, sid="SM2").status_code == 403
    new = send_sms_webhook(client, body="STOP", sender=PHONE, to=NORTH, sid="SM3", token=practice.twilio_auth_token)
    assert new.status_code == 200
    assert ConsentEvent.objects.get().address == PHONE


def test_a_deleted_locations_number_reaches_no_one(client, practice, api):
    north = _location(api)
    assert api.delete(f"/locations/{north['id']}").status_code == 204
    assert send_sms_webhook(client, body="STOP", sender=PHONE, to=NORTH).status_code == 403
    assert not ConsentEvent.objects.exists()


def test_a_stop_to_one_number_stops_texts_from_every_number_of_the_practice(client, practice, api, twilio):
    north = _location(api)
    _location(api, "South", SOUTH)
    patient = _patient(api, location_id=north["id"])
    # STOP to South: the patient belongs to North.
    assert send_sms_webhook(client, body="STOP", sender=PHONE, to=SOUTH, sid="SMstop").status_code == 200
    drain_worker()
    [confirmation] = twilio.messages()
    assert (confirmation["form"]["To"], confirmation["form"]["From"]) == (PHONE, SOUTH)
    assert "unsubscribed" in confirmation["form"]["Body"]
    # One opt-out in the ledger, the practice's, for the address: no location in it.
    history = api.get("/contacts/history", address=PHONE).json()
    assert [(e["subject"], e["state"], e["source"]) for e in history["events"]] == [("sms", "opted_out", "sms_keyword")]
    assert history["status"]["sms"] == "opted_out"
    [event] = ConsentEvent.objects.filter(address=PHONE)
    assert event.practice_id == practice.pk and event.evidence["message_sid"] == "SMstop"
    assert ledger.verify_chain(practice.pk).ok
    # A later text from North's number (the patient's location's) is skipped: opted out.
    message = _text(api, patient["id"], "Your forms")
    assert [(d["status"], d["reason"]) for d in message["deliveries"]] == [("skipped", "sms_opted_out")]
    # And from the practice's own number too.
    assert api.patch(f"/patients/{patient['id']}", {"location_id": None}).status_code == 200
    message = _text(api, patient["id"], "Your forms again")
    assert [(d["status"], d["reason"]) for d in message["deliveries"]] == [("skipped", "sms_opted_out")]
    drain_worker()
    assert len(twilio.messages()) == 1  # only the confirmation ever went
    # START to the main number opts back in everywhere, answered from the main number.
    assert send_sms_webhook(client, body="START", sender=PHONE, to=MAIN, sid="SMstart").status_code == 200
    drain_worker()
    assert twilio.messages()[-1]["form"]["From"] == MAIN
    assert PHONE not in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out


def test_a_stop_sent_before_the_hand_over_wins_whichever_number_it_went_to(client, practice, api):
    north = _location(api)
    patient = _patient(api, location_id=north["id"])
    message = _text(api, patient["id"])  # planned from North, not yet handed over
    assert message["deliveries"][0]["status"] == "pending"
    assert send_sms_webhook(client, body="STOP", sender=PHONE, to=MAIN, sid="SMstop").status_code == 200
    drain_worker()
    planned = Delivery.objects.get(message_id=message["id"])
    assert (planned.status, planned.reason) == ("skipped", "sms_opted_out")
    assert list(SandboxMessage.objects.values_list("sender", flat=True)) == [MAIN]  # only the confirmation


def test_a_staff_reply_goes_from_the_number_the_phone_last_texted(client, practice, api):
    north = _location(api)
    _location(api, "South", SOUTH)
    _patient(api, location_id=north["id"])
    assert send_sms_webhook(client, body="Is the office open Friday?", sender=PHONE, to=SOUTH).status_code == 200
    [conversation] = api.get("/conversations").json()
    answer = api.post(f"/conversations/{conversation['id']}/replies", {"body": "Yes, from 9 to 5."})
    assert answer.status_code == 201, answer.content
    drain_worker()
    [reply] = SandboxMessage.objects.filter(to=PHONE)
    assert reply.sender == SOUTH
    # One conversation per phone, whichever number it texted.
    assert send_sms_webhook(client, body="Thanks", sender=PHONE, to=NORTH, sid="SM2").status_code == 200
    assert len(api.get("/conversations").json()) == 1
    assert set(InboundMessage.objects.values_list("to_number", flat=True)) == {SOUTH, NORTH}


# --- quiet hours: the patient's zone, else their location's ----------------------------------------------------


def test_quiet_hours_are_judged_in_the_patients_zone_else_their_locations(practice, api):
    update_practice(practice, {"send_window": ("08:00", "21:00")})  # the practice is in New York
    denver = _location(api, timezone="America/Denver")
    own_zone = _patient(api, "+14155550111", denver["id"], timezone="America/Chicago")
    location_zone = _patient(api, "+14155550112", denver["id"])
    phone_zone = _patient(api, "+14155550113")  # a San Francisco number, no location
    answer = api.post(
        "/messages",
        {
            "kind": "automation",
            "category": "appointment_reminder",
            "patient_ids": [own_zone["id"], location_zone["id"], phone_zone["id"]],
            "content": {"sms": "Reminder"},
        },
    )
    assert answer.status_code == 202
    zones = dict(Delivery.objects.values_list("patient_id", "recipient_timezone"))
    assert {str(k): v for k, v in zones.items()} == {
        own_zone["id"]: "America/Chicago",
        location_zone["id"]: "America/Denver",
        phone_zone["id"]: "America/Los_Angeles",
    }


def test_a_practice_without_locations_sends_from_its_own_number_as_before(practice, api):
    practice.send_window_start = practice.send_window_end = time(0, 0)
    practice.save()
    _text(api, _patient(api)["id"])
    drain_worker()
    assert list(SandboxMessage.objects.values_list("sender", flat=True)) == [MAIN]


# --- the command line ------------------------------------------------------------------------------------------


def _command(*args) -> str:
    out = StringIO()
    call_command("location", *args, stdout=out)
    return out.getvalue()


def test_the_location_command_adds_lists_changes_and_removes(practice):
    added = _command(
        "add", MAIN, "--name", "North", "--texting-number", "(415) 555-0142", "--timezone", "America/Denver"
    )
    assert NORTH in added and "America/Denver" in added
    _command("add", str(practice.pk), "--name", "South", "--texting-number", SOUTH, "--messaging-service", SERVICE)
    listed = json.loads(_command("list", MAIN, "--json"))
    assert [(r["name"], r["texting_number"], r["timezone"]) for r in listed] == [
        ("North", NORTH, "America/Denver"),
        ("South", SOUTH, practice.timezone),
    ]
    assert listed[1]["twilio_messaging_service_sid"] == SERVICE
    assert "North: +14155550142, America/Denver" in _command("list", MAIN)
    _command("update", NORTH, "--name", "North Side", "--messaging-service", SERVICE)
    assert Location.objects.get(texting_number=NORTH).twilio_messaging_service_sid == SERVICE
    _command("remove", listed[1]["id"])
    assert list(Location.objects.values_list("name", flat=True)) == ["North Side"]


@pytest.mark.parametrize(
    "args",
    [
        ("add", MAIN, "--name", "Again", "--texting-number", MAIN),  # the practice's own number
        ("add", "+14155559999", "--name", "Again", "--texting-number", SOUTH),  # no such practice
        ("add", MAIN, "--name", "Again", "--texting-number", SOUTH, "--timezone", "Mars/Olympus"),
        ("update", SOUTH, "--name", "Nowhere"),  # no such location
        ("update", NORTH),  # nothing to change
        ("update", NORTH, "--texting-number", MAIN),
    ],
)
def test_the_location_command_refuses_bad_input_and_changes_nothing(practice, args):
    _command("add", MAIN, "--name", "North", "--texting-number", NORTH)
    with pytest.raises(CommandError):
        _command(*args)
    assert list(Location.objects.values_list("name", "texting_number")) == [("North", NORTH)]


# --- the sandbox's phones may text any of the practice's numbers -----------------------------------------------


def test_a_sandbox_phone_texts_a_locations_number_and_answers_the_number_that_wrote_last(practice, api, settings):
    settings.DEMO_MODE = True
    north = _location(api)
    _text(api, _patient(api, location_id=north["id"])["id"])
    drain_worker()
    client = Client()
    board = client.get("/sandbox/").content.decode()
    choice = f"{practice.pk}/{NORTH}"
    assert f'<option value="{choice}" selected>Oak Clinic, North ({NORTH})</option>' in board
    form = {"form": "phone-14155550111", "from": PHONE, "practice": choice, "body": "STOP"}
    assert client.post("/sandbox/reply", form).status_code == 303
    inbound = InboundMessage.objects.get()
    assert (inbound.practice_id, inbound.to_number) == (practice.pk, NORTH)
    drain_worker()
    assert SandboxMessage.objects.order_by("pk").last().sender == NORTH  # the confirmation
    assert PHONE in ledger.consent_state(practice.pk, [PHONE]).sms_opted_out
    # A number that is not the practice's is refused, and changes nothing.
    stray = {**form, "practice": f"{practice.pk}/+14155550199", "body": "HELP"}
    assert client.post("/sandbox/reply", stray).status_code == 400
    assert InboundMessage.objects.count() == 1
