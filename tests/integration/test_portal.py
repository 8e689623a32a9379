"""The patient portal: notification settings per type and channel, stopping texts or email, taking an
opted-out phone off the settings, the patient's notices, and the portal link in every email's footer.

Each change the page makes is a ledger event (source ``portal``, the click's IP address and user agent as
evidence), and the next notification follows it: the page and ``decide()`` agree.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentry.consent import ledger, tokens
from consentry.consent import services as consent
from consentry.consent.models import ConsentEvent, EmailState, SmsState, Source, Subject
from consentry.messaging.models import Delivery
from consentry.messaging.planning import create_message
from consentry.patients.categories import set_notification_channels
from consentry.patients.models import Category, Patient
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, make_patient, make_practice, send_sms_webhook

pytestmark = pytest.mark.django_db

MOBILE, OTHER, LANDLINE = "+14155550111", "+14155550112", "+14155550113"
AVA, BEN = "ava@example.com", "ben@example.com"
IP, UA = "198.51.100.23", "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile"
TEXT_AND_EMAIL = {"sms": "Your visit is tomorrow.", "email": {"subject": "Tomorrow", "text": "Your visit is tomorrow."}}


def _path(patient) -> str:
    return f"/portal/{tokens.portal_token(patient.pk)}"


def _get(patient) -> str:
    response = Client().get(_path(patient))
    assert response.status_code == 200
    return response.content.decode()


def _post(patient, data, path=None):
    # A browser with no session and no CSRF token: the token in the URL is the only credential.
    client = Client(enforce_csrf_checks=True)
    return client.post(path or _path(patient), data, REMOTE_ADDR=IP, HTTP_USER_AGENT=UA)


def _form(page: str) -> dict[str, list[str]]:
    """The settings form as the page has it, as a browser would send it unchanged."""
    return {
        "action": ["settings"],
        "cell": re.findall(r'name="cell" value="([^"]+)"', page),
        "on": re.findall(r'name="on" value="([^"]+)" checked', page),
        "channel": re.findall(r'name="channel" value="([^"]+)"', page),
        "channel_on": re.findall(r'name="channel_on" value="([^"]+)" checked', page),
    }


def _toggle(patient, switch: str, on: bool, field: str = "on") -> object:
    """Tick or untick one switch of the page's form and save it."""
    form = _form(_get(patient))
    form[field] = [v for v in form[field] if v != switch] + ([switch] if on else [])
    return _post(patient, form)


def _notify(patient, category="appointment_reminder", content=None, kind="notification"):
    """Plan a message to the patient; its deliveries as (channel, address, status, reason)."""
    planned = create_message(
        practice=patient.practice,
        kind=kind,
        category=category,
        patient_ids=[patient.pk],
        content=content or TEXT_AND_EMAIL,
    )
    rows = Delivery.objects.filter(message=planned.message).values_list("channel", "address", "status", "reason")
    return sorted((channel, address or None, status, reason or None) for channel, address, status, reason in rows)


def _patient_events(patient):
    return list(ConsentEvent.objects.filter(address=ledger.patient_subject(patient.pk)).order_by("seq"))


def _portal_evidence(event, patient):
    assert (event.source, event.actor) == (Source.PORTAL, f"portal:{patient.pk}")
    assert event.evidence["ip"] == IP and event.evidence["user_agent"] == UA


def _cells(page: str, key: str) -> list[str]:
    """The channels a type has a switch for (always-on ones excluded)."""
    return [v.split(":")[1] for v in re.findall(rf'name="cell" value="({key}:[a-z_]+)"', page)]


# --- 1. the notice at the top ---------------------------------------------------------------------------------


def test_an_opted_out_phone_puts_a_notice_on_top_that_leads_to_the_settings(practice):
    mia = make_patient(practice, "Mia", phones=[(MOBILE, "mobile"), (OTHER, "mobile")])
    page = _get(mia)
    assert 'class="warning"' not in page  # nothing to warn about yet

    consent.record_sms_opt_out(practice=practice, number=MOBILE, source=Source.SMS_KEYWORD, actor=MOBILE)
    page = _get(mia)
    warning = re.search(r'<section class="warning".*?</section>', page, re.S)
    assert warning, page
    assert MOBILE in warning[0] and OTHER not in warning[0]
    assert '<a class="button" href="#settings">Edit notification settings</a>' in warning[0]
    # It comes first, and the button lands on the settings, where the phone is red with its way back.
    assert page.index('class="warning"') < page.index('id="notices-title"') < page.index('<section id="settings"')
    red = re.search(rf'<li class="opted-out" data-address="\{MOBILE}">(.*?)</li>', page, re.S)
    assert red and 'href="sms:+14155550100?&amp;body=UNSTOP">Opt in</a>' in red[1]
    assert page.index('id="settings"') < page.index(f'data-address="{MOBILE}"')
    assert "reply <strong>STOP</strong> to any text" in page

    # Back in by the text the Opt in button composes: the notice goes.
    send_sms_webhook(Client(), body="UNSTOP", sender=MOBILE, sid="SMportal-unstop")
    assert 'class="warning"' not in _get(mia)


