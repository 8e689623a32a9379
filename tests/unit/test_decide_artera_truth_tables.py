"""Artera's "Automations: Preferences Not Synced from EMR" truth tables.

Seed 003 names six patient profiles (only a text-enabled phone; text phone +
email; text phone + landline + email; only a landline; landline + email; only
an email) and asks, for every mix of content the automation has (text, call,
email), which single message goes out. The rule (seed 003 and the README's decision
table): never more than one message; text first; a call only when the
phone cannot take text (a landline, or SMS opted out) and there is call
content; email only when no phone channel can carry the message (no valid
phone, or no content for a channel the phone can take).

Each expected row lists the channels tried and refused (skipped, with the
reason) and then the one pending delivery, in text -> call -> email order.
Broadcasts and campaigns follow the same hierarchy (seed 003), so every table
is run for both kinds.
"""

import pytest

from consentry.vocabulary import Status
from tests.unit.factories import (
    EMAIL,
    EMAIL_CH,
    LANDLINE,
    MOBILE,
    SMS,
    VOICE,
    landline,
    mobile,
    recipient,
    rows,
    run,
    state,
)

PROFILES = {
    "text_phone_only": recipient(phones=[mobile()]),
    "text_phone_and_email": recipient(phones=[mobile()], emails=[EMAIL]),
    "text_phone_landline_and_email": recipient(phones=[mobile(), landline()], emails=[EMAIL]),
    "landline_only": recipient(phones=[landline()]),
    "landline_and_email": recipient(phones=[landline()], emails=[EMAIL]),
    "email_only": recipient(emails=[EMAIL]),
}

CONTENT = {
    "text": [SMS],
    "call": [VOICE],
    "email": [EMAIL_CH],
    "text+call": [SMS, VOICE],
    "text+email": [SMS, EMAIL_CH],
    "call+email": [VOICE, EMAIL_CH],
    "text+call+email": [SMS, VOICE, EMAIL_CH],
}

# Shorthands for the expected rows.
TEXT_MOBILE = ("sms", MOBILE, "pending", None)
CALL_MOBILE = ("voice", MOBILE, "pending", None)
CALL_LANDLINE = ("voice", LANDLINE, "pending", None)
SEND_EMAIL = ("email", EMAIL, "pending", None)
TEXT_LANDLINE_REFUSED = ("sms", LANDLINE, "skipped", "no_text_capable_phone")
TEXT_NO_PHONE = ("sms", None, "skipped", "no_reachable_channel")
CALL_NO_PHONE = ("voice", None, "skipped", "no_reachable_channel")
EMAIL_NO_ADDRESS = ("email", None, "skipped", "no_reachable_channel")
# With both a mobile and a landline on file and no preferred phone, which of the
# two gets a call-only automation is not specified; either is acceptable.
CALL_EITHER_PHONE = "call either phone"

TRUTH_TABLE = {
    "text_phone_only": {
        "text": [TEXT_MOBILE],
        "call": [CALL_MOBILE],
        "email": [EMAIL_NO_ADDRESS],
        "text+call": [TEXT_MOBILE],
        "text+email": [TEXT_MOBILE],
        "call+email": [CALL_MOBILE],
        "text+call+email": [TEXT_MOBILE],
    },
    "text_phone_and_email": {
        "text": [TEXT_MOBILE],
        "call": [CALL_MOBILE],
        "email": [SEND_EMAIL],
        "text+call": [TEXT_MOBILE],
        "text+email": [TEXT_MOBILE],
        "call+email": [CALL_MOBILE],
        "text+call+email": [TEXT_MOBILE],
    },
    "text_phone_landline_and_email": {
        "text": [TEXT_MOBILE],
        "call": CALL_EITHER_PHONE,
        "email": [SEND_EMAIL],
        "text+call": [TEXT_MOBILE],
        "text+email": [TEXT_MOBILE],
        "call+email": CALL_EITHER_PHONE,
        "text+call+email": [TEXT_MOBILE],
    },
    "landline_only": {
        "text": [TEXT_LANDLINE_REFUSED],
        "call": [CALL_LANDLINE],
        "email": [EMAIL_NO_ADDRESS],
        "text+call": [TEXT_LANDLINE_REFUSED, CALL_LANDLINE],
        "text+email": [TEXT_LANDLINE_REFUSED, EMAIL_NO_ADDRESS],
        "call+email": [CALL_LANDLINE],
        "text+call+email": [TEXT_LANDLINE_REFUSED, CALL_LANDLINE],
    },
    "landline_and_email": {
        "text": [TEXT_LANDLINE_REFUSED],
        "call": [CALL_LANDLINE],
        "email": [SEND_EMAIL],
        "text+call": [TEXT_LANDLINE_REFUSED, CALL_LANDLINE],
        # The landline cannot take the text and there is no call content, so
        # no phone channel can carry this message: it goes by email.
        "text+email": [TEXT_LANDLINE_REFUSED, SEND_EMAIL],
        "call+email": [CALL_LANDLINE],
        "text+call+email": [TEXT_LANDLINE_REFUSED, CALL_LANDLINE],
    },
    "email_only": {
        "text": [TEXT_NO_PHONE],
        "call": [CALL_NO_PHONE],
        "email": [SEND_EMAIL],
        "text+call": [TEXT_NO_PHONE, CALL_NO_PHONE],
        "text+email": [TEXT_NO_PHONE, SEND_EMAIL],
        "call+email": [CALL_NO_PHONE, SEND_EMAIL],
        "text+call+email": [TEXT_NO_PHONE, CALL_NO_PHONE, SEND_EMAIL],
    },
}

