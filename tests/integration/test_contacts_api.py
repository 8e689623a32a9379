"""Contacts API: an address's consent history read from the ledger, and staff opt-out on request."""

import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, ConsentNote, EmailState, Source
from consentry.consent.services import ConsentRefused
from consentry.messaging.models import Delivery
from tests.conftest import Api, drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER_PHONE = "+14155550122"
EMAIL = "ava.rivera@example.com"


def _text(client, body, sid, sender=PHONE, to="+14155550100"):
    response = send_sms_webhook(client, body=body, sender=sender, sid=sid, to=to)
    assert response.status_code == 200, response.content


def _history(api, address, **params):
    response = api.get("/contacts/history", address=address, **params)
    assert response.status_code == 200, response.content
    return response.json()


def _opt_out(api, address, reason="patient asked by phone"):
    return api.post("/contacts/opt-out", {"address": address, "reason": reason})


def _rehash(practice, event: dict) -> str:
    """An event's hash recomputed from the API's answer alone, as an auditor would."""
    return ledger.event_hash(
        ConsentEvent(
            practice_id=practice.pk,
            seq=event["seq"],
            subject=event["subject"],
            address=PHONE,
            state=event["state"],
            source=event["source"],
            actor=event["actor"],
            evidence=event["evidence"],
            created_at=datetime.fromisoformat(event["at"]),
            prev_hash=event["prev_hash"],
        )
    )


def test_history_shows_every_change_of_a_phone_in_order_with_its_evidence(client, practice, api, twilio):
    patient = make_patient(practice, "Ava", phones=[(PHONE, "mobile")])
    _text(client, "STOP", "SM1")
    _text(client, "Start", "SM2")
    drain_worker()
    # The carrier holds an opt-out we never saw: Twilio refuses the next text with 21610.
    twilio.errors[PHONE] = (400, 21610, "Attempt to send to unsubscribed recipient")
    sent = api.post(
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [str(patient.pk)],
            "content": {"sms": "Forms to sign"},
        },
    )
    assert sent.status_code == 202
    drain_worker()
    del twilio.errors[PHONE]
    _text(client, "UNSTOP", "SM3")
    assert _opt_out(api, "(415) 555-0111").json()["changed"] is True
    assert api.post("/blocks", {"number": PHONE, "categories": ["recall"]}).status_code == 201
    drain_worker()

    history = _history(api, "415-555-0111")
    assert history["address"] == PHONE
    assert history["status"] == {"address": PHONE, "sms": "opted_out", "email": None, "blocked_categories": ["recall"]}
    assert history["status"] == api.get("/contacts/status", address=PHONE).json()
    events = history["events"]
    assert [(e["subject"], e["state"], e["source"], e["actor"]) for e in events] == [
        ("sms", "opted_out", "sms_keyword", PHONE),
        ("sms", "opted_in", "sms_keyword", PHONE),
        ("sms", "opted_out", "carrier", "carrier"),
        ("sms", "opted_in", "sms_keyword", PHONE),
        ("sms", "opted_out", "staff", "api:initial"),
        ("block", '["recall"]', "api", "api:initial"),  # the key, by its label
    ]
    assert (events[0]["evidence"]["message_sid"], events[0]["evidence"]["keyword"]) == ("SM1", "STOP")
    assert (events[1]["evidence"]["message_sid"], events[1]["evidence"]["keyword"]) == ("SM2", "START")
    carrier = events[2]["evidence"]
    assert carrier["error_code"] == "21610"
    assert carrier["delivery_id"] == Delivery.objects.get(message__kind="manual").pk
    assert set(events[4]["evidence"]) == {"note"} and events[4]["note"] == "patient asked by phone"
    assert history["next_after_seq"] is None

    # Nothing else is in this practice's ledger, so the timeline is the whole chain: each event
    # links to the one before, and every hash can be recomputed from the answer alone.
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0]["prev_hash"] == ledger.GENESIS
    assert all(e["prev_hash"] == before["hash"] for before, e in zip(events, events[1:], strict=False))
    assert all(_rehash(practice, e) == e["hash"] for e in events)
    report = ledger.verify_chain(practice.pk)
    assert (report.ok, report.checked) == (True, 6)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


