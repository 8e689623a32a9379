"""Reason codes, ``Decision.reason`` and ``address_block_reason``.

Every "not sent" carries a stable reason code (docs/architecture.md). This
module has one small scenario per reason code decide() produces, checks the
summary reason of a decision (the reason of the highest-priority channel that
had content), and the per-address check the worker repeats right before the
provider call (where a keyword reply is exempt from the opt-out it confirms).
"""

import pytest

from consentry.consent.rules import ConsentState, Phone, Planned, address_block_reason, decide
from consentry.vocabulary import Channel, Kind, LineType, MarketingConsent, Reason, Status
from tests.unit.factories import (
    EMAIL,
    EMAIL_CH,
    LANDLINE,
    MOBILE,
    NOW,
    SMS,
    VOICE,
    VOIP,
    category,
    landline,
    mobile,
    recipient,
    rows,
    run,
    send_request,
    state,
)

# --- one scenario per reason code -----------------------------------------------------------

REASON_SCENARIOS = {
    Reason.SMS_OPTED_OUT: lambda: run(
        "automation", "recall", [SMS], recipient(phones=[mobile()]), state(opted_out=[MOBILE])
    ),
    Reason.EMAIL_UNSUBSCRIBED: lambda: run(
        "broadcast", "announcement", [EMAIL_CH], recipient(emails=[EMAIL]), state(unsubscribed=[EMAIL])
    ),
    Reason.EMAIL_BOUNCED: lambda: run(
        "notification", "payment_due", [EMAIL_CH], recipient(emails=[EMAIL]), state(bounced=[EMAIL])
    ),
    Reason.BLOCKED_FOR_CATEGORY: lambda: run(
        "manual", "recall", [SMS], recipient(phones=[mobile()]), state(blocks={MOBILE: ["recall"]})
    ),
    Reason.DO_NOT_CONTACT: lambda: run(
        "automation", "appointment_reminder", [SMS], recipient(phones=[mobile()], do_not_contact=True)
    ),
    Reason.NO_MARKETING_CONSENT: lambda: run(
        "broadcast", "marketing", [EMAIL_CH], recipient(emails=[EMAIL], marketing=MarketingConsent.NO)
    ),
    Reason.PHONE_INVALID: lambda: run("manual", "appointment_reminder", [SMS], recipient(phones=[mobile(valid=False)])),
    Reason.NO_TEXT_CAPABLE_PHONE: lambda: run(
        "automation", "appointment_reminder", [SMS], recipient(phones=[landline()])
    ),
    Reason.NO_REACHABLE_CHANNEL: lambda: run(
        "automation", "appointment_reminder", [EMAIL_CH], recipient(phones=[mobile()])
    ),
    Reason.CHANNEL_OFF_FOR_TYPE: lambda: run("notification", "recall", [EMAIL_CH], recipient(emails=[EMAIL])),
    Reason.CHANNEL_OPTED_OUT_BY_PATIENT: lambda: run(
        "notification", "recall", [SMS], recipient(phones=[mobile()], channel_opt_outs=[SMS])
    ),
}

# Time-based reasons belong to the delivery pipeline, not to decide() today.
NOT_FROM_DECIDE = {Reason.QUIET_HOURS, Reason.FREQUENCY_CAP, Reason.OUTCOME_UNKNOWN, Reason.NOT_DISPATCHED}


def test_every_consent_reason_code_has_a_scenario():
    assert set(REASON_SCENARIOS) == set(Reason) - NOT_FROM_DECIDE


@pytest.mark.parametrize("reason", list(REASON_SCENARIOS), ids=str)
def test_decide_produces_reason(reason):
    decision = REASON_SCENARIOS[reason]()

    assert decision.sends == ()
    assert [p.reason for p in decision.deliveries] == [reason]
    assert decision.reason == reason


def test_reason_codes_are_stable_strings():
    # Stored, shown and counted: renaming one is a data migration, not a refactor.
    assert {str(r) for r in Reason} >= {
        "sms_opted_out",
        "email_unsubscribed",
        "email_bounced",
        "blocked_for_category",
        "do_not_contact",
        "no_marketing_consent",
        "phone_invalid",
        "no_text_capable_phone",
        "no_reachable_channel",
        "channel_off_for_type",
        "channel_opted_out_by_patient",
    }


@pytest.mark.parametrize("line_type", [LineType.VOIP, LineType.UNKNOWN], ids=str)
def test_only_a_known_landline_is_refused_a_text(line_type):
    # VoIP and unknown lines usually take texts; the carrier reports when not.
    phone = Phone(VOIP, line_type)
    decision = run("automation", "appointment_reminder", [SMS], recipient(phones=[phone]))

    assert rows(decision) == [("sms", VOIP, "pending", None)]


# --- Decision.reason ----------------------------------------------------------------------------


