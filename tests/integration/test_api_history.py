"""Messages and history over the API: the message list with each delivery report, a patient's
communication history, the follow-up list of failed deliveries, and a message's deliveries as CSV."""

from __future__ import annotations

import csv
import io

import pytest

from consentry.consent import services as consent
from consentry.consent.models import Source
from consentry.messaging.models import Delivery
from tests.conftest import drain_worker, make_patient, make_practice

pytestmark = pytest.mark.django_db


def _send(api, patient_ids, kind="broadcast", category="announcement", content=None):
    response = api.post(
        "/messages",
        {
            "kind": kind,
            "category": category,
            "patient_ids": [str(p) for p in patient_ids],
            "content": content or {"sms": "Hi"},
        },
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_message_list_carries_each_delivery_report_newest_first(practice, api):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    ben = make_patient(practice, "Ben", phones=[("+14155550122", "mobile")])
    cy = make_patient(practice, "Cy")  # nothing to reach
    consent.record_sms_opt_out(practice=practice, number="+14155550122", source=Source.SMS_KEYWORD, actor="x")
    first = _send(api, [ava.pk, ben.pk, cy.pk])
    second = _send(api, [ava.pk], kind="automation", category="appointment_reminder")
    drain_worker()
    page = api.get("/messages").json()
    assert [m["id"] for m in page["messages"]] == [second, first] and page["next_cursor"] is None
    report = page["messages"][1]["report"]
    assert report["by_status"]["delivered"] == 1 and report["by_status"]["skipped"] == report["total"] - 1
    assert report["by_reason"]["sms_opted_out"] == 1 and "no_reachable_channel" in report["by_reason"]
    assert [m["id"] for m in api.get("/messages", kind="automation").json()["messages"]] == [second]
    assert [m["id"] for m in api.get("/messages", category="announcement").json()["messages"]] == [first]
    assert api.get("/messages", status="failed").json()["messages"] == []
    paged = api.get("/messages", limit=1).json()
    assert [m["id"] for m in paged["messages"]] == [second]
    assert [m["id"] for m in api.get("/messages", limit=1, cursor=paged["next_cursor"]).json()["messages"]] == [first]
    assert api.get("/messages", kind="keyword_reply").status_code == 422  # the service's own are not listed


def test_a_patients_history_and_the_failed_deliveries_to_follow_up(practice, api):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    ben = make_patient(practice, "Ben", phones=[("+14155550122", "mobile")])
    _send(api, [ava.pk, ben.pk])
    _send(api, [ava.pk], kind="manual", category="document_shared", content={"sms": "Forms"})
    drain_worker()
    failed = Delivery.objects.get(patient=ben)
    Delivery.objects.filter(pk=failed.pk).update(status="failed", error="30003 unreachable")
    history = api.get(f"/patients/{ava.pk}/deliveries").json()["deliveries"]
    assert [(d["kind"], d["status"]) for d in history] == [("manual", "delivered"), ("broadcast", "delivered")]
    assert history[0]["actor"].startswith("api:")
    follow_up = api.get("/deliveries", status="failed").json()["deliveries"]
    assert [(d["patient_id"], d["error"]) for d in follow_up] == [(str(ben.pk), "30003 unreachable")]


def test_another_practices_patient_history_and_message_export_are_404s(practice, api):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    zed = make_patient(elm, "Zed", phones=[("+14155550199", "mobile")])
    assert api.get(f"/patients/{zed.pk}/deliveries").status_code == 404
    from consentry.messaging.planning import create_message

    theirs = create_message(
        practice=elm, kind="broadcast", category="announcement", patient_ids=[zed.pk], content={"sms": "x"}
    ).message
    assert api.get(f"/messages/{theirs.pk}/deliveries.csv").status_code == 404
    assert str(theirs.pk) not in api.get("/messages").content.decode()


def test_a_messages_deliveries_as_csv(practice, api):
    ava = make_patient(practice, "=cmd|' /C calc'!A0", phones=[("+14155550111", "mobile")], external_id="E-1")
    message_id = _send(api, [ava.pk])
    drain_worker()
    answer = api.get(f"/messages/{message_id}/deliveries.csv")
    assert answer.status_code == 200 and answer["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert [(r["external_id"], r["channel"], r["status"]) for r in rows] == [("E-1", "sms", "delivered")]
    assert rows[0]["first_name"].startswith("'=")  # a spreadsheet does not run it


@pytest.mark.parametrize("cursor", ["bm90LWEtY3Vyc29y", "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHxub3QtYS11dWlk", "%%%"])
def test_a_cursor_this_api_did_not_give_is_a_422(api, cursor):
    for path in ("/messages", "/deliveries"):
        answer = api.get(path, cursor=cursor)
        assert answer.status_code == 422 and answer.json()["error"]["field"] == "cursor", (path, answer.content)


def test_an_instant_with_any_offset_is_read_and_one_out_of_range_is_a_422(api):
    assert api.get("/messages", created_before="0137-09-18T19:26:18-23:38").status_code == 200
    assert api.get("/patients", updated_since="2026-01-01T00:00:00+14:00").status_code == 200
    assert api.get("/deliveries", since="0001-01-01T00:00:00+01:00").status_code == 422
