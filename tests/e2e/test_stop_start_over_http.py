"""STOP and START over real HTTP against `consentry serve`: the next message skips, then goes again."""

import json

import pytest

from tests.e2e.conftest import cli

pytestmark = pytest.mark.e2e

PHONE = "+14155550111"


def _patient(service, number, first_name="Ava"):
    status, body = service.api(
        "POST", "/patients", {"first_name": first_name, "phones": [{"number": number, "line_type": "mobile"}]}
    )
    assert status == 201, body
    return body["id"]


def _remind(service, patient_id):
    status, body = service.api(
        "POST",
        "/messages",
        {
            "kind": "automation",
            "category": "appointment_reminder",
            "patient_ids": [patient_id],
            "content": {"sms": "Reminder: 9am tomorrow"},
        },
    )
    assert status == 202, body
    return service.settled(body["id"])


def test_stop_then_start_through_the_webhook_controls_the_next_message(service):
    patient_id = _patient(service, PHONE)

    # A forged STOP changes nothing.
    assert service.text_in(PHONE, "STOP", "SMforged", signature="forged")[0] == 403
    assert _remind(service, patient_id) == [("sms", "delivered", None)]

    assert service.text_in(PHONE, "Stop", "SM1")[0] == 200
    # In force from the answer, whether or not the worker has read it yet.
    assert _remind(service, patient_id) == [("sms", "skipped", "sms_opted_out")]
    assert service.api("GET", "/contacts/status?address=%2B14155550111")[1]["sms"] == "opted_out"

    assert service.text_in(PHONE, "UNSTOP", "SM2")[0] == 200
    service.read_all()  # an opt-in counts once a worker has read it
    assert _remind(service, patient_id) == [("sms", "delivered", None)]

    bodies = service.wait_outbox(PHONE, 4)
    assert bodies[0] == "Oak Clinic: Reminder: 9am tomorrow Reply STOP to opt out."  # the number's first in 30 days
    assert "Reply START" in bodies[1]  # the opt-out confirmation, not blocked by the opt-out
    assert "STOP to opt out" in bodies[2]  # the opt-in confirmation
    assert bodies[3] == "Oak Clinic: Reminder: 9am tomorrow"
    assert len(bodies) == 4


def test_a_stop_reaches_every_patient_sharing_the_phone(service):
    family_phone = "+14155550155"
    kids = [_patient(service, family_phone, name) for name in ("Ben", "Cleo", "Dev")]
    assert service.text_in(family_phone, "QUIT", "SM10")[0] == 200
    status, body = service.api(
        "POST",
        "/messages",
        {
            "kind": "broadcast",
            "category": "announcement",
            "patient_ids": kids,
            "content": {"sms": "Closed Monday"},
        },
    )
    assert status == 202
    assert service.settled(body["id"]) == [("sms", "skipped", "sms_opted_out")] * 3


def test_the_ledger_of_the_running_service_verifies_and_exports(service, service_env):
    assert service.text_in("+14155550166", "STOP", "SM20")[0] == 200
    [report] = json.loads(cli(["audit", "verify", "--practice", service.practice_id, "--json"], service_env).stdout)
    assert report["ok"] and report["checked"] >= 1 and report["projection_matches"]
    exported = json.loads(
        cli(["audit", "export", "--practice", service.practice_id, "--format", "json"], service_env).stdout
    )
    stop = next(e for e in exported if e["address"] == "+14155550166")
    assert (stop["subject"], stop["state"], stop["source"]) == ("sms", "opted_out", "sms_keyword")
    assert stop["evidence"]["message_sid"] == "SM20"
    csv_out = cli(["audit", "export", "--practice", service.practice_id], service_env).stdout
    assert csv_out.splitlines()[0].startswith("seq,created_at,subject")
