"""Recall due dates through the API: the PMS sets when each patient is next due
(``PUT /patients/{id}/due``), and ``GET /recalls`` lists who is due, with how a recall can reach
each phone and email and why not, in the engine's own reason codes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.messaging.planning import create_message
from consentry.patients.models import PatientDue
from tests.conftest import Api, make_patient, make_practice

pytestmark = pytest.mark.django_db


def today(practice) -> date:
    return datetime.now(ZoneInfo(practice.timezone)).date()


def due(api, patient, when, category="recall"):
    body = {"category": category, "due_on": when.isoformat() if when else None}
    answer = api.put(f"/patients/{patient.pk}/due", body)
    assert answer.status_code == 200, answer.content
    return answer.json()


def listed(api, **params) -> list[dict]:
    answer = api.get("/recalls", **params)
    assert answer.status_code == 200, answer.content
    return answer.json()


def field_of(answer) -> str:
    return answer.json()["error"]["field"]


def test_put_due_sets_changes_and_clears_a_patients_due_date(practice, api):
    ava = make_patient(practice, "Ava", last_name="Rivera")
    when = today(practice) + timedelta(days=10)
    assert due(api, ava, when) == {"patient_id": str(ava.pk), "category": "recall", "due_on": when.isoformat()}
    due(api, ava, when + timedelta(days=1))
    assert list(PatientDue.objects.filter(patient=ava).values_list("category", "due_on")) == [
        ("recall", when + timedelta(days=1))
    ]
    # One date per category: another category is another date.
    due(api, ava, when, category="survey")
    assert PatientDue.objects.filter(patient=ava).count() == 2
    assert due(api, ava, None) == {"patient_id": str(ava.pk), "category": "recall", "due_on": None}
    assert list(PatientDue.objects.filter(patient=ava).values_list("category", flat=True)) == ["survey"]
    # Clearing what is not set changes nothing and is no error.
    assert due(api, ava, None)["due_on"] is None


def test_put_due_refuses_bad_input_naming_the_field_and_changes_nothing(practice, api):
    ava = make_patient(practice, "Ava")
    url = f"/patients/{ava.pk}/due"
    for body, field in [
        ({"category": "nope", "due_on": "2027-01-15"}, "category"),
        ({"category": "Recall; DROP", "due_on": "2027-01-15"}, "category"),
        ({"category": "recall", "due_on": "15/01/2027"}, "due_on"),
        ({"category": "recall", "due_on": "2027-02-30"}, "due_on"),
        ({"category": "recall"}, "due_on"),
        ({"due_on": "2027-01-15"}, "category"),
    ]:
        answer = api.put(url, body)
        assert answer.status_code == 422, (body, answer.content)
        assert field_of(answer) == field, (body, answer.json())
    assert api.client.put(f"/api/v1{url}", "not json", content_type="application/json").status_code == 400
    assert not PatientDue.objects.exists()


def test_another_practices_patient_is_a_404_and_their_dues_are_never_listed(practice, api):
    elm, elm_key = make_practice(name="Elm Clinic", number="+14155550101")
    theirs = make_patient(elm, "Zed", phones=[("+14155550199", "mobile")])
    answer = api.put(f"/patients/{theirs.pk}/due", {"category": "recall", "due_on": "2027-01-15"})
    assert answer.status_code == 404
    assert api.put("/patients/not-a-uuid/due", {"category": "recall", "due_on": "2027-01-15"}).status_code == 404
    assert not PatientDue.objects.exists()
    due(Api(elm_key), theirs, today(elm))
    assert listed(api) == []
    assert [p["first_name"] for p in listed(Api(elm_key))] == ["Zed"]


def test_get_recalls_lists_the_patients_due_before_the_date_soonest_first(practice, api):
    now = today(practice)
    soon = make_patient(practice, "Soon", last_name="A")
    overdue = make_patient(practice, "Overdue", last_name="B")
    later = make_patient(practice, "Later", last_name="C")
    other = make_patient(practice, "Other", last_name="D")
    make_patient(practice, "Never", last_name="E")
    due(api, soon, now + timedelta(days=10))
    due(api, overdue, now - timedelta(days=60))
    due(api, later, now + timedelta(days=45))
    due(api, other, now + timedelta(days=5), category="survey")
    # By default: recalls due before 30 days from today, overdue ones included.
    assert [p["first_name"] for p in listed(api)] == ["Overdue", "Soon"]
    horizon = (now + timedelta(days=60)).isoformat()
    assert [p["first_name"] for p in listed(api, due_before=horizon)] == ["Overdue", "Soon", "Later"]
    # "Before" is before: a patient due that very day is not listed.
    assert [p["first_name"] for p in listed(api, due_before=(now + timedelta(days=10)).isoformat())] == ["Overdue"]
    assert [p["first_name"] for p in listed(api, category="survey")] == ["Other"]
    assert [p["first_name"] for p in listed(api, due_before=horizon, limit=1, offset=1)] == ["Soon"]
    first = listed(api)[0]
    assert (first["id"], first["last_name"], first["due_on"]) == (
        str(overdue.pk),
        "B",
        (now - timedelta(days=60)).isoformat(),
    )


def test_get_recalls_refuses_bad_input_naming_the_field(practice, api):
    for params, field in [
        ({"category": "nope"}, "category"),
        ({"category": "x" * 65}, "category"),
        ({"due_before": "tomorrow"}, "due_before"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ]:
        answer = api.get("/recalls", **params)
        assert answer.status_code == 422, (params, answer.content)
        assert field_of(answer) == field, (params, answer.json())


def test_each_phone_and_email_says_whether_a_recall_can_reach_it_and_why_not(practice, api):
    blocked, opted_out, landline, invalid, fine = (
        "+14155550111",
        "+14155550122",
        "+14155550133",
        "+14151234567",
        "+14155550155",
    )
    ava = make_patient(
        practice,
        "Ava",
        phones=[
            (blocked, "mobile"),
            (opted_out, "mobile"),
            (landline, "landline"),
            (invalid, "mobile"),
            (fine, "mobile"),
        ],
        emails=["gone@x.example", "bounce@x.example", "ok@x.example"],
    )
    consent.set_block(practice=practice, number=blocked, categories=["recall"], source=Source.STAFF, actor="t")
    consent.record_sms_opt_out(practice=practice, number=opted_out, source=Source.SMS_KEYWORD, actor=opted_out)
    consent.record_email_state(
        practice=practice, email="gone@x.example", state=EmailState.UNSUBSCRIBED, source="one_click_unsubscribe",
        actor="gone@x.example",
    )  # fmt: skip
    consent.record_email_state(
        practice=practice, email="bounce@x.example", state=EmailState.BOUNCED, source="esp_webhook", actor="esp"
    )
    due(api, ava, today(practice))
    [row] = listed(api)
    phones = {p["number"]: p for p in row["phones"]}
    reach = {n: (p["sms"]["reason"], p["voice"]["reason"]) for n, p in phones.items()}
    assert reach == {
        blocked: ("blocked_for_category", "blocked_for_category"),  # a block stops texts and calls alike
        opted_out: ("sms_opted_out", None),  # a STOP stops texts, not calls
        landline: ("no_text_capable_phone", None),
        invalid: ("phone_invalid", "phone_invalid"),
        fine: (None, None),
    }
    assert all(p["sms"]["can_send"] == (p["sms"]["reason"] is None) for p in row["phones"])
    assert phones[blocked]["marks"] == ["blocked"] and phones[landline]["marks"] == ["landline"]
    assert phones[invalid]["valid"] is False and phones[landline]["line_type"] == "landline"
    emails = {e["address"]: (e["email"]["can_send"], e["email"]["reason"], e["marks"]) for e in row["emails"]}
    assert emails == {
        "gone@x.example": (False, "email_unsubscribed", ["email_unsubscribed"]),
        "bounce@x.example": (False, "email_bounced", ["email_bounced"]),
        "ok@x.example": (True, None, []),
    }
    # For the patient as a whole: the engine texts the first phone that can take it.
    assert [(c["channel"], c["can_send"], c["address"]) for c in row["channels"]] == [
        ("sms", True, fine),
        ("voice", True, opted_out),
        ("email", True, "ok@x.example"),
    ]


def test_a_block_for_another_category_does_not_stop_a_recall(practice, api):
    ava = make_patient(practice, "Ava", phones=[("+14155550111", "mobile")])
    consent.set_block(practice=practice, number="+14155550111", categories=["survey"], source=Source.STAFF, actor="t")
    due(api, ava, today(practice))
    [row] = listed(api)
    assert row["phones"][0]["sms"] == {"can_send": True, "reason": None}
    assert row["phones"][0]["marks"] == ["blocked"]  # the icon is there; it is not for recalls


def test_do_not_contact_and_the_preferred_phone_are_the_automations_rules(practice, api):
    dora = make_patient(practice, "Dora", phones=[("+14155550111", "mobile")], do_not_contact=True)
    ben = make_patient(
        practice,
        "Ben",
        phones=[("+14155550122", "mobile"), ("+14155550133", "landline")],
        preferred_phone="+14155550133",
    )
    for p in (dora, ben):
        due(api, p, today(practice))
    rows = {r["first_name"]: r for r in listed(api)}
    assert rows["Dora"]["do_not_contact"] is True
    assert {c["reason"] for c in rows["Dora"]["channels"]} == {"do_not_contact"}
    ben_phones = {p["number"]: p for p in rows["Ben"]["phones"]}
    assert ben_phones["+14155550133"]["preferred"] is True
    # An automation goes to the preferred phone only: a landline, so a call, and the mobile is not used.
    assert ben_phones["+14155550122"]["sms"]["reason"] == "not_preferred_phone"
    assert [(c["channel"], c["reason"]) for c in rows["Ben"]["channels"]][:2] == [
        ("sms", "no_text_capable_phone"),
        ("voice", None),
    ]


def test_what_the_list_says_is_what_a_recall_then_does(practice, api):
    """The list and the send agree: a recall goes by text exactly to the patients whose text is open."""
    numbers = ["+14155550111", "+14155550122", "+14155550133", "+14151234567", "+14155550155", "+14155550166"]
    patients = [
        make_patient(practice, f"P{i}", phones=[(n, "landline" if i == 2 else "mobile")]) for i, n in enumerate(numbers)
    ]
    consent.set_block(practice=practice, number=numbers[0], categories=["recall"], source=Source.STAFF, actor="t")
    consent.record_sms_opt_out(practice=practice, number=numbers[1], source=Source.SMS_KEYWORD, actor=numbers[1])
    consent.set_block(practice=practice, number=numbers[5], categories=["survey"], source=Source.STAFF, actor="t")
    for p in patients:
        due(api, p, today(practice))
    says = {r["id"]: r["channels"][0]["can_send"] for r in listed(api)}
    planned = create_message(
        practice=practice,
        kind="automation",
        category="recall",
        patient_ids=[p.pk for p in patients],
        content={"sms": "Time for your visit"},
    )
    does = {d.patient_id: d.status == "pending" for d in planned.deliveries}
    assert says == does
    assert list(says.values()) == [False, False, False, False, True, True]


def test_the_openapi_document_lists_the_reasons_and_marks_a_recall_answer_uses(client):
    from consentry.consent.selectors import MarkCode
    from consentry.records.dues import NOT_PREFERRED
    from consentry.vocabulary import Reason

    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]

    def enum_values(spec) -> set[str]:
        found: set[str] = set()
        for option in [spec, *spec.get("anyOf", []), *spec.get("items", {}).get("anyOf", [])]:
            if "$ref" in option:
                found |= set(schemas[option["$ref"].rsplit("/", 1)[1]]["enum"])
            found |= set(option.get("enum", []))
            if "const" in option:
                found.add(option["const"])
        if "items" in spec and "$ref" in spec["items"]:
            found |= set(schemas[spec["items"]["$ref"].rsplit("/", 1)[1]]["enum"])
        return found

    assert enum_values(schemas["ReachOut"]["properties"]["reason"]) == set(Reason) | {NOT_PREFERRED}
    assert enum_values(schemas["PhoneReachOut"]["properties"]["marks"]) == set(MarkCode)
    assert "/api/v1/patients/{patient_id}/due" in client.get("/api/v1/openapi.json").json()["paths"]