def test_reason_is_sms_opted_out_for_an_opted_out_mobile_not_a_generic_one():
    # Text + email content, an opted-out mobile and no email on file: nothing
    # goes out, and the reported reason is the text's, the specific one.
    who = recipient(phones=[mobile()])
    decision = run("automation", "appointment_reminder", [SMS, EMAIL_CH], who, state(opted_out=[MOBILE]))

    assert decision.sends == ()
    assert decision.deliveries[0] == Planned(SMS, MOBILE, Status.SKIPPED, Reason.SMS_OPTED_OUT)
    assert decision.reason == Reason.SMS_OPTED_OUT
    assert decision.reason != Reason.NO_REACHABLE_CHANNEL


def test_reason_comes_from_the_highest_priority_channel_that_had_content():
    # No text content: the call is the highest-priority channel with content.
    who = recipient(phones=[landline(valid=False)], emails=[EMAIL])
    decision = run("automation", "appointment_reminder", [VOICE, EMAIL_CH], who, state(bounced=[EMAIL]))

    assert rows(decision) == [
        ("voice", LANDLINE, "skipped", "phone_invalid"),
        ("email", EMAIL, "skipped", "email_bounced"),
    ]
    assert decision.reason == Reason.PHONE_INVALID


def test_reason_for_a_manual_send_lists_every_channel_and_reports_the_first():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    consent = state(opted_out=[MOBILE], unsubscribed=[EMAIL])
    decision = run("manual", "appointment_reminder", [SMS, EMAIL_CH], who, consent)

    assert [p.reason for p in decision.deliveries] == [Reason.SMS_OPTED_OUT, Reason.EMAIL_UNSUBSCRIBED]
    assert decision.reason == Reason.SMS_OPTED_OUT


def test_reason_is_none_when_something_goes_out():
    who = recipient(phones=[mobile()])
    decision = run("automation", "appointment_reminder", [SMS, VOICE], who, state(opted_out=[MOBILE]))

    assert [(p.channel, p.status) for p in decision.sends] == [(VOICE, Status.PENDING)]
    assert decision.reason is None


def test_reason_names_the_opted_out_mobile_even_when_a_landline_is_listed_first():
    # The patient does have a text-capable phone; it opted out. Reporting
    # "no_text_capable_phone" (the landline's reason) would hide the STOP and
    # send staff looking for a mobile number instead of helping the patient opt
    # back in. The README: the reason is `sms_opted_out` for an opted-out mobile.
    who = recipient(phones=[landline(), mobile()])
    decision = run("automation", "appointment_reminder", [SMS], who, state(opted_out=[MOBILE]))

    assert decision.sends == ()
    assert decision.reason == Reason.SMS_OPTED_OUT
    assert decision.deliveries[0].address == MOBILE


# --- address_block_reason: the worker's last-moment re-check ------------------------------------

APPT = category("appointment_reminder")
RECALL = category("recall")
MARKETING = category("marketing")
SENDING_KINDS = [Kind.AUTOMATION, Kind.BROADCAST, Kind.MANUAL, Kind.NOTIFICATION]


@pytest.mark.parametrize("kind", SENDING_KINDS, ids=str)
def test_recheck_refuses_sms_to_an_opted_out_number(kind):
    reason = address_block_reason(
        kind=kind, category=APPT, channel=Channel.SMS, address=MOBILE, state=state(opted_out=[MOBILE])
    )
    assert reason == Reason.SMS_OPTED_OUT


def test_recheck_lets_a_keyword_reply_through_the_opt_out_it_confirms():
    reason = address_block_reason(
        kind=Kind.KEYWORD_REPLY,
        category=category("system"),
        channel=Channel.SMS,
        address=MOBILE,
        state=state(opted_out=[MOBILE]),
    )
    assert reason is None


def test_decide_plans_the_stop_confirmation_to_the_number_that_just_opted_out():
    request = send_request(Kind.KEYWORD_REPLY, "system", [SMS])
    decision = decide(request, recipient(phones=[mobile()]), state(opted_out=[MOBILE]), NOW)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]


def test_recheck_does_not_apply_an_sms_stop_to_a_call():
    # STOP stops texts; Artera calls a number that opted out of SMS.
    reason = address_block_reason(
        kind=Kind.AUTOMATION, category=APPT, channel=Channel.VOICE, address=MOBILE, state=state(opted_out=[MOBILE])
    )
    assert reason is None


@pytest.mark.parametrize("channel", [Channel.SMS, Channel.VOICE], ids=str)
@pytest.mark.parametrize("kind", SENDING_KINDS, ids=str)
def test_recheck_refuses_a_number_blocked_for_the_category(kind, channel):
    blocked = state(blocks={MOBILE: ["recall"]})

    assert (
        address_block_reason(kind=kind, category=RECALL, channel=channel, address=MOBILE, state=blocked)
        == Reason.BLOCKED_FOR_CATEGORY
    )
    assert address_block_reason(kind=kind, category=APPT, channel=channel, address=MOBILE, state=blocked) is None


