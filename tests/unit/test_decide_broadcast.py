"""decide() for kind=broadcast (broadcasts and campaigns).

Seed 003: broadcasts and campaigns "do not respect Contact Preferences,
including Do Not Contact", but do respect the SMS consent status, and send
at most one message per recipient (text, else call, else email). Seed 000:
no broadcast email to an unsubscribed address.
"""

from consentry.vocabulary import MarketingConsent, Reason
from tests.unit.factories import (
    EMAIL,
    EMAIL_2,
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

BROADCAST = "broadcast"


def test_broadcast_respects_sms_opt_out():
    who = recipient(phones=[mobile()])
    decision = run(BROADCAST, "announcement", [SMS], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [("sms", MOBILE, "skipped", "sms_opted_out")]
    assert decision.reason == Reason.SMS_OPTED_OUT


def test_broadcast_texts_the_next_mobile_when_one_opted_out():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)])
    decision = run(BROADCAST, "announcement", [SMS], who, state(opted_out=[MOBILE]))

    assert sent_rows(decision) == [("sms", MOBILE_2)]


def test_broadcast_respects_email_unsubscribe():
    # Unsubscribing stops broadcast email, also for a transactional category
    # such as practice news.
    who = recipient(emails=[EMAIL])
    decision = run(BROADCAST, "announcement", [EMAIL_CH], who, state(unsubscribed=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_unsubscribed")]


def test_broadcast_respects_email_bounce():
    who = recipient(emails=[EMAIL])
    decision = run(BROADCAST, "announcement", [EMAIL_CH], who, state(bounced=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_bounced")]


def test_broadcast_emails_the_subscribed_address_when_another_unsubscribed():
    who = recipient(emails=[EMAIL, EMAIL_2])
    decision = run(BROADCAST, "announcement", [EMAIL_CH], who, state(unsubscribed=[EMAIL]))

    assert sent_rows(decision) == [("email", EMAIL_2)]


def test_broadcast_respects_blocked_communications_category():
    who = recipient(phones=[mobile()])
    blocked = state(blocks={MOBILE: ["recall"]})

    assert rows(run(BROADCAST, "recall", [SMS], who, blocked)) == [("sms", MOBILE, "skipped", "blocked_for_category")]
    # The same number still gets a broadcast of another category.
    assert sent_rows(run(BROADCAST, "announcement", [SMS], who, blocked)) == [("sms", MOBILE)]


def test_broadcast_marketing_requires_marketing_consent():
    for consent in (MarketingConsent.NO, MarketingConsent.UNKNOWN):
        who = recipient(phones=[mobile()], emails=[EMAIL], marketing=consent)
        decision = run(BROADCAST, "marketing", [SMS, EMAIL_CH], who)

        assert decision.sends == (), consent
        assert decision.reason == Reason.NO_MARKETING_CONSENT

    who = recipient(phones=[mobile()], emails=[EMAIL], marketing=MarketingConsent.YES)
    assert sent_rows(run(BROADCAST, "marketing", [SMS, EMAIL_CH], who)) == [("sms", MOBILE)]


def test_broadcast_transactional_ignores_marketing_consent():
    who = recipient(phones=[mobile()], marketing=MarketingConsent.NO)
    decision = run(BROADCAST, "announcement", [SMS], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]
    assert decision.warnings == ()


def test_broadcast_ignores_do_not_contact():
    who = recipient(phones=[mobile()], emails=[EMAIL], do_not_contact=True)
    decision = run(BROADCAST, "announcement", [SMS, EMAIL_CH], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]


def test_broadcast_ignores_preferred_phone():
    # The preferred landline would make an automation call; a broadcast
    # ignores contact preferences and texts the mobile.
    who = recipient(phones=[mobile(), landline()], preferred=LANDLINE)
    decision = run(BROADCAST, "announcement", [SMS, VOICE], who)

    assert rows(decision) == [("sms", MOBILE, "pending", None)]


def test_broadcast_ignores_preferred_phone_and_skips_past_a_landline_listed_first():
    who = recipient(phones=[landline(), mobile()], preferred=LANDLINE)
    decision = run(BROADCAST, "announcement", [SMS], who)

    assert sent_rows(decision) == [("sms", MOBILE)]


def test_broadcast_picks_the_first_reachable_channel():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    assert rows(run(BROADCAST, "announcement", [SMS, VOICE, EMAIL_CH], who)) == [("sms", MOBILE, "pending", None)]


def test_broadcast_calls_when_the_mobile_opted_out_of_sms():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(BROADCAST, "announcement", [SMS, VOICE, EMAIL_CH], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "sms_opted_out"),
        ("voice", MOBILE, "pending", None),
    ]


def test_broadcast_emails_when_the_phone_is_invalid():
    who = recipient(phones=[mobile(valid=False)], emails=[EMAIL])
    decision = run(BROADCAST, "announcement", [SMS, VOICE, EMAIL_CH], who)

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "phone_invalid"),
        ("voice", MOBILE, "skipped", "phone_invalid"),
        ("email", EMAIL, "pending", None),
    ]
