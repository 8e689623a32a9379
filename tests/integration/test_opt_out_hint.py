"""The opt-out instruction at the end of automated and broadcast texts: the practice's policy (first,
always, never) and wording, through the API, the worker and the sandbox outbox, the length check, the
staff preview, and the setting from the API, the command line and the staff Settings page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from consentry.messaging.templating import MAX_SMS_CHARS
from consentry.patients.models import Patient, Practice
from consentry.patients.practices import update_practice
from consentry.providers.models import SandboxMessage
from tests.conftest import Api, drain_worker, make_patient, make_practice, make_staff, send_sms_webhook, signed_in

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"
OTHER = "+14155550122"
HINT = "Reply STOP to opt out."
BODY = "Your visit is tomorrow at 9."
SENT = f"Oak Clinic: {BODY}"


def _outbox(number=PHONE) -> list[str]:
    return list(SandboxMessage.objects.filter(to=number).order_by("pk").values_list("body", flat=True))


def _send(api, patients, kind="automation", category="appointment_reminder", sms=BODY):
    response = api.post(
        "/messages",
        {"kind": kind, "category": category, "patient_ids": [str(p.pk) for p in patients], "content": {"sms": sms}},
    )
    assert response.status_code == 202, response.content
    drain_worker()
    return response


def _policy(practice, policy, text=None):
    update_practice(practice, {"opt_out_hint": policy, **({"opt_out_hint_text": text} if text else {})})


@pytest.fixture
def ava(practice):
    return make_patient(practice, "Ava", phones=[(PHONE, "mobile")], marketing_consent="yes")


def test_first_adds_the_hint_to_a_numbers_first_automated_text_in_30_days(practice, api, ava):
    assert practice.opt_out_hint == "first"  # the default
    _send(api, [ava])
    _send(api, [ava], kind="broadcast", category="announcement")
    _send(api, [ava])
    assert _outbox() == [f"{SENT} {HINT}", SENT, SENT]
    # 29 days later the first text is still recent, so this one goes without it; once 30 days have
    # passed with no automated text to the number, the next one says it again.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=29)):
        _send(api, [ava])
    with time_machine.travel(datetime.now(UTC) + timedelta(days=29 + 31)):
        _send(api, [ava])
        _send(api, [ava])
    assert _outbox()[3:] == [SENT, f"{SENT} {HINT}", SENT]


def test_first_is_per_number_and_staff_texts_do_not_count(practice, api, ava):
    ben = make_patient(practice, "Ben", phones=[(OTHER, "mobile")])
    _send(api, [ava])
    _send(api, [ava, ben], kind="broadcast", category="announcement")
    assert _outbox(PHONE) == [f"{SENT} {HINT}", SENT]
    assert _outbox(OTHER) == [f"{SENT} {HINT}"]  # Ben's number had no text yet
    # A staff text is no program's: it neither carries the hint nor counts as the number's first.
    cy = make_patient(practice, "Cy", phones=[("+14155550133", "mobile")])
    _send(api, [cy], kind="manual", category="document_shared")
    _send(api, [cy])
    assert _outbox("+14155550133") == [SENT, f"{SENT} {HINT}"]


def test_every_marketing_text_carries_it_under_first(practice, api, ava):
    _send(api, [ava])
    _send(api, [ava], kind="broadcast", category="marketing", sms="Flu shots are in.")
    _send(api, [ava], kind="broadcast", category="marketing", sms="Flu shots are in.")
    _send(api, [ava])
    assert _outbox() == [
        f"{SENT} {HINT}",
        f"Oak Clinic: Flu shots are in. {HINT}",
        f"Oak Clinic: Flu shots are in. {HINT}",
        SENT,
    ]


def test_a_shared_phone_gets_it_once_per_broadcast(practice, api, ava):
    make_patient(practice, "Ben", phones=[(PHONE, "mobile")])
    _send(
        api,
        [ava, *Patient.objects.filter(first_name="Ben")],
        kind="broadcast",
        category="announcement",
        sms="Hi {{first_name}}, we moved.",
    )
    # The first text handed over says it (whichever patient's it is), the second does not.
    first, second = _outbox()
    assert first.endswith(f", we moved. {HINT}") and second.endswith(", we moved.")
    assert {first.split(",")[0], second.split(",")[0]} == {"Oak Clinic: Hi Ava", "Oak Clinic: Hi Ben"}


def test_always_adds_it_to_every_automated_broadcast_and_notification_text(practice, api, ava):
    _policy(practice, "always")
    _send(api, [ava])
    _send(api, [ava])
    _send(api, [ava], kind="broadcast", category="announcement")
    _send(api, [ava], kind="notification", category="payment_failed")
    assert _outbox() == [f"{SENT} {HINT}"] * 4


def test_never_adds_it_to_none(practice, api, ava):
    _policy(practice, "never")
    _send(api, [ava])
    _send(api, [ava], kind="broadcast", category="marketing")
    _send(api, [ava], kind="notification", category="payment_failed")
    assert _outbox() == [SENT] * 3


def test_a_text_that_already_says_it_is_left_as_it_is(practice, api, ava):
    _policy(practice, "always")
    _send(api, [ava], sms=f"Your visit is tomorrow. {HINT.lower()}")
    assert _outbox() == [f"Oak Clinic: Your visit is tomorrow. {HINT.lower()}"]


def test_staff_texts_conversation_replies_and_keyword_replies_never_carry_it(client, practice, api, ava):
    _policy(practice, "always")
    _send(api, [ava], kind="manual", category="document_shared")
    assert send_sms_webhook(client, body="Can I come at 10?", sender=PHONE, sid="SM1").status_code == 200
    [conversation] = api.get("/conversations").json()
    reply = api.post(f"/conversations/{conversation['id']}/replies", {"body": "Yes, see you at 10."})
    assert reply.status_code == 201, reply.content
    drain_worker()
    for sid, keyword in (("SM2", "HELP"), ("SM3", "STOP"), ("SM4", "START")):
        assert send_sms_webhook(client, body=keyword, sender=PHONE, sid=sid).status_code == 200
        drain_worker()
    from consentry.conversations.inbound import help_reply

    sent = _outbox()
    assert sent[:3] == [SENT, "Oak Clinic: Yes, see you at 10.", help_reply(practice)]
    assert len(sent) == 5 and all(not text.endswith(HINT) for text in sent[3:])  # the STOP and START replies
    assert all(text.count("STOP") <= 1 for text in sent)


def test_the_practices_own_wording(api):
    practice, key = make_practice("Clínica Roble", "+14155550190", opt_out_hint_text="Responda STOP para cancelar.")
    patient = make_patient(practice, "Ana", phones=[(PHONE, "mobile")])
    _send(Api(key), [patient], sms="Su cita es mañana.")
    assert _outbox() == ["Clínica Roble: Su cita es mañana. Responda STOP para cancelar."]


# --- the length check ---------------------------------------------------------------------------------------------


def _longest(practice) -> str:
    """The longest text that fits without the hint (the practice's name starts it)."""
    return "x" * (MAX_SMS_CHARS - len(f"{practice.name}: "))


def test_a_text_that_fits_only_without_the_hint_is_refused_when_it_may_be_added(practice, api, ava):
    for kind, category in (("automation", "appointment_reminder"), ("broadcast", "announcement")):
        body = {
            "kind": kind,
            "category": category,
            "patient_ids": [str(ava.pk)],
            "content": {"sms": _longest(practice)},
        }
        refused = api.post("/messages", body)
        assert refused.status_code == 422, refused.content
        error = refused.json()["error"]
        assert error["field"] == "content.sms"
        assert HINT in error["message"] and "characters" in error["message"]
    shorter = _longest(practice)[: -len(" " + HINT)]
    _send(api, [ava], sms=shorter)
    assert _outbox() == [f"Oak Clinic: {shorter} {HINT}"] and len(_outbox()[0]) == MAX_SMS_CHARS
    # A staff text gets no hint: it may use every character; so may a practice that adds none.
    _send(api, [ava], kind="manual", category="document_shared", sms=_longest(practice))
    _policy(practice, "never")
    _send(api, [ava], sms=_longest(practice))
    assert _outbox()[1:] == [f"Oak Clinic: {_longest(practice)}"] * 2


def test_a_longer_wording_leaves_less_room(practice, api, ava):
    wording = "Reply STOP to opt out of these texts at any time."
    _policy(practice, "first", wording)
    body = {
        "kind": "automation",
        "category": "appointment_reminder",
        "patient_ids": [str(ava.pk)],
        "content": {"sms": _longest(practice)[: -len(" " + HINT)]},
    }
    refused = api.post("/messages", body)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "content.sms"


# --- the staff preview --------------------------------------------------------------------------------------------


PREVIEW = {"category": "announcement", "audience": "all", "sms": "Hi {{first_name}}, we moved.", "action": "preview"}


def test_the_broadcast_preview_shows_the_text_with_the_hint(practice, desk, ava):
    page = desk.post("/broadcasts/new", PREVIEW).content.decode()
    assert f"Oak Clinic: Hi Ava, we moved. {HINT}" in page
    assert "Text (1 segment):" in page
    long = {**PREVIEW, "sms": "x" * (160 - len("Oak Clinic: "))}  # one segment, two with the hint
    assert "Text (2 segments):" in desk.post("/broadcasts/new", long).content.decode()
    _policy(practice, "never")
    page = desk.post("/broadcasts/new", PREVIEW).content.decode()
    assert "Oak Clinic: Hi Ava, we moved." in page and HINT not in page


# --- the setting ----------------------------------------------------------------------------------------------


def test_the_api_reads_and_changes_the_policy_and_its_wording(api, practice):
    shown = api.get("/practice").json()
    assert (shown["opt_out_hint"], shown["opt_out_hint_text"]) == ("first", HINT)
    changed = api.patch("/practice", {"opt_out_hint": "always", "opt_out_hint_text": "  Responda STOP para cancelar. "})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["opt_out_hint"], changed.json()["opt_out_hint_text"]) == (
        "always",
        "Responda STOP para cancelar.",
    )
    stored = Practice.objects.get()
    assert (stored.opt_out_hint, stored.opt_out_hint_text) == ("always", "Responda STOP para cancelar.")


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"opt_out_hint": "sometimes"}, "opt_out_hint"),
        ({"opt_out_hint_text": "Reply QUIT to opt out."}, "opt_out_hint_text"),
        ({"opt_out_hint_text": "Reply STOPPED"}, "opt_out_hint_text"),
        (
            {"opt_out_hint_text": "Reply STOP to opt out of every text from us, now and for ever, amen."},
            "opt_out_hint_text",
        ),
        ({"opt_out_hint_text": "Reply STOP\nto opt out."}, "opt_out_hint_text"),
        ({"opt_out_hint_text": ""}, "opt_out_hint_text"),
        ({"opt_out_hint": "always", "opt_out_hint_text": "No keyword here."}, "opt_out_hint_text"),
    ],
)
def test_a_bad_policy_or_wording_is_refused_and_changes_nothing(api, practice, patch, field):
    refused = api.patch("/practice", patch)
    assert refused.status_code == 422, refused.content
    assert refused.json()["error"]["field"].endswith(field)
    stored = Practice.objects.get()
    assert (stored.opt_out_hint, stored.opt_out_hint_text) == ("first", HINT)


