"""decide() for kind=automation: one column of the decision table (KIND_POLICY, the README's).

Automations respect every consent rule, the do-not-contact toggle and the
preferred phone, and send at most one message per recipient (text, else
call, else email). The full Artera truth tables are in
test_decide_artera_truth_tables.py.
"""

from consentry.vocabulary import MarketingConsent, Reason
from tests.unit.factories import (
    EMAIL,
    EMAIL_2,
    EMAIL_CH,
    LANDLINE,
    MOBILE,
    MOBILE_2,
    PENDING,
    SKIPPED,
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

AUTOMATION = "automation"


# --- SMS opt-out ------------------------------------------------------------


def test_automation_respects_sms_opt_out():
    who = recipient(phones=[mobile()])
    decision = run(AUTOMATION, "appointment_reminder", [SMS], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [("sms", MOBILE, "skipped", "sms_opted_out")]
    assert decision.sends == ()
    assert decision.reason == Reason.SMS_OPTED_OUT


def test_automation_texts_a_number_that_has_not_opted_out():
    # The control for the test above: same recipient, no opt-out.
    decision = run(AUTOMATION, "appointment_reminder", [SMS], recipient(phones=[mobile()]))

    assert rows(decision) == [("sms", MOBILE, "pending", None)]


def test_automation_opt_out_of_one_number_does_not_stop_another_mobile():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)])
    decision = run(AUTOMATION, "appointment_reminder", [SMS], who, state(opted_out=[MOBILE]))

    assert sent_rows(decision) == [("sms", MOBILE_2)]


def test_automation_calls_an_opted_out_mobile_when_it_has_call_content():
    # Artera: a call goes out when the number cannot take texts, "i.e. if the
    # number is a landline or the patient has Opted out of SMS".
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "sms_opted_out"),
        ("voice", MOBILE, "pending", None),
    ]


# --- email unsubscribe / bounce ----------------------------------------------


