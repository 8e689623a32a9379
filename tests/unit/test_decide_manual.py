"""decide() for kind=manual: a one-off message written by staff.

Manual messages respect every consent rule and the Blocked Communications
list (no staff override), ignore do-not-contact (seed 003), use the preferred
phone (seed 003), go out on every channel staff wrote content for, and for a
transactional message to a patient whose PMS marketing consent is "no" carry
a warning rather than a block (seed 002: "we will give you the option of
whether or not to proceed").
"""

from consentry.vocabulary import MarketingConsent, Reason
from tests.unit.factories import (
    EMAIL,
    EMAIL_CH,
    LANDLINE,
    MOBILE,
    MOBILE_2,
    SMS,
    VOICE,
    landline,
    mobile,
    recipient,
    rows,
    run,
    sent_rows,
    state,
)

MANUAL = "manual"


def test_manual_respects_sms_opt_out():
    who = recipient(phones=[mobile()])
    decision = run(MANUAL, "appointment_reminder", [SMS], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [("sms", MOBILE, "skipped", "sms_opted_out")]
    assert decision.reason == Reason.SMS_OPTED_OUT


def test_manual_respects_email_unsubscribe():
    who = recipient(emails=[EMAIL])
    decision = run(MANUAL, "appointment_reminder", [EMAIL_CH], who, state(unsubscribed=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_unsubscribed")]


def test_manual_respects_email_bounce():
    who = recipient(emails=[EMAIL])
    decision = run(MANUAL, "appointment_reminder", [EMAIL_CH], who, state(bounced=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_bounced")]


def test_recall_block_applies_to_manual_sends_with_no_override():
    # Seed 002: "you will not be able to send a Recall via SMS to this patient;
    # this goes for both manual and automated processing". Unlike marketing
    # consent there is no warning-and-proceed: the SMS is skipped, even for a
    # patient who said yes to everything in the PMS.
    who = recipient(phones=[mobile()], marketing=MarketingConsent.YES)
    decision = run(MANUAL, "recall", [SMS], who, state(blocks={MOBILE: ["recall"]}))

    assert rows(decision) == [("sms", MOBILE, "skipped", "blocked_for_category")]
    assert decision.sends == ()
    assert decision.warnings == ()


def test_manual_block_for_recalls_does_not_stop_other_manual_texts():
    who = recipient(phones=[mobile()])
    decision = run(MANUAL, "appointment_reminder", [SMS], who, state(blocks={MOBILE: ["recall"]}))

    assert sent_rows(decision) == [("sms", MOBILE)]


def test_manual_marketing_requires_marketing_consent():
    for consent in (MarketingConsent.NO, MarketingConsent.UNKNOWN):
        who = recipient(phones=[mobile()], marketing=consent)
        decision = run(MANUAL, "marketing", [SMS], who)

        assert rows(decision) == [("sms", None, "skipped", "no_marketing_consent")], consent
        assert decision.reason == Reason.NO_MARKETING_CONSENT


def test_manual_transactional_to_patient_without_marketing_consent_is_sent_with_warning():
    who = recipient(phones=[mobile()], marketing=MarketingConsent.NO)
    decision = run(MANUAL, "recall", [SMS], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]
    assert decision.warnings == (Reason.NO_MARKETING_CONSENT,)


def test_manual_transactional_with_marketing_consent_has_no_warning():
    who = recipient(phones=[mobile()], marketing=MarketingConsent.YES)
    decision = run(MANUAL, "recall", [SMS], who)

    assert sent_rows(decision) == [("sms", MOBILE)]
    assert decision.warnings == ()


def test_manual_ignores_do_not_contact():
    who = recipient(phones=[mobile()], emails=[EMAIL], do_not_contact=True)
    decision = run(MANUAL, "appointment_reminder", [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE), ("email", EMAIL)]


def test_manual_uses_preferred_phone():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)], preferred=MOBILE_2)
    decision = run(MANUAL, "appointment_reminder", [SMS], who)

    assert rows(decision) == [("sms", MOBILE_2, "pending", None)]


def test_manual_call_goes_to_preferred_landline():
    who = recipient(phones=[mobile(), landline()], preferred=LANDLINE)
    decision = run(MANUAL, "appointment_reminder", [VOICE], who)

    assert rows(decision) == [("voice", LANDLINE, "pending", None)]


def test_manual_sends_every_channel_with_content():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(MANUAL, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert rows(decision) == [
        ("sms", MOBILE, "pending", None),
        ("voice", MOBILE, "pending", None),
        ("email", EMAIL, "pending", None),
    ]


def test_manual_sends_only_the_channels_staff_wrote_content_for():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(MANUAL, "appointment_reminder", [EMAIL_CH], who)

    assert rows(decision) == [("email", EMAIL, "pending", None)]


def test_manual_skips_one_channel_and_still_sends_the_other():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(MANUAL, "appointment_reminder", [SMS, EMAIL_CH], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "sms_opted_out"),
        ("email", EMAIL, "pending", None),
    ]
    assert decision.reason is None  # something goes out