def test_history_of_an_email_address_lists_its_subscription_changes(practice, api):
    consent.record_email_state(
        practice=practice,
        email=EMAIL,
        state=EmailState.UNSUBSCRIBED,
        source=Source.ONE_CLICK_UNSUBSCRIBE,
        actor=EMAIL,
        evidence={"ip": "203.0.113.9", "user_agent": "Mail/1.0"},
    )
    consent.record_email_state(
        practice=practice,
        email=EMAIL,
        state=EmailState.SUBSCRIBED,
        source=Source.RESUBSCRIBE_CLICK,
        actor=EMAIL,
        evidence={"ip": "203.0.113.10"},
    )
    history = _history(api, "Ava.Rivera@Example.com")
    assert history["address"] == EMAIL
    assert history["status"] == {"address": EMAIL, "sms": None, "email": "subscribed", "blocked_categories": None}
    assert [(e["state"], e["source"], e["evidence"]) for e in history["events"]] == [
        ("unsubscribed", "one_click_unsubscribe", {"ip": "203.0.113.9", "user_agent": "Mail/1.0"}),
        ("subscribed", "resubscribe_click", {"ip": "203.0.113.10"}),
    ]


def test_history_lists_only_the_addresses_own_events(practice, api):
    patient = make_patient(
        practice, "Ava", phones=[(PHONE, "mobile")], emails=[EMAIL], do_not_contact=True, marketing_consent="yes"
    )
    consent.record_sms_opt_out(practice=practice, number=OTHER_PHONE, source=Source.SMS_KEYWORD, actor=OTHER_PHONE)
    consent.record_sms_opt_out(practice=practice, number=PHONE, source=Source.SMS_KEYWORD, actor=PHONE)
    # The patient's own flags are in the ledger, but they are not events of the phone or the email.
    assert ConsentEvent.objects.filter(address=ledger.patient_subject(patient.pk)).count() == 2
    assert [(e["seq"], e["subject"]) for e in _history(api, PHONE)["events"]] == [(4, "sms")]
    assert _history(api, EMAIL)["events"] == []


def test_another_practices_events_never_appear(client, practice, api):
    other, other_key = make_practice(name="Elm Clinic", number="+14155550900")
    _text(client, "STOP", "SM1", to=other.texting_number)
    consent.record_email_state(
        practice=other, email=EMAIL, state=EmailState.BOUNCED, source=Source.ESP_WEBHOOK, actor="esp"
    )
    assert ConsentEvent.objects.filter(practice=other).count() == 2

    mine = _history(api, PHONE)
    assert mine["events"] == [] and mine["status"]["sms"] == "opted_in"
    assert _history(api, EMAIL)["events"] == []
    assert _history(api, EMAIL)["status"]["email"] == "subscribed"

    _text(client, "STOP", "SM2")
    theirs = _history(Api(other_key), PHONE)
    assert [(e["seq"], e["evidence"]["message_sid"]) for e in theirs["events"]] == [(1, "SM1")]
    assert [(e["seq"], e["evidence"]["message_sid"]) for e in _history(api, PHONE)["events"]] == [(1, "SM2")]


def test_an_unknown_address_has_an_empty_history_and_the_default_status(api):
    assert _history(api, "+1 415 555 0199") == {
        "address": "+14155550199",
        "status": {"address": "+14155550199", "sms": "opted_in", "email": None, "blocked_categories": []},
        "events": [],
        "next_after_seq": None,
    }
    assert _history(api, "nobody@example.com")["status"]["email"] == "subscribed"


@pytest.mark.parametrize(
    "params",
    [
        {"address": "nonsense"},
        {"address": "not@an@email"},
        {"address": ""},
        {"address": "+1 415"},
    ],
)
def test_a_malformed_address_is_a_422_naming_it(api, params):
    response = api.get("/contacts/history", **params)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "address"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"address": PHONE, "limit": 0},
        {"address": PHONE, "limit": 5001},
        {"address": PHONE, "after_seq": -1},
        {"address": PHONE, "limit": "ten"},
    ],
)
def test_bad_history_parameters_are_a_422(api, params):
    response = api.get("/contacts/history", **params)
    assert response.status_code == 422
    assert response.json()["error"]["field"].split(".")[-1] in ("address", "limit", "after_seq")