def _create(*args) -> Practice:
    out = StringIO()
    call_command(
        "practice", "create", "--name", "Elm Clinic", "--texting-number", "+14155550170", "--json", *args, stdout=out
    )
    return Practice.objects.get(pk=json.loads(out.getvalue())["id"])


def test_the_command_line_sets_and_changes_the_policy():
    practice = _create("--opt-out-hint", "never")
    assert (practice.opt_out_hint, practice.opt_out_hint_text) == ("never", HINT)
    call_command(
        "practice", "update", str(practice.pk), "--opt-out-hint", "always", "--opt-out-hint-text", "Text STOP to stop.",
        stdout=StringIO(),
    )  # fmt: skip
    practice.refresh_from_db()
    assert (practice.opt_out_hint, practice.opt_out_hint_text) == ("always", "Text STOP to stop.")
    with pytest.raises(CommandError, match="opt_out_hint_text"):
        call_command("practice", "update", str(practice.pk), "--opt-out-hint-text", "Text QUIT", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("practice", "update", str(practice.pk), "--opt-out-hint", "sometimes", stderr=StringIO())
    practice.refresh_from_db()
    assert (practice.opt_out_hint, practice.opt_out_hint_text) == ("always", "Text STOP to stop.")


def _practice_form(practice, **changes):
    form = {
        "name": practice.name,
        "timezone": practice.timezone,
        "contact_phone": practice.contact_phone,
        "email_from": practice.email_from,
        "window_start": "08:00",
        "window_end": "21:00",
        "keyword_mode": "self",
        "reasonable_means": "flag",
        "contact_preferences_source": practice.contact_preferences_source,
        "frequency_cap_per_day": "1",
        "frequency_cap_per_week": "3",
        "opt_out_hint": practice.opt_out_hint,
        "opt_out_hint_text": practice.opt_out_hint_text,
    }
    return {**form, **changes}


def test_the_settings_page_shows_and_changes_the_policy(practice):
    admin = signed_in(make_staff(practice, email="ann@oak.example", role="admin", name="Ann Admin"))
    page = admin.get("/settings/").content.decode()
    assert 'name="opt_out_hint"' in page and f'value="{HINT}"' in page
    saved = admin.post(
        "/settings/practice", _practice_form(practice, opt_out_hint="always", opt_out_hint_text="Text STOP to stop.")
    )
    assert saved.status_code == 302
    practice.refresh_from_db()
    assert (practice.opt_out_hint, practice.opt_out_hint_text) == ("always", "Text STOP to stop.")
    refused = admin.post("/settings/practice", _practice_form(practice, opt_out_hint_text="Text QUIT to quit."))
    assert refused.status_code == 400 and "STOP" in refused.content.decode()
    # A blank wording goes back to the default.
    assert admin.post("/settings/practice", _practice_form(practice, opt_out_hint_text="")).status_code == 302
    practice.refresh_from_db()
    assert (practice.opt_out_hint, practice.opt_out_hint_text) == ("always", HINT)