@pytest.mark.parametrize("kind", SENDING_KINDS, ids=str)
def test_recheck_refuses_a_bounced_email_for_every_kind(kind):
    reason = address_block_reason(
        kind=kind, category=APPT, channel=Channel.EMAIL, address=EMAIL, state=state(bounced=[EMAIL])
    )
    assert reason == Reason.EMAIL_BOUNCED


@pytest.mark.parametrize(
    ("kind", "cat", "expected"),
    [
        (Kind.AUTOMATION, APPT, Reason.EMAIL_UNSUBSCRIBED),
        (Kind.BROADCAST, APPT, Reason.EMAIL_UNSUBSCRIBED),
        (Kind.MANUAL, APPT, Reason.EMAIL_UNSUBSCRIBED),
        (Kind.NOTIFICATION, APPT, None),
        (Kind.NOTIFICATION, MARKETING, Reason.EMAIL_UNSUBSCRIBED),
    ],
    ids=["automation", "broadcast", "manual", "transactional-notification", "marketing-notification"],
)
def test_recheck_applies_an_email_unsubscribe(kind, cat, expected):
    reason = address_block_reason(
        kind=kind, category=cat, channel=Channel.EMAIL, address=EMAIL, state=state(unsubscribed=[EMAIL])
    )
    assert reason == expected


def test_recheck_passes_a_clean_address():
    for channel, address in (
        (Channel.SMS, MOBILE),
        (Channel.VOICE, MOBILE),
        (Channel.EMAIL, EMAIL),
        (Channel.IN_APP, ""),
    ):
        assert (
            address_block_reason(
                kind=Kind.BROADCAST, category=APPT, channel=channel, address=address, state=ConsentState()
            )
            is None
        )


def test_recheck_sees_a_stop_committed_after_planning():
    # Planned while the number was still subscribed...
    who = recipient(phones=[mobile()])
    planned = run("broadcast", "announcement", [SMS], who).sends[0]
    assert (planned.channel, planned.address) == (Channel.SMS, MOBILE)

    # ...then STOP arrives before the worker hands it to the provider: the STOP wins.
    after_stop = state(opted_out=[MOBILE])
    reason = address_block_reason(
        kind=Kind.BROADCAST,
        category=category("announcement"),
        channel=planned.channel,
        address=planned.address,
        state=after_stop,
    )
    assert reason == Reason.SMS_OPTED_OUT


def test_decide_uses_the_same_check_as_the_worker():
    # Whatever the re-check refuses, decide() refuses with the same code.
    cases = [
        (Kind.MANUAL, APPT, SMS, recipient(phones=[mobile()]), state(opted_out=[MOBILE]), MOBILE),
        (Kind.MANUAL, RECALL, VOICE, recipient(phones=[mobile()]), state(blocks={MOBILE: ["recall"]}), MOBILE),
        (Kind.MANUAL, APPT, EMAIL_CH, recipient(emails=[EMAIL]), state(bounced=[EMAIL]), EMAIL),
        (Kind.MANUAL, APPT, EMAIL_CH, recipient(emails=[EMAIL]), state(unsubscribed=[EMAIL]), EMAIL),
    ]
    for kind, cat, channel, who, consent, address in cases:
        expected = address_block_reason(kind=kind, category=cat, channel=channel, address=address, state=consent)
        decision = run(kind, cat, [channel], who, consent)
        assert expected is not None
        assert rows(decision) == [(str(channel), address, "skipped", str(expected))]


def test_in_app_is_never_refused_by_the_address_check():
    everything_blocked = state(opted_out=[MOBILE], unsubscribed=[EMAIL], bounced=[EMAIL], blocks={MOBILE: ["system"]})
    reason = address_block_reason(
        kind=Kind.NOTIFICATION,
        category=category("system"),
        channel=Channel.IN_APP,
        address="",
        state=everything_blocked,
    )
    assert reason is None


def test_reason_for_a_patient_with_no_phone_is_the_emails_own_reason():
    # SMS had content but the patient has no phone at all: that says nothing
    # staff can act on, the unsubscribed email does.
    decision = run(
        Kind.BROADCAST, "announcement", [SMS, EMAIL_CH], recipient(emails=[EMAIL]), state(unsubscribed=[EMAIL])
    )
    assert rows(decision) == [
        ("sms", None, "skipped", "no_reachable_channel"),
        ("email", EMAIL, "skipped", "email_unsubscribed"),
    ]
    assert decision.reason == Reason.EMAIL_UNSUBSCRIBED


def test_reason_is_no_reachable_channel_only_when_nothing_says_more():
    decision = run(Kind.AUTOMATION, "appointment_reminder", [SMS, EMAIL_CH], recipient())
    assert decision.reason == Reason.NO_REACHABLE_CHANNEL