def test_the_page_is_never_kept_and_sets_no_cookie(practice):
    mia = make_patient(practice, "Mia", phones=[(MOBILE, "mobile")])
    response = Client().get(_path(mia))
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    assert not response.cookies
    response = _post(mia, {"action": "stop_texts", "number": MOBILE})
    assert response.status_code == 200 and not response.cookies


# --- 2. switches per type and channel, within what the practice enables --------------------------------------


def test_a_type_offers_the_practices_channels_and_in_app_and_locks_what_cannot_be_turned_off(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=[AVA])
    page = _get(ava)
    assert _cells(page, "appointment_reminder") == ["in_app", "sms", "email"]  # no calls: the practice makes none
    assert _cells(page, "recall") == ["in_app", "sms"]
    assert _cells(page, "message_received") == ["in_app", "email"]
    # Account and security notices: always on, no switch to send.
    assert _cells(page, "system") == []
    system = re.search(r"<legend>Account and security notices</legend>(.*?)</fieldset>", page, re.S)[1]
    assert "checked disabled> In this portal (always on)" in system
    # What the practice's grid has on is ticked; in-app, not in the grid here, is not.
    form = _form(page)
    assert "appointment_reminder:sms" in form["on"] and "appointment_reminder:in_app" not in form["on"]
    # "Ways to reach you": every channel the practice uses, but in-app (which cannot be turned off).
    assert form["channel"] == ["sms", "email"] and form["channel_on"] == ["sms", "email"]

    # The practice starts calling for recalls: the patient gets that switch (and the channel) too.
    set_notification_channels(
        category=Category.objects.get(practice=practice, key="recall"), notification_channels=["sms", "voice"]
    )
    page = _get(ava)
    assert _cells(page, "recall") == ["in_app", "sms", "voice"] and "voice" in _form(page)["channel"]


def test_a_channel_the_patient_already_has_on_outside_the_grid_is_shown_so_it_can_be_turned_off(practice):
    ava = make_patient(practice, "Ava", emails=[AVA], notification_overrides={"recall": {"email": True}})
    page = _get(ava)
    assert _cells(page, "recall") == ["in_app", "sms", "email"] and "recall:email" in _form(page)["on"]
    assert _toggle(ava, "recall:email", False).status_code == 200
    ava.refresh_from_db()
    assert ava.notification_overrides == {}
    assert "recall:email" not in _cells(_get(ava), "recall")


def test_saving_a_switch_is_a_ledger_event_and_the_next_notification_follows_it(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=[AVA])
    assert _notify(ava) == [("email", AVA, "pending", None), ("sms", MOBILE, "pending", None)]

    response = _toggle(ava, "appointment_reminder:email", False)
    assert response.status_code == 200
    assert "Your notification settings are saved." in response.content.decode()
    ava.refresh_from_db()
    assert ava.notification_overrides == {"appointment_reminder": {"email": False}}
    [event] = _patient_events(ava)
    assert (event.subject, event.address) == (Subject.NOTIFICATIONS, f"patient:{ava.pk}")
    assert json.loads(event.state)["overrides"] == {"appointment_reminder": {"email": False}}
    _portal_evidence(event, ava)
    assert _notify(ava) == [("email", None, "skipped", "channel_off_for_type"), ("sms", MOBILE, "pending", None)]
    assert "appointment_reminder:email" not in _form(_get(ava))["on"]  # the page shows what it saved

    # In-app on for reminders: the next one is also a notice in the portal.
    assert _toggle(ava, "appointment_reminder:in_app", True).status_code == 200
    assert ("in_app", None, "pending", None) in _notify(ava)

    # Back as the practice has it: no choice of the patient's left, and an event for that too.
    _toggle(ava, "appointment_reminder:email", True)
    _toggle(ava, "appointment_reminder:in_app", False)
    ava.refresh_from_db()
    assert ava.notification_overrides == {}
    assert len(_patient_events(ava)) == 4
    # Saving what is already so records nothing.
    again = _post(ava, _form(_get(ava)))
    assert again.status_code == 200 and "Nothing changed" in again.content.decode()
    assert len(_patient_events(ava)) == 4
    assert ledger.projection_matches(practice.pk) and ledger.verify_chain(practice.pk).ok