def _flip(practice, number, times):
    """STOP and START alternately from ``number``: ``times`` events."""
    for i in range(times):
        record = consent.record_sms_opt_out if i % 2 == 0 else consent.record_sms_opt_in
        record(practice=practice, number=number, source=Source.SMS_KEYWORD, actor=number, evidence={"i": i})


def test_history_pages_with_limit_and_after_seq(practice, api):
    for _ in range(4):  # another number's events interleaved in the chain
        _flip(practice, PHONE, 2)
        _flip(practice, OTHER_PHONE, 1)
        consent.record_sms_opt_in(practice=practice, number=OTHER_PHONE, source=Source.SMS_KEYWORD, actor="x")
    whole = _history(api, PHONE)["events"]
    assert len(whole) == 8 and [e["evidence"]["i"] for e in whole] == [0, 1] * 4

    pages, after = [], 0
    while True:
        page = _history(api, PHONE, limit=3, after_seq=after)
        pages.append(page["events"])
        if page["next_after_seq"] is None:
            break
        after = page["next_after_seq"]
        assert after == page["events"][-1]["seq"]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [e for p in pages for e in p] == whole
    assert _history(api, PHONE, after_seq=whole[-1]["seq"])["events"] == []
    # A page that ends exactly on the last event says there is no more.
    assert _history(api, PHONE, limit=8)["next_after_seq"] is None
    assert _history(api, PHONE, limit=7)["next_after_seq"] == whole[6]["seq"]


def test_history_pages_hold_500_events_unless_asked_otherwise(practice, api):
    _flip(practice, PHONE, 501)
    first = _history(api, PHONE)
    assert len(first["events"]) == 500 and first["next_after_seq"] == 500
    assert [e["seq"] for e in _history(api, PHONE, after_seq=500)["events"]] == [501]
    assert len(_history(api, PHONE, limit=5000)["events"]) == 501


# --- staff opt-out on request ---------------------------------------------------


def test_staff_opt_out_of_a_phone_is_recorded_as_staff_with_the_reason(client, practice, api):
    patient = make_patient(practice, "Ava", phones=[(PHONE, "mobile")])
    response = _opt_out(api, "(415) 555-0111", reason="  patient asked by phone  ")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["address"], body["changed"]) == (PHONE, True)
    assert body["status"] == {"address": PHONE, "sms": "opted_out", "email": None, "blocked_categories": []}
    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source, event.actor) == ("opted_out", "staff", "api:initial")
    # The reason is an encrypted note beside the ledger, never in the append-only ledger itself.
    assert event.evidence == {"note": ConsentNote.objects.get().pk}
    assert ConsentNote.objects.get().text == "patient asked by phone"
    assert body["event"]["seq"] == event.seq and body["event"]["hash"] == event.hash
    assert body["event"]["note"] == "patient asked by phone"
    assert ledger.verify_chain(practice.pk).ok and ledger.projection_matches(practice.pk)

    # Texts to the number stop at once; no confirmation text is sent for a staff opt-out.
    planned = api.post(
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [str(patient.pk)],
            "content": {"sms": "Forms"},
        },
    ).json()
    assert [(d["status"], d["reason"]) for d in planned["deliveries"]] == [("skipped", "sms_opted_out")]
    drain_worker()
    assert not Delivery.objects.filter(status__in=["sent", "delivered"]).exists()


def test_staff_opt_out_is_idempotent(practice, api):
    assert _opt_out(api, PHONE).json()["changed"] is True
    again = _opt_out(api, "415.555.0111", reason="asked again at the front desk")
    assert again.status_code == 200
    assert (again.json()["changed"], again.json()["event"]) == (False, None)
    assert again.json()["status"]["sms"] == "opted_out"
    assert ConsentEvent.objects.count() == 1


def test_staff_opt_out_of_a_number_opted_out_by_stop_records_nothing(client, practice, api):
    _text(client, "STOP", "SM1")
    assert _opt_out(api, PHONE).json()["changed"] is False
    assert ConsentEvent.objects.get().source == "sms_keyword"