CASES = [
    pytest.param(profile, content, expected, id=f"{profile}-{content}")
    for profile, table in TRUTH_TABLE.items()
    for content, expected in table.items()
]


def test_truth_table_covers_every_profile_and_content_mix():
    assert set(TRUTH_TABLE) == set(PROFILES)
    for table in TRUTH_TABLE.values():
        assert set(table) == set(CONTENT)


def _assert_one_message_at_most(decision, expected_sends: int):
    sends = [p for p in decision.deliveries if p.status in (Status.PENDING, Status.DEFERRED)]
    assert len(sends) == expected_sends, rows(decision)
    if sends:
        # The pending entry comes last: everything before it was tried and refused.
        assert decision.deliveries[-1] is sends[0]
        assert all(p.status == Status.SKIPPED and p.reason is not None for p in decision.deliveries[:-1])


@pytest.mark.parametrize("kind", ["automation", "broadcast"])
@pytest.mark.parametrize(("profile", "content", "expected"), CASES)
def test_first_reachable_truth_table(kind, profile, content, expected):
    decision = run(kind, "appointment_reminder", CONTENT[content], PROFILES[profile])

    if expected == CALL_EITHER_PHONE:
        assert [(str(p.channel), str(p.status)) for p in decision.deliveries] == [("voice", "pending")]
        assert decision.deliveries[0].address in (MOBILE, LANDLINE)
        return
    assert rows(decision) == expected
    pending = [row for row in expected if row[2] == "pending"]
    _assert_one_message_at_most(decision, len(pending))
    if not pending:
        # Nothing goes out: the reason is the one of the highest-priority channel.
        assert str(decision.reason) == expected[0][3]
    else:
        assert decision.reason is None


# --- the same profiles with the consent state of the cell phone ---------------------
# Seed 003: "Automations must also respect the status of the patient's cell phone
# number, as controlled by the patient's SMS Consent Status."

OPTED_OUT = state(opted_out=[MOBILE])
TEXT_OPTED_OUT = ("sms", MOBILE, "skipped", "sms_opted_out")


@pytest.mark.parametrize("kind", ["automation", "broadcast"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("text", [TEXT_OPTED_OUT], id="text"),
        pytest.param("call", [CALL_MOBILE], id="call"),
        pytest.param("email", [SEND_EMAIL], id="email"),
        pytest.param("text+call", [TEXT_OPTED_OUT, CALL_MOBILE], id="text+call"),
        pytest.param("call+email", [CALL_MOBILE], id="call+email"),
        pytest.param("text+call+email", [TEXT_OPTED_OUT, CALL_MOBILE], id="text+call+email"),
    ],
)
def test_opted_out_text_phone_and_email(kind, content, expected):
    decision = run(kind, "appointment_reminder", CONTENT[content], PROFILES["text_phone_and_email"], OPTED_OUT)

    assert rows(decision) == expected
    if expected == [TEXT_OPTED_OUT]:
        assert str(decision.reason) == "sms_opted_out"


@pytest.mark.parametrize("kind", ["automation", "broadcast"])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("text", [("sms", MOBILE, "skipped", "phone_invalid")], id="text"),
        pytest.param("call", [("voice", MOBILE, "skipped", "phone_invalid")], id="call"),
        pytest.param("email", [SEND_EMAIL], id="email"),
        pytest.param(
            "text+call",
            [("sms", MOBILE, "skipped", "phone_invalid"), ("voice", MOBILE, "skipped", "phone_invalid")],
            id="text+call",
        ),
        pytest.param("text+email", [("sms", MOBILE, "skipped", "phone_invalid"), SEND_EMAIL], id="text+email"),
        pytest.param("call+email", [("voice", MOBILE, "skipped", "phone_invalid"), SEND_EMAIL], id="call+email"),
        pytest.param(
            "text+call+email",
            [
                ("sms", MOBILE, "skipped", "phone_invalid"),
                ("voice", MOBILE, "skipped", "phone_invalid"),
                SEND_EMAIL,
            ],
            id="text+call+email",
        ),
    ],
)
def test_invalid_phone_and_email(kind, content, expected):
    # "patients will only receive an Email if the phone number on file is invalid"
    who = recipient(phones=[mobile(valid=False)], emails=[EMAIL])

    decision = run(kind, "appointment_reminder", CONTENT[content], who)

    assert rows(decision) == expected


# --- a preferred contact set on the facesheet (automations only) -----------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("text", [TEXT_LANDLINE_REFUSED], id="text"),
        pytest.param("call", [CALL_LANDLINE], id="call"),
        pytest.param("text+call", [TEXT_LANDLINE_REFUSED, CALL_LANDLINE], id="text+call"),
        pytest.param("call+email", [CALL_LANDLINE], id="call+email"),
        pytest.param("text+call+email", [TEXT_LANDLINE_REFUSED, CALL_LANDLINE], id="text+call+email"),
    ],
)
def test_automation_preferred_landline_with_a_text_phone_and_email(content, expected):
    who = recipient(phones=[mobile(), landline()], emails=[EMAIL], preferred=LANDLINE)

    decision = run("automation", "appointment_reminder", CONTENT[content], who)

    assert rows(decision) == expected


@pytest.mark.parametrize("content", ["text", "call", "text+call", "text+email", "text+call+email"])
def test_automation_preferred_text_phone_over_a_landline(content):
    who = recipient(phones=[landline(), mobile()], emails=[EMAIL], preferred=MOBILE)

    decision = run("automation", "appointment_reminder", CONTENT[content], who)

    expected_channel = "voice" if content == "call" else "sms"
    assert rows(decision) == [(expected_channel, MOBILE, "pending", None)]