def test_a_channel_turned_off_for_every_type_stops_it_for_all_but_what_cannot_be_turned_off(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=[AVA])
    response = _toggle(ava, "sms", False, field="channel_on")
    assert response.status_code == 200
    ava.refresh_from_db()
    assert ava.channel_opt_outs == ["sms"]
    _portal_evidence(_patient_events(ava)[-1], ava)
    assert "Off for every notification: Text messages" in response.content.decode()
    assert _notify(ava) == [("email", AVA, "pending", None), ("sms", None, "skipped", "channel_opted_out_by_patient")]
    # The phone itself is not opted out: a staff text still reaches it.
    assert _notify(ava, content={"sms": "We called you."}, kind="manual") == [("sms", MOBILE, "pending", None)]
    # A type the patient cannot turn off ignores it (the practice texts account notices here).
    set_notification_channels(
        category=Category.objects.get(practice=practice, key="system"), notification_channels=["sms"]
    )
    assert _notify(ava, category="system", content={"sms": "New sign-in"}) == [("sms", MOBILE, "pending", None)]
    assert _toggle(ava, "sms", True, field="channel_on").status_code == 200
    ava.refresh_from_db()
    assert ava.channel_opt_outs == []


# --- bad input changes nothing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        ({"cell": ["gossip:sms"], "on": ["gossip:sms"]}, "there is no notification type 'gossip'"),
        ({"cell": ["recall:fax"], "on": ["recall:fax"]}, "recall notices are not sent by fax"),
        ({"cell": ["recall:voice"], "on": ["recall:voice"]}, "recall notices are not sent by voice"),
        ({"cell": ["system:in_app"], "on": []}, "system notices cannot be turned off"),
        ({"cell": [], "on": ["recall:sms"]}, "this form was not sent by this page"),
        ({"cell": ["recall"], "on": []}, "this form was not sent by this page"),
        ({"channel": ["in_app"], "channel_on": []}, "in_app cannot be turned off for every notice"),
        ({"channel": ["pigeon"], "channel_on": []}, "pigeon cannot be turned off for every notice"),
        ({"channel": [], "channel_on": ["sms"]}, "this form was not sent by this page"),
        ({"action": "reboot"}, "this page cannot do that"),
        ({"action": "stop_texts", "number": "+14155559999"}, "that number is not one of this patient's phones"),
        ({"action": "remove_phone", "number": OTHER}, "only a number that opted out of texts can be removed"),
        ({"action": "remove_phone", "number": "+14155559999"}, "that number is not one of this patient's phones"),
        ({"action": "restore_phone", "number": OTHER}, "that number is not one you removed"),
    ],
)
def test_a_bad_change_is_refused_with_a_clear_error_and_changes_nothing(practice, change, words):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile"), (OTHER, "mobile")], emails=[AVA])
    consent.record_sms_opt_out(practice=practice, number=MOBILE, source=Source.SMS_KEYWORD, actor=MOBILE)
    before = ledger.current_projection(practice.pk), ConsentEvent.objects.count()
    # A valid change rides along with the bad one: it must not be saved either.
    form = _form(_get(ava))
    form["on"] = [v for v in form["on"] if v != "appointment_reminder:email"]
    for field, value in change.items():
        form[field] = value if isinstance(value, list) else [value]
    response = _post(ava, form)
    assert response.status_code == 400
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', response.content.decode(), re.S)
    assert error and words.lower() in error[1].lower().replace("&#x27;", "'"), error
    assert "Nothing was changed." in error[1]
    assert (ledger.current_projection(practice.pk), ConsentEvent.objects.count()) == before