def test_automation_respects_email_unsubscribe():
    who = recipient(emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [EMAIL_CH], who, state(unsubscribed=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_unsubscribed")]


def test_automation_respects_email_bounce():
    who = recipient(emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [EMAIL_CH], who, state(bounced=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_bounced")]


def test_automation_emails_the_next_address_when_the_first_bounced():
    who = recipient(emails=[EMAIL, EMAIL_2])
    decision = run(AUTOMATION, "appointment_reminder", [EMAIL_CH], who, state(bounced=[EMAIL]))

    assert sent_rows(decision) == [("email", EMAIL_2)]


# --- Blocked Communications ----------------------------------------------------


def test_automation_respects_blocked_communications_category():
    # Seed 002: a number on the Blocked Communications list with "Blocked
    # Recalls" gets no recall SMS, "for both manual and automated processing".
    who = recipient(phones=[mobile()])
    blocked = state(blocks={MOBILE: ["recall"]})

    decision = run(AUTOMATION, "recall", [SMS], who, blocked)

    assert rows(decision) == [("sms", MOBILE, "skipped", "blocked_for_category")]
    assert decision.reason == Reason.BLOCKED_FOR_CATEGORY


def test_automation_block_for_one_category_does_not_stop_another():
    who = recipient(phones=[mobile()])
    blocked = state(blocks={MOBILE: ["recall"]})

    decision = run(AUTOMATION, "appointment_reminder", [SMS], who, blocked)

    assert sent_rows(decision) == [("sms", MOBILE)]


def test_automation_block_also_stops_a_call_to_the_blocked_number():
    # A block is on the number for the category, not only on texting it.
    who = recipient(phones=[mobile()], emails=[EMAIL])
    blocked = state(blocks={MOBILE: ["recall"]})

    decision = run(AUTOMATION, "recall", [SMS, VOICE], who, blocked)

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "blocked_for_category"),
        ("voice", MOBILE, "skipped", "blocked_for_category"),
    ]


# --- PMS marketing consent -----------------------------------------------------


def test_automation_marketing_requires_marketing_consent():
    for consent in (MarketingConsent.NO, MarketingConsent.UNKNOWN):
        who = recipient(phones=[mobile()], emails=[EMAIL], marketing=consent)
        decision = run(AUTOMATION, "marketing", [SMS, EMAIL_CH], who)

        assert decision.sends == (), consent
        assert {p.reason for p in decision.deliveries} == {Reason.NO_MARKETING_CONSENT}, consent
        assert decision.reason == Reason.NO_MARKETING_CONSENT


def test_automation_marketing_is_sent_with_marketing_consent():
    who = recipient(phones=[mobile()], emails=[EMAIL], marketing=MarketingConsent.YES)
    decision = run(AUTOMATION, "marketing", [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE)]


def test_pms_marketing_consent_never_blocks_transactional_recall():
    # Seed 002: the PMS consent is about marketing; "As the Recall SMS is a
    # transactional message, it does not require consent"; automated recalls
    # go out, with no warning.
    who = recipient(phones=[mobile()], marketing=MarketingConsent.NO)
    decision = run(AUTOMATION, "recall", [SMS], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]
    assert decision.warnings == ()


# --- do-not-contact ----------------------------------------------------------------


def test_automation_respects_do_not_contact():
    who = recipient(phones=[mobile()], emails=[EMAIL], do_not_contact=True)
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert decision.sends == ()
    assert rows(decision) == [
        ("sms", None, "skipped", "do_not_contact"),
        ("voice", None, "skipped", "do_not_contact"),
        ("email", None, "skipped", "do_not_contact"),
    ]
    assert decision.reason == Reason.DO_NOT_CONTACT


def test_automation_do_not_contact_applies_to_transactional_categories_too():
    who = recipient(phones=[mobile()], do_not_contact=True, marketing=MarketingConsent.YES)
    decision = run(AUTOMATION, "recall", [SMS], who)

    assert decision.sends == ()
    assert decision.reason == Reason.DO_NOT_CONTACT


# --- preferred phone -------------------------------------------------------------------


def test_automation_uses_preferred_landline_for_a_call():
    # Artera: a preferred contact shown as CALL is a landline; the automation
    # calls it rather than texting the other (mobile) number.
    who = recipient(phones=[mobile(), landline()], emails=[EMAIL], preferred=LANDLINE)
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert rows(decision) == [
        ("sms", LANDLINE, "skipped", "no_text_capable_phone"),
        ("voice", LANDLINE, "pending", None),
    ]


def test_automation_texts_the_preferred_mobile_not_the_first_listed():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)], preferred=MOBILE_2)
    decision = run(AUTOMATION, "appointment_reminder", [SMS], who)

    assert rows(decision) == [("sms", MOBILE_2, "pending", None)]


def test_automation_does_not_fall_back_from_an_opted_out_preferred_phone_to_another_number():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)], preferred=MOBILE)
    decision = run(AUTOMATION, "appointment_reminder", [SMS], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [("sms", MOBILE, "skipped", "sms_opted_out")]


def test_automation_ignores_a_preferred_phone_that_is_not_on_file():
    who = recipient(phones=[mobile(MOBILE)], preferred=MOBILE_2)
    decision = run(AUTOMATION, "appointment_reminder", [SMS], who)

    assert sent_rows(decision) == [("sms", MOBILE)]


# --- channel selection: first reachable ----------------------------------------------------


def test_automation_sends_at_most_one_message():
    who = recipient(phones=[mobile(), landline()], emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]


def test_automation_emails_only_when_the_phone_is_invalid():
    # Artera: "patients will only receive an Email if the phone number on file is invalid".
    who = recipient(phones=[mobile(valid=False)], emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "phone_invalid"),
        ("voice", MOBILE, "skipped", "phone_invalid"),
        ("email", EMAIL, "pending", None),
    ]


def test_automation_does_not_email_when_a_call_can_carry_the_message():
    who = recipient(phones=[landline()], emails=[EMAIL])
    decision = run(AUTOMATION, "appointment_reminder", [SMS, VOICE, EMAIL_CH], who)

    assert [p.channel for p in decision.sends] == [VOICE]
    assert all(p.status == SKIPPED for p in decision.deliveries[:-1])
    assert decision.deliveries[-1].status == PENDING
