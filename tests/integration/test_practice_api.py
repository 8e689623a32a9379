"""Practice settings API: the API key's practice, read and changed through one validation."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger
from consentry.consent.models import ConsentEvent
from consentry.conversations.models import Conversation
from consentry.patients.models import Practice
from consentry.providers.models import SandboxMessage
from tests.conftest import Api, drain_worker, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER_PHONE = "+14155550122"


def _patch(api, body):
    return api.client.patch("/api/v1/practice", json.dumps(body), content_type="application/json")


def _get(api):
    response = api.get("/practice")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_api_keys_practice_and_its_settings(practice, api, settings):
    settings.CONSENTRY_PROVIDER = "sandbox"
    assert _get(api) == {
        "id": str(practice.pk),
        "name": "Oak Clinic",
        "texting_number": "+14155550100",
        "timezone": "America/New_York",
        "contact_phone": "+14155550100",
        "email_from": "",
        "send_window": ["00:00", "00:00"],
        "keyword_mode": "self",
        "keyword_languages": [],
        "reasonable_means": "flag",
        "contact_preferences_source": "consentry",
        "sms_rate_per_second": None,
        "email_rate_per_second": None,
        "frequency_caps": False,
        "frequency_cap_per_day": 1,
        "frequency_cap_per_week": 3,
        "opt_out_hint": "first",
        "opt_out_hint_text": "Reply STOP to opt out.",
        "sms_provider": "sandbox",
        "email_provider": "sandbox",
    }
    practice.sms_provider, practice.email_provider = "twilio", "smtp"
    practice.save()
    assert (_get(api)["sms_provider"], _get(api)["email_provider"]) == ("twilio", "smtp")


def test_each_key_sees_only_its_own_practice(practice, api):
    other, other_key = make_practice(name="Elm Clinic", number="+14155550900")
    assert _get(Api(other_key))["id"] == str(other.pk)
    assert _patch(Api(other_key), {"name": "Elm Family Clinic"}).status_code == 200
    assert _get(api)["name"] == "Oak Clinic"
    assert Practice.objects.get(pk=other.pk).name == "Elm Family Clinic"


def test_without_a_valid_key_the_practice_is_not_shown(client, practice):
    assert client.get("/api/v1/practice").status_code == 401
    assert Api("csk_wrong").get("/practice").status_code == 401
    assert Api("csk_wrong").client.patch("/api/v1/practice", "{}", content_type="application/json").status_code == 401


def test_every_editable_setting_can_be_changed_at_once(practice, api):
    changes = {
        "name": "  Oak Family Clinic ",
        "timezone": "America/Los_Angeles",
        "contact_phone": "(415) 555-0199",
        "email_from": "Front.Desk@OakClinic.example",
        "send_window": ["08:30", "20:00"],
        "keyword_mode": "provider",
        "keyword_languages": ["es", "EN"],
        "reasonable_means": "auto",
        "contact_preferences_source": "ehr",
        "sms_rate_per_second": 2.5,
        "email_rate_per_second": 20,
        "frequency_caps": True,
        "frequency_cap_per_day": 2,
        "frequency_cap_per_week": 5,
    }
    response = _patch(api, changes)
    assert response.status_code == 200, response.content
    expected = {
        **changes,
        "name": "Oak Family Clinic",
        "contact_phone": "+14155550199",
        "email_from": "front.desk@oakclinic.example",
        "keyword_languages": ["es"],
        "email_rate_per_second": 20.0,
    }
    body = response.json()
    assert {k: body[k] for k in changes} == expected
    assert _get(api) == body
    stored = Practice.objects.get(pk=practice.pk)
    assert (stored.name, stored.timezone, stored.reasonable_means) == (
        "Oak Family Clinic",
        "America/Los_Angeles",
        "auto",
    )
    assert (stored.send_window_start.isoformat(), stored.send_window_end.isoformat()) == ("08:30:00", "20:00:00")
    assert (stored.frequency_caps, stored.frequency_cap_per_day, stored.frequency_cap_per_week) == (True, 2, 5)


def test_only_the_fields_sent_change(practice, api):
    before = _get(api)
    after = _patch(api, {"reasonable_means": "auto"}).json()
    assert after == {**before, "reasonable_means": "auto"}
    assert _patch(api, {}).json() == after


def test_null_rates_go_back_to_the_providers_default_and_an_empty_sender_is_removed(practice, api):
    _patch(api, {"sms_rate_per_second": 3, "email_rate_per_second": 4, "email_from": "desk@example.com"})
    body = _patch(api, {"sms_rate_per_second": None, "email_rate_per_second": None, "email_from": ""}).json()
    assert (body["sms_rate_per_second"], body["email_rate_per_second"], body["email_from"]) == (None, None, "")
    stored = Practice.objects.get(pk=practice.pk)
    assert (stored.sms_rate_per_second, stored.email_rate_per_second, stored.email_from) == (None, None, "")


BAD = [
    ("name", ""),
    ("name", "   "),
    ("name", "x" * 201),
    ("name", "a\x00b"),
    ("name", None),
    ("name", 5),
    ("timezone", "Mars/Olympus_Mons"),
    ("timezone", "../etc"),
    ("timezone", ""),
    ("timezone", None),
    ("contact_phone", "not a phone"),
    ("contact_phone", ""),
    ("contact_phone", None),
    ("email_from", "front desk"),
    ("email_from", None),
    ("send_window", ["8am", "9pm"]),
    ("send_window", ["08:00"]),
    ("send_window", "08:00-21:00"),
    ("send_window", ["08:00", "21:00", "22:00"]),
    ("send_window", [8, 21]),
    ("send_window", None),
    ("keyword_mode", "carrier"),
    ("keyword_mode", None),
    ("keyword_languages", ["fr"]),
    ("keyword_languages", "es"),
    ("keyword_languages", [1]),
    ("keyword_languages", None),
    ("reasonable_means", "ignore"),
    ("reasonable_means", ""),
    ("reasonable_means", None),
    ("reasonable_means", ["auto"]),
    ("sms_rate_per_second", 0),
    ("sms_rate_per_second", -1),
    ("sms_rate_per_second", 10_001),
    ("sms_rate_per_second", "fast"),
    ("sms_rate_per_second", "2"),
    ("sms_rate_per_second", True),
    ("email_rate_per_second", 0),
    ("frequency_caps", "yes"),
    ("frequency_caps", "true"),
    ("frequency_caps", 1),
    ("frequency_caps", None),
    ("frequency_cap_per_day", 0),
    ("frequency_cap_per_day", 101),
    ("frequency_cap_per_day", 1.5),
    ("frequency_cap_per_day", "2"),
    ("frequency_cap_per_day", True),
    ("frequency_cap_per_week", -3),
    ("frequency_cap_per_week", None),
]


@pytest.mark.parametrize("field, value", BAD, ids=[f"{f}={v!r}"[:40] for f, v in BAD])
def test_a_bad_value_is_a_422_naming_the_field_and_nothing_changes(practice, api, field, value):
    before = _get(api)
    # A good change sent alongside is not applied either.
    response = _patch(api, {"name": "Renamed Clinic", field: value} if field != "name" else {field: value})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["field"].split(".")[0] == field, error
    assert _get(api) == before


@pytest.mark.parametrize(
    "field",
    [
        "texting_number",
        "region",
        "twilio_auth_token",
        "twilio_account_sid",
        "sms_provider",
        "id",
        "created_at",
        "quiet_hours",
        "send_window_start",
    ],
)
def test_an_unknown_or_read_only_field_is_a_422(practice, api, field):
    before = _get(api)
    response = _patch(api, {"name": "Renamed Clinic", field: "+14155550999"})
    assert response.status_code == 422, response.content
    assert field in response.json()["error"]["field"].split(".")
    assert _get(api) == before
    assert Practice.objects.get(pk=practice.pk).texting_number == "+14155550100"


def test_a_body_that_is_not_an_object_is_refused(practice, api):
    for raw in ("[]", '"auto"', "null", "{not json"):
        response = api.client.patch("/api/v1/practice", raw, content_type="application/json")
        assert response.status_code in (400, 422)
    assert _get(api)["name"] == "Oak Clinic"


def _text(client, body, sid, sender):
    response = send_sms_webhook(client, body=body, sender=sender, sid=sid)
    assert response.status_code == 200, response.content


def _texts_to(number):
    return list(SandboxMessage.objects.filter(to=number).values_list("body", flat=True))


def test_the_reasonable_means_policy_set_here_decides_what_a_please_stop_reply_does(client, practice, api):
    assert _patch(api, {"reasonable_means": "auto"}).json()["reasonable_means"] == "auto"
    _text(client, "please stop texting me", "SM1", PHONE)
    drain_worker()
    event = ConsentEvent.objects.get(subject="sms", address=PHONE)
    assert (event.state, event.source, event.evidence["message_sid"]) == ("opted_out", "sms_reply", "SM1")
    [confirmation] = _texts_to(PHONE)
    assert "Oak Clinic" in confirmation and "START" in confirmation
    assert Conversation.objects.get(phone=PHONE).flag == ""

    assert _patch(api, {"reasonable_means": "flag"}).json()["reasonable_means"] == "flag"
    _text(client, "please stop texting me", "SM2", OTHER_PHONE)
    drain_worker()
    assert ledger.address_status(practice.pk, OTHER_PHONE).sms == "opted_in"
    assert not ConsentEvent.objects.filter(address=OTHER_PHONE).exists()
    assert Conversation.objects.get(phone=OTHER_PHONE).flag == "possible_opt_out"
    assert _texts_to(OTHER_PHONE) == []


def test_keyword_languages_set_here_take_effect(client, practice, api):
    _text(client, "PARAR", "SM1", PHONE)
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_in"
    _patch(api, {"keyword_languages": ["es"]})
    _text(client, "PARAR", "SM2", PHONE)
    assert ledger.address_status(practice.pk, PHONE).sms == "opted_out"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "name",
    "timezone",
    "contact_phone",
    "email_from",
    "send_window",
    "keyword_mode",
    "keyword_languages",
    "reasonable_means",
    "contact_preferences_source",
    "sms_rate_per_second",
    "email_rate_per_second",
    "frequency_caps",
    "frequency_cap_per_day",
    "frequency_cap_per_week",
    "texting_number",
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4)))
def test_random_settings_never_500_and_a_refusal_changes_nothing(practice, api, body):
    before = _get(api)
    response = _patch(api, body)
    assert response.status_code in (200, 400, 422)
    if response.status_code != 200:
        assert _get(api) == before
