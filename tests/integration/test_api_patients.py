"""The patient API, complete: a list with search and cursor pages, PATCH replacing phone and email
lists, DELETE keeping consent with the address, and the idempotent PUT by external id."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, Source
from consentry.messaging.models import Delivery
from consentry.patients.models import ContactPoint, Patient
from tests.conftest import drain_worker, make_patient, make_practice, plan_text

pytestmark = pytest.mark.django_db


def test_the_list_pages_with_a_cursor_that_keeps_its_place(practice, api):
    for i in range(7):
        make_patient(practice, f"P{i}")
    seen, cursor = [], ""
    while True:
        page = api.get("/patients", limit=3, cursor=cursor).json()
        seen += [p["id"] for p in page["patients"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
        make_patient(practice, "Late")  # added while paging: the next pages carry on, nothing is seen twice
    assert len(seen) == len(set(seen)) and set(seen) <= {str(p) for p in Patient.objects.values_list("pk", flat=True)}
    assert len(seen) >= 7
    bad = api.get("/patients", cursor="not-a-cursor")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    assert api.get("/patients", limit=0).status_code == 422


def test_the_list_searches_and_filters_by_change(practice, api):
    ava = make_patient(practice, "Ava", last_name="Rivera", phones=[("+14155550111", "mobile")], external_id="E-1")
    make_patient(practice, "Ben", emails=["ben@x.example"])
    for q, names in [("rivera", ["Ava"]), ("(415) 555-0111", ["Ava"]), ("BEN@x.example", ["Ben"]), ("E-1", ["Ava"])]:
        assert [p["first_name"] for p in api.get("/patients", q=q).json()["patients"]] == names, q
    later = timezone.now() + timedelta(minutes=5)
    with time_machine.travel(later):
        consent.set_do_not_contact(patient=ava, value=True, source=Source.API, actor="t")  # a flag moves it too
    since = (later - timedelta(seconds=1)).isoformat()
    assert [p["first_name"] for p in api.get("/patients", updated_since=since).json()["patients"]] == ["Ava"]


def test_patch_replaces_the_phone_and_email_lists_and_consent_stays_with_the_address(practice, api):
    created = api.post(
        "/patients",
        {"first_name": "Ava", "phones": [{"number": "+14155550111"}], "emails": ["old@x.example"]},
    ).json()
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    changed = api.patch(
        f"/patients/{created['id']}",
        {"phones": [{"number": "(415) 555-0122", "line_type": "landline"}], "emails": ["new@x.example"]},
    )
    assert changed.status_code == 200
    body = changed.json()
    assert body["phones"] == [{"number": "+14155550122", "line_type": "landline", "valid": True}]
    assert body["emails"] == ["new@x.example"]
    # The old number keeps its opt-out: given back to the patient, it is still opted out.
    again = api.patch(f"/patients/{created['id']}", {"phones": [{"number": "+14155550111"}]}).json()
    assert [p["number"] for p in again["phones"]] == ["+14155550111"]
    assert api.get("/contacts/status", address="+14155550111").json()["sms"] == "opted_out"
    refused = api.patch(f"/patients/{created['id']}", {"phones": [{"number": "nope"}], "first_name": "Changed"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "phones[0].number"
    assert Patient.objects.get(pk=created["id"]).first_name == "Ava"


def test_delete_removes_the_patient_and_keeps_the_addresses_consent_and_history(practice, api):
    delivery = plan_text(practice, "+14155550111")
    drain_worker()
    patient_id = str(delivery.patient_id)
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    assert api.delete(f"/patients/{patient_id}").status_code == 204
    assert not Patient.objects.filter(pk=patient_id).exists()
    assert api.get(f"/patients/{patient_id}").status_code == 404
    assert api.delete(f"/patients/{patient_id}").status_code == 404
    assert ContactPoint.objects.filter(address="+14155550111").exists()
    assert ConsentEvent.objects.filter(address="+14155550111", state="opted_out").exists()
    assert Delivery.objects.get(pk=delivery.pk).patient_id is None  # the history stays, without the patient
    # A new patient with that number finds it opted out.
    again = api.post("/patients", {"first_name": "Ava", "phones": [{"number": "+14155550111"}]})
    assert again.status_code == 201
    assert api.get("/contacts/status", address="+14155550111").json()["sms"] == "opted_out"


def test_put_by_external_id_creates_once_then_updates_idempotently(practice, api):
    body = {"first_name": "Ava", "last_name": "Rivera", "phones": [{"number": "+14155550111", "line_type": "mobile"}]}
    created = api.put("/patients/by-external-id/EHR-42", body)
    assert created.status_code == 201 and created.json()["external_id"] == "EHR-42"
    same = api.put("/patients/by-external-id/EHR-42", body)
    assert same.status_code == 200 and same.json()["id"] == created.json()["id"]
    assert Patient.objects.filter(external_id="EHR-42").count() == 1
    # The patient as they are changes nothing, not even updated_at (so ?updated_since= stays quiet).
    assert same.json()["updated_at"] == created.json()["updated_at"] and not ConsentEvent.objects.exists()
    moved = api.put("/patients/by-external-id/EHR-42", {**body, "phones": [], "emails": ["ava@x.example"]}).json()
    assert moved["phones"] == [] and moved["emails"] == ["ava@x.example"]
    assert moved["updated_at"] > created.json()["updated_at"]
    spanish = api.put("/patients/by-external-id/EHR-42", {**body, "language": "es"}).json()
    assert spanish["language"] == "es" and spanish["phones"] == created.json()["phones"]
    bad = api.put("/patients/by-external-id/EHR-42", {**body, "language": "Spanish please"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "language"
    assert Patient.objects.get(external_id="EHR-42").language == "es"
    other = make_practice(name="Elm", number="+14155550101")[0]
    make_patient(other, "Zed", external_id="EHR-43")
    assert api.put("/patients/by-external-id/EHR-43", body).status_code == 201  # another practice's is not ours
    mismatch = api.put("/patients/by-external-id/EHR-42", {**body, "external_id": "EHR-9"})
    assert mismatch.status_code == 422 and mismatch.json()["error"]["field"] == "external_id"


def test_a_sync_never_undoes_a_persons_choice_and_says_what_it_kept(practice, api):
    """An opt-out, an unsubscribe and a block stay with their address whatever a sync sends."""
    consent.record_sms_opt_out(practice=practice, number="+14155550111", source=Source.SMS_KEYWORD, actor="x")
    consent.record_email_state(
        practice=practice, email="ava@x.example", state="unsubscribed", source="one_click_unsubscribe", actor="a"
    )
    consent.set_block(practice=practice, number="+14155550122", categories=["recall"], source="staff", actor="s")
    body = {
        "first_name": "Ava",
        "phones": [{"number": "(415) 555-0111"}, {"number": "+14155550122"}],
        "emails": ["Ava@x.example"],
    }
    answer = api.put("/patients/by-external-id/EHR-1", body).json()
    assert [(k["field"], k["reason"]) for k in answer["kept"]] == [
        ("phones[0]", "sms_opted_out"),
        ("phones[1]", "blocked"),
        ("emails[0]", "email_unsubscribed"),
    ]
    status = api.get("/contacts/status", address="+14155550111").json()
    assert status["sms"] == "opted_out"
    assert api.get("/contacts/status", address="ava@x.example").json()["email"] == "unsubscribed"
    assert api.get("/contacts/status", address="+14155550122").json()["blocked_categories"] == ["recall"]


def test_when_consentry_keeps_contact_preferences_a_sync_does_not_overwrite_them(practice, api):
    created = api.post(
        "/patients", {"first_name": "Ava", "phones": [{"number": "+14155550111"}, {"number": "+14155550122"}]}
    ).json()
    assert api.get("/practice").json()["contact_preferences_source"] == "consentry"
    sent = {"do_not_contact": True, "marketing_consent": "no", "preferred_phone": "+14155550122", "last_name": "R"}
    answer = api.patch(f"/patients/{created['id']}", sent).json()
    assert {k["field"] for k in answer["kept"]} == {"do_not_contact", "marketing_consent", "preferred_phone"}
    assert all(k["reason"] == "consentry_keeps_contact_preferences" for k in answer["kept"])
    assert (answer["do_not_contact"], answer["marketing_consent"], answer["preferred_phone"]) == (
        False,
        "unknown",
        None,
    )
    assert answer["last_name"] == "R"  # the rest applies
    # With the EHR keeping them, the same sync applies.
    api.patch("/practice", {"contact_preferences_source": "ehr"})
    answer = api.patch(f"/patients/{created['id']}", sent).json()
    assert answer["kept"] == [] and answer["do_not_contact"] is True and answer["preferred_phone"] == "+14155550122"


def test_a_preferred_phone_sent_with_a_new_phone_list_is_kept_too(practice, api):
    """The preferred phone Consentry keeps is kept also when the same sync brings the phone it names."""
    phones = [{"number": "+14155550111"}, {"number": "+14155550133"}]
    created = api.post(
        "/patients", {"first_name": "Ava", "phones": phones[:1], "preferred_phone": "+14155550111"}
    ).json()
    answer = api.patch(f"/patients/{created['id']}", {"phones": phones, "preferred_phone": "+14155550133"}).json()
    assert [p["number"] for p in answer["phones"]] == ["+14155550111", "+14155550133"]  # the list applies
    assert [k["field"] for k in answer["kept"]] == ["preferred_phone"]
    assert answer["preferred_phone"] == "+14155550111"
    # A new patient takes what the EHR sends; the next sync of the same patient keeps it.
    body = {"first_name": "Bo", "phones": phones, "preferred_phone": "+14155550133"}
    first = api.put("/patients/by-external-id/EHR-9", body)
    assert first.status_code == 201 and first.json()["kept"] == [] and first.json()["preferred_phone"] == "+14155550133"
    again = api.put("/patients/by-external-id/EHR-9", {**body, "preferred_phone": "+14155550111"}).json()
    assert [k["field"] for k in again["kept"]] == ["preferred_phone"] and again["preferred_phone"] == "+14155550133"


def test_a_sync_does_not_turn_back_on_what_the_patient_turned_off_in_the_portal(practice, api):
    api.patch("/practice", {"contact_preferences_source": "ehr"})
    patient = make_patient(practice, "Ava", emails=["ava@x.example"])
    consent.set_notification_preferences(
        patient=patient,
        overrides={"appointment_reminder": {"email": False}},
        channel_opt_outs=["sms"],
        source=Source.PORTAL,
        actor=f"portal:{patient.pk}",
    )
    answer = api.patch(
        f"/patients/{patient.pk}",
        {
            "notification_overrides": {"appointment_reminder": {"email": True}, "recall": {"email": False}},
            "channel_opt_outs": [],
        },
    ).json()
    assert {(k["field"], k["reason"]) for k in answer["kept"]} == {
        ("notification_overrides", "patient_choice"),
        ("channel_opt_outs", "patient_choice"),
    }
    assert answer["notification_overrides"] == {"appointment_reminder": {"email": False}, "recall": {"email": False}}
    assert answer["channel_opt_outs"] == ["sms"]