def test_staff_opt_out_of_an_email_unsubscribes_it(practice, api):
    response = _opt_out(api, "Ava.Rivera@Example.com", reason="asked at check-in")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["address"], body["changed"]) == (EMAIL, True)
    assert body["status"] == {"address": EMAIL, "sms": None, "email": "unsubscribed", "blocked_categories": None}
    event = ConsentEvent.objects.get(subject="email", address=EMAIL)
    assert (event.state, event.source, event.actor, ledger.notes([event])) == (
        "unsubscribed",
        "staff",
        "api:initial",
        {event.pk: "asked at check-in"},
    )
    assert _opt_out(api, EMAIL).json()["changed"] is False
    assert ConsentEvent.objects.count() == 1


def test_staff_opt_out_leaves_a_bounced_email_bounced(practice, api):
    consent.record_email_state(
        practice=practice, email=EMAIL, state=EmailState.BOUNCED, source=Source.ESP_WEBHOOK, actor="esp"
    )
    body = _opt_out(api, EMAIL).json()
    assert (body["changed"], body["status"]["email"]) == (False, "bounced")
    assert ConsentEvent.objects.count() == 1


def test_staff_opt_out_at_one_practice_does_not_touch_another(practice, api):
    other, other_key = make_practice(name="Elm Clinic", number="+14155550900")
    assert _opt_out(Api(other_key), PHONE).json()["changed"] is True
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_in"
    assert _history(api, PHONE)["events"] == []
    assert _opt_out(api, PHONE).json()["changed"] is True


@pytest.mark.parametrize(
    "body, field",
    [
        ({"address": "nonsense", "reason": "asked"}, "address"),
        ({"address": "a@b", "reason": "asked"}, "address"),
        ({"address": PHONE, "reason": "   "}, "reason"),
        ({"address": PHONE, "reason": ""}, "reason"),
        ({"address": PHONE}, "reason"),
        ({"reason": "asked"}, "address"),
        ({"address": PHONE, "reason": "x" * 501}, "reason"),
        ({"address": PHONE, "reason": "a\x00b"}, "reason"),
        ({"address": PHONE, "reason": 5}, "reason"),
        ({"address": PHONE, "reason": "asked", "state": "opted_in"}, "state"),
    ],
)
def test_a_bad_opt_out_request_is_a_422_naming_the_field_and_records_nothing(api, body, field):
    response = api.post("/contacts/opt-out", body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["field"] == field or error["field"].split(".")[-1] == field
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/contacts/opt-in"),
        ("post", "/contacts/opt_in"),
        ("post", "/contacts/optin"),
        ("post", "/contacts/start"),
        ("post", "/contacts/unstop"),
        ("post", "/contacts/subscribe"),
        ("put", "/contacts/opt-out"),
        ("delete", "/contacts/opt-out"),
        ("patch", "/contacts/opt-out"),
        ("post", "/contacts/status"),
    ],
)
def test_there_is_no_way_for_staff_to_opt_a_phone_back_in(practice, api, method, path):
    assert _opt_out(api, PHONE).json()["changed"] is True
    response = getattr(api.client, method)(
        f"/api/v1{path}", json.dumps({"address": PHONE, "reason": "x"}), content_type="application/json"
    )
    assert response.status_code in (404, 405)
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_out"
    # Nor through the ledger's service: staff (and every source but the phone's own keyword) is refused.
    for source in (Source.STAFF, Source.API):
        with pytest.raises(ConsentRefused):
            consent.record_sms_opt_in(practice=practice, number=PHONE, source=source, actor="api:initial")
    assert ConsentEvent.objects.count() == 1


def test_only_the_person_opts_back_in_after_a_staff_opt_out(client, practice, api):
    _opt_out(api, PHONE)
    _text(client, "START", "SM1")
    history = _history(api, PHONE)
    assert [(e["state"], e["source"]) for e in history["events"]] == [
        ("opted_out", "staff"),
        ("opted_in", "sms_keyword"),
    ]
    assert history["status"]["sms"] == "opted_in"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["address", "reason", "other"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=40),
        max_size=3,
    )
)
def test_random_opt_out_bodies_never_500(api, body):
    assert api.post("/contacts/opt-out", body).status_code in (200, 422)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=st.text(max_size=40), limit=st.integers(-5, 6000) | st.text(max_size=5))
def test_random_history_lookups_never_500(api, address, limit):
    assert api.get("/contacts/history", address=address, limit=limit).status_code in (200, 422)