def test_every_token_check_stays_as_strict_for_changes(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")])
    old = tokens.portal_token(ava.pk, issued_at=datetime.now(UTC) - timedelta(days=8))
    other_kind = tokens.unsubscribe_token(practice.pk, AVA)
    token = tokens.portal_token(ava.pk)
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    data = {"action": "stop_texts", "number": MOBILE}
    for bad, status in ((old, 400), (other_kind, 400), (tampered, 400), (tokens.portal_token(uuid.uuid4()), 404)):
        assert _post(ava, data, path=f"/portal/{bad}").status_code == status
    assert not ConsentEvent.objects.filter(address=MOBILE).exists()


# --- 3. stopping texts or email entirely ----------------------------------------------------------------------


def test_stopping_texts_to_a_phone_is_a_real_opt_out_of_that_number_in_the_ledger(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=[AVA])
    sister = make_patient(practice, "Zoe", phones=[(MOBILE, "mobile")])  # the family's one phone
    page = _get(ava)
    assert 'name="action" value="stop_texts"' in page

    response = _post(ava, {"action": "stop_texts", "number": MOBILE})
    assert response.status_code == 200
    assert f"{MOBILE} will get no more texts" in response.content.decode()
    assert "text UNSTOP to +14155550100" in response.content.decode()
    [event] = ConsentEvent.objects.filter(address=MOBILE)
    assert (event.subject, event.state) == (Subject.SMS, SmsState.OPTED_OUT)
    _portal_evidence(event, ava)
    # Nothing is texted to it afterwards, of any kind, for anyone who gives it.
    assert ("sms", MOBILE, "skipped", "sms_opted_out") in _notify(ava)
    assert _notify(sister, content={"sms": "Flu shots"}, kind="broadcast", category="announcement") == [
        ("sms", MOBILE, "skipped", "sms_opted_out")
    ]
    # The page now shows it red, with its way back; asking again records nothing.
    assert re.search(rf'<li class="opted-out" data-address="\{MOBILE}">', response.content.decode())
    assert _post(ava, {"action": "stop_texts", "number": MOBILE}).status_code == 200
    assert ConsentEvent.objects.filter(address=MOBILE).count() == 1
    # Only a text from the phone opts it back in.
    send_sms_webhook(Client(), body="UNSTOP", sender=MOBILE, sid="SMportal-back")
    assert ("sms", MOBILE, "pending", None) in _notify(ava)


def test_stopping_all_email_unsubscribes_every_address_and_turns_email_notifications_off(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")], emails=[AVA, BEN])
    response = _post(ava, {"action": "stop_email"})
    assert response.status_code == 200
    for address in (AVA, BEN):
        [event] = ConsentEvent.objects.filter(address=address)
        assert (event.subject, event.state) == (Subject.EMAIL, EmailState.UNSUBSCRIBED)
        _portal_evidence(event, ava)
    ava.refresh_from_db()
    assert ava.channel_opt_outs == ["email"]
    _portal_evidence(_patient_events(ava)[-1], ava)
    # Notices about visits ignore an unsubscribe; they obey the patient's channel opt-out.
    assert ("email", None, "skipped", "channel_opted_out_by_patient") in _notify(ava)
    assert _notify(
        ava, content={"email": {"subject": "News", "text": "Hi"}}, kind="broadcast", category="announcement"
    ) == [("email", AVA, "skipped", "email_unsubscribed")]
    page = response.content.decode()
    assert page.count("Send me an opt-in email") == 2 and 'value="stop_email"' not in page


# --- 4. removing an opted-out phone from the notification settings ---------------------------------------------


def test_an_opted_out_phone_taken_off_the_settings_gets_no_notification_and_keeps_its_history(practice):
    set_notification_channels(
        category=Category.objects.get(practice=practice, key="recall"), notification_channels=["sms", "voice"]
    )
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile"), (OTHER, "mobile")])
    consent.record_sms_opt_out(practice=practice, number=MOBILE, source=Source.SMS_KEYWORD, actor=MOBILE)
    history = list(ConsentEvent.objects.filter(address=MOBILE))
    call_and_text = {"sms": "Time for a check-up", "voice": "Time for a check-up"}
    # Calls are not texts: before, the recall call rings the opted-out phone.
    assert ("voice", MOBILE, "pending", None) in _notify(ava, "recall", call_and_text)

    response = _post(ava, {"action": "remove_phone", "number": MOBILE})
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{MOBILE} is off your notification settings" in page
    assert 'class="warning"' not in page  # no longer a reason to warn
    assert f'<li class="opted-out" data-address="{MOBILE}">' not in page
    assert re.search(rf'<li class="removed" data-address="\{MOBILE}">', page)
    ava.refresh_from_db()
    assert ava.notification_phones_removed == [MOBILE]
    [event] = _patient_events(ava)
    assert json.loads(event.state)["phones_removed"] == [MOBILE]
    _portal_evidence(event, ava)
    # Its opt-out and its ledger history are as they were.
    assert ledger.address_status(practice.pk, MOBILE).sms == SmsState.OPTED_OUT
    assert list(ConsentEvent.objects.filter(address=MOBILE)) == history

    # Notifications go to the other phone only; with no other phone, nowhere.
    assert _notify(ava, "recall", call_and_text) == [("sms", OTHER, "pending", None), ("voice", OTHER, "pending", None)]
    alone = make_patient(practice, "Al", phones=[(MOBILE, "mobile")])
    consent.remove_notification_phone(patient=alone, number=MOBILE, source=Source.PORTAL, actor="portal:test")
    assert _notify(alone, "recall", call_and_text) == [
        ("sms", None, "skipped", "channel_opted_out_by_patient"),
        ("voice", None, "skipped", "channel_opted_out_by_patient"),
    ]
    # Other kinds of message are not the notification settings': a staff call still reaches it.
    assert _notify(alone, content={"voice": "Please call us"}, kind="manual") == [("voice", MOBILE, "pending", None)]

    # Even opted back in, it stays off the settings until the patient puts it back.
    send_sms_webhook(Client(), body="UNSTOP", sender=MOBILE, sid="SMportal-removed")
    assert ("sms", OTHER, "pending", None) in _notify(ava, "recall", call_and_text)
    assert _post(ava, {"action": "restore_phone", "number": MOBILE}).status_code == 200
    ava.refresh_from_db()
    assert ava.notification_phones_removed == []
    assert ("sms", MOBILE, "pending", None) in _notify(ava, "recall", call_and_text)
    assert ledger.projection_matches(practice.pk)


# --- 5. the patient's in-app notices ---------------------------------------------------------------------------


def test_the_patients_own_notices_are_listed_newest_first_and_escaped(practice):
    ava = make_patient(practice, "Ava")
    ben = make_patient(practice, "Ben")
    for patient, text in ((ava, "First: <script>alert(1)</script>"), (ava, "Second & last"), (ben, "Ben's own")):
        create_message(
            practice=practice,
            kind="notification",
            category="message_received",
            patient_ids=[patient.pk],
            content={"in_app": text, "email": {"subject": "<b>New</b> message", "text": text}},
        )
    drain_worker()
    page = _get(ava)
    notices = re.search(r'<ul class="notices">(.*?)</ul>', page, re.S)[1]
    assert notices.index("Second &amp; last") < notices.index("First: &lt;script&gt;alert(1)&lt;/script&gt;")
    assert "<script>" not in page and "&lt;b&gt;New&lt;/b&gt; message" in notices
    assert "Ben&#x27;s own" not in page and "Ben's own" not in page
    assert "No notices yet" in _get(make_patient(practice, "Cy"))


# --- 6. the ledger proves every change, and its projection replays ---------------------------------------------


def test_preferences_set_through_the_api_are_ledger_events_too(api, practice):
    response = api.post("/patients", {"first_name": "Ava", "channel_opt_outs": ["email"]})
    assert response.status_code == 201
    patient = Patient.objects.get(pk=response.json()["id"])
    [event] = _patient_events(patient)
    assert (event.subject, event.source, json.loads(event.state)["channel_opt_outs"]) == (
        Subject.NOTIFICATIONS,
        Source.API,
        ["email"],
    )
    changed = api.client.patch(
        f"/api/v1/patients/{patient.pk}",
        json.dumps({"notification_overrides": {"recall": {"sms": False}}}),
        content_type="application/json",
    )
    assert changed.status_code == 200 and changed.json()["notification_overrides"] == {"recall": {"sms": False}}
    assert changed.json()["channel_opt_outs"] == ["email"]
    assert len(_patient_events(patient)) == 2
    assert make_patient(practice, "Bo") and len(ConsentEvent.objects.filter(subject=Subject.NOTIFICATIONS)) == 2


def test_notification_settings_changed_behind_the_ledger_are_found(practice):
    ava = make_patient(practice, "Ava", phones=[(MOBILE, "mobile")])
    _toggle(ava, "recall:sms", False)
    assert ledger.projection_matches(practice.pk)
    Patient.objects.filter(pk=ava.pk).update(notification_overrides={})  # not through the ledger
    assert not ledger.projection_matches(practice.pk)


_numbers = itertools.count(300)
PHONES = [MOBILE, OTHER]
step = st.one_of(
    st.tuples(
        st.just("switch"),
        st.sampled_from(["appointment_reminder", "recall", "survey"]),
        st.sampled_from(["in_app", "sms", "email"]),
        st.booleans(),
    ),
    st.tuples(st.just("channel"), st.sampled_from(["sms", "email"]), st.booleans()),
    st.tuples(st.just("sms_out"), st.sampled_from(PHONES)),
    st.tuples(st.just("sms_in"), st.sampled_from(PHONES)),
    st.tuples(st.just("remove"), st.sampled_from(PHONES)),
    st.tuples(st.just("restore"), st.sampled_from(PHONES)),
    st.tuples(st.just("stop_email")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=15))
def test_the_projection_rebuilt_from_the_ledger_equals_the_live_one_after_any_portal_changes(db, steps):
    from consentry.errors import InvalidInput

    practice, _ = make_practice(name="Oak Clinic", number=f"+1415555{next(_numbers):04d}")
    ava = make_patient(practice, "Ava", phones=[(p, "mobile") for p in PHONES], emails=[AVA])
    who = {"source": Source.PORTAL, "actor": f"portal:{ava.pk}"}
    for kind, *args in steps:
        try:
            if kind == "switch":
                key, channel, on = args
                consent.set_notification_choices(patient=ava, switches={(key, channel): on}, channels={}, **who)
            elif kind == "channel":
                consent.set_notification_choices(patient=ava, switches={}, channels={args[0]: args[1]}, **who)
            elif kind == "sms_out":
                consent.stop_texts(patient=ava, number=args[0], **who)
            elif kind == "sms_in":
                consent.record_sms_opt_in(practice=practice, number=args[0], source=Source.SMS_KEYWORD, actor=args[0])
            elif kind == "remove":
                consent.remove_notification_phone(patient=ava, number=args[0], **who)
            elif kind == "restore":
                consent.restore_notification_phone(patient=ava, number=args[0], **who)
            else:
                consent.stop_email(patient=ava, **who)
        except InvalidInput:
            pass  # refused (removing a phone that texts, say): nothing changed
    assert ledger.replay_projection(practice.pk) == ledger.current_projection(practice.pk)
    assert ledger.verify_chain(practice.pk).ok


# --- 8. the portal from every email's footer -------------------------------------------------------------------


def _portal_links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+/portal/[A-Za-z0-9_\-=]+", text)


def test_every_email_to_a_patient_links_their_portal_and_broadcasts_keep_their_unsubscribe_link(practice):
    ava = make_patient(practice, "Ava", emails=[AVA])
    _notify(ava, content={"email": {"subject": "Tomorrow", "text": "See you."}})
    create_message(
        practice=practice,
        kind="broadcast",
        category="announcement",
        patient_ids=[ava.pk],
        content={"email": {"subject": "Closed Monday", "text": "Closed.", "html": "<p>Closed.</p>"}},
    )
    drain_worker()
    mails = {m.subject: m for m in SandboxMessage.objects.filter(channel="email")}
    assert set(mails) == {"Tomorrow", "Closed Monday"}
    for mail in mails.values():
        [text_link] = _portal_links(mail.body)
        [html_link] = _portal_links(mail.html)
        assert text_link == html_link and "Your notification settings" in mail.html
        assert tokens.read_portal_token(urlparse(text_link).path.rsplit("/", 1)[1]) == str(ava.pk)
        assert Client().get(urlparse(text_link).path).status_code == 200
    # A notice about a visit has no unsubscribe; a broadcast keeps its own, beside the portal link.
    assert "unsubscribe" not in mails["Tomorrow"].body.lower() + mails["Tomorrow"].html.lower()
    assert "/email/unsubscribe/" in mails["Closed Monday"].body and "/email/unsubscribe/" in mails["Closed Monday"].html
    assert "List-Unsubscribe" in mails["Closed Monday"].headers


def test_the_opt_in_email_is_for_an_address_not_a_patient_and_has_no_portal_link(practice):
    ava = make_patient(practice, "Ava", emails=[AVA])
    consent.record_email_state(
        practice=practice, email=AVA, state=EmailState.UNSUBSCRIBED, source=Source.ESP_WEBHOOK, actor="esp"
    )
    assert _post(ava, {"resubscribe": AVA}).status_code == 200  # the opt-in email, to an address
    drain_worker()
    [mail] = SandboxMessage.objects.filter(channel="email")
    assert mail.subject.startswith("Confirm") and not _portal_links(mail.body + mail.html)
