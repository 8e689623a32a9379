"""decide() for kind=notification.

A notification goes out on all active channels at once (seed 004: "sends
through all active channels simultaneously"): the practice's grid for the
notification type, overridden per patient, minus the channels the patient
opted out of ("No notifications of any type are sent through that channel");
in-app is always allowed, and the ``system`` type cannot be turned off by
the patient. SMS STOP and bounces still apply; an email unsubscribe only
stops marketing notifications. Do-not-contact is ignored, the preferred phone
is used.
"""

from consentry.consent.rules import Category, Planned
from consentry.vocabulary import Channel, MarketingConsent, Reason, Status
from tests.unit.factories import (
    EMAIL,
    EMAIL_CH,
    IN_APP,
    LANDLINE,
    MOBILE,
    MOBILE_2,
    SMS,
    VOICE,
    entry,
    landline,
    mobile,
    recipient,
    rows,
    run,
    sent_rows,
    state,
)

NOTIFICATION = "notification"


def test_notification_respects_sms_opt_out():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(NOTIFICATION, "appointment_reminder", [SMS, EMAIL_CH], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [
        ("sms", MOBILE, "skipped", "sms_opted_out"),
        ("email", EMAIL, "pending", None),
    ]


def test_notification_skips_unsubscribed_email_only_for_marketing():
    unsubscribed = state(unsubscribed=[EMAIL])

    # An appointment notice still reaches an address that unsubscribed from broadcasts...
    who = recipient(emails=[EMAIL])
    transactional = run(NOTIFICATION, "appointment_confirmed", [EMAIL_CH], who, unsubscribed)
    assert rows(transactional) == [("email", EMAIL, "pending", None)]

    # ...a marketing notification does not.
    consenting = recipient(emails=[EMAIL], marketing=MarketingConsent.YES)
    marketing = run(NOTIFICATION, "marketing", [EMAIL_CH], consenting, unsubscribed)
    assert rows(marketing) == [("email", EMAIL, "skipped", "email_unsubscribed")]


def test_notification_respects_email_bounce():
    who = recipient(emails=[EMAIL])
    decision = run(NOTIFICATION, "appointment_confirmed", [EMAIL_CH], who, state(bounced=[EMAIL]))

    assert rows(decision) == [("email", EMAIL, "skipped", "email_bounced")]


def test_notification_respects_blocked_communications_category():
    who = recipient(phones=[mobile()])
    blocked = state(blocks={MOBILE: ["recall"]})

    assert rows(run(NOTIFICATION, "recall", [SMS], who, blocked)) == [
        ("sms", MOBILE, "skipped", "blocked_for_category")
    ]
    assert sent_rows(run(NOTIFICATION, "survey", [SMS], who, blocked)) == [("sms", MOBILE)]


def test_notification_marketing_requires_marketing_consent():
    for consent in (MarketingConsent.NO, MarketingConsent.UNKNOWN):
        who = recipient(emails=[EMAIL], marketing=consent)
        decision = run(NOTIFICATION, "marketing", [EMAIL_CH], who)

        assert rows(decision) == [("email", None, "skipped", "no_marketing_consent")], consent

    who = recipient(emails=[EMAIL], marketing=MarketingConsent.YES)
    assert sent_rows(run(NOTIFICATION, "marketing", [EMAIL_CH], who)) == [("email", EMAIL)]


def test_notification_transactional_ignores_marketing_consent():
    who = recipient(phones=[mobile()], emails=[EMAIL], marketing=MarketingConsent.NO)
    decision = run(NOTIFICATION, "appointment_reminder", [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE), ("email", EMAIL)]
    assert decision.warnings == ()


def test_notification_ignores_do_not_contact():
    who = recipient(phones=[mobile()], emails=[EMAIL], do_not_contact=True)
    decision = run(NOTIFICATION, "appointment_reminder", [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE), ("email", EMAIL)]


def test_notification_uses_preferred_phone():
    who = recipient(phones=[mobile(MOBILE), mobile(MOBILE_2)], preferred=MOBILE_2)
    decision = run(NOTIFICATION, "recall", [SMS], who)

    assert rows(decision) == [("sms", MOBILE_2, "pending", None)]


def test_notification_does_not_text_around_a_preferred_landline():
    who = recipient(phones=[mobile(), landline()], preferred=LANDLINE)
    decision = run(NOTIFICATION, "recall", [SMS], who)

    assert rows(decision) == [("sms", LANDLINE, "skipped", "no_text_capable_phone")]


# --- channel selection: all active channels ---------------------------------------


def test_notification_sends_all_active_channels_at_once():
    # Seed 004: an appointment reminder with email and SMS enabled "sends both
    # an email and a text message".
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(NOTIFICATION, "appointment_reminder", [SMS, EMAIL_CH], who)

    assert rows(decision) == [
        ("sms", MOBILE, "pending", None),
        ("email", EMAIL, "pending", None),
    ]


def test_notification_message_received_goes_in_app_and_by_email():
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(NOTIFICATION, "message_received", [IN_APP, SMS, EMAIL_CH], who)

    assert rows(decision) == [
        ("in_app", None, "pending", None),
        ("sms", None, "skipped", "channel_off_for_type"),
        ("email", EMAIL, "pending", None),
    ]


def test_notification_skips_channel_off_for_type():
    # Payment received is email-only in the default grid.
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(NOTIFICATION, "payment_received", [SMS, VOICE, EMAIL_CH], who)

    assert entry(decision, SMS) == Planned(SMS, None, Status.SKIPPED, Reason.CHANNEL_OFF_FOR_TYPE)
    assert entry(decision, VOICE).reason == Reason.CHANNEL_OFF_FOR_TYPE
    assert sent_rows(decision) == [("email", EMAIL)]


def test_notification_follows_the_practice_grid_not_the_builtin_default():
    # Admins change the grid: a practice that also texts payment receipts.
    custom = Category("payment_received", notification_channels=frozenset({Channel.EMAIL, Channel.SMS}))
    who = recipient(phones=[mobile()], emails=[EMAIL])
    decision = run(NOTIFICATION, custom, [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE), ("email", EMAIL)]


def test_notification_patient_override_turns_a_channel_off_for_one_type():
    who = recipient(phones=[mobile()], emails=[EMAIL], overrides={("appointment_reminder", "email"): False})

    reminder = run(NOTIFICATION, "appointment_reminder", [SMS, EMAIL_CH], who)
    assert rows(reminder) == [
        ("sms", MOBILE, "pending", None),
        ("email", None, "skipped", "channel_off_for_type"),
    ]
    # The override is per type: other types still email.
    assert sent_rows(run(NOTIFICATION, "payment_failed", [SMS, EMAIL_CH], who)) == [
        ("sms", MOBILE),
        ("email", EMAIL),
    ]


def test_notification_patient_override_turns_a_channel_on_for_one_type():
    who = recipient(phones=[mobile()], emails=[EMAIL], overrides={("payment_due", "sms"): True})
    decision = run(NOTIFICATION, "payment_due", [SMS, EMAIL_CH], who)

    assert sent_rows(decision) == [("sms", MOBILE), ("email", EMAIL)]


def test_notification_patient_channel_opt_out_blocks_that_channel_for_all_types():
    # Seed 004: "No notifications of any type are sent through that channel."
    who = recipient(phones=[mobile()], emails=[EMAIL], channel_opt_outs=[SMS])
    for key in ("appointment_reminder", "recall", "payment_failed", "document_shared", "survey"):
        decision = run(NOTIFICATION, key, [SMS, EMAIL_CH], who)

        assert entry(decision, SMS).status == Status.SKIPPED, key
        assert entry(decision, SMS).reason == Reason.CHANNEL_OPTED_OUT_BY_PATIENT, key
        assert ("sms", MOBILE) not in sent_rows(decision), key


def test_notification_patient_channel_opt_out_beats_an_override_that_turns_it_on():
    who = recipient(emails=[EMAIL], channel_opt_outs=[EMAIL_CH], overrides={("appointment_confirmed", "email"): True})
    decision = run(NOTIFICATION, "appointment_confirmed", [EMAIL_CH], who)

    assert rows(decision) == [("email", None, "skipped", "channel_opted_out_by_patient")]


def test_notification_in_app_is_always_allowed_despite_channel_opt_outs():
    who = recipient(emails=[EMAIL], channel_opt_outs=[IN_APP, EMAIL_CH, SMS])
    decision = run(NOTIFICATION, "message_received", [IN_APP, EMAIL_CH], who)

    assert rows(decision) == [
        ("in_app", None, "pending", None),
        ("email", None, "skipped", "channel_opted_out_by_patient"),
    ]


def test_notification_in_app_needs_no_address():
    decision = run(NOTIFICATION, "message_received", [IN_APP], recipient())

    assert rows(decision) == [("in_app", None, "pending", None)]


def test_notification_in_app_is_not_sent_for_a_type_whose_grid_has_it_off():
    who = recipient(emails=[EMAIL])
    decision = run(NOTIFICATION, "appointment_confirmed", [IN_APP, EMAIL_CH], who)

    assert sent_rows(decision) == [("email", EMAIL)]


def test_system_notification_cannot_be_turned_off_by_the_patient():
    who = recipient(overrides={("system", "in_app"): False}, channel_opt_outs=[IN_APP])
    decision = run(NOTIFICATION, "system", [IN_APP], who)

    assert rows(decision) == [("in_app", None, "pending", None)]


def test_system_notification_ignores_a_patient_channel_opt_out():
    # A practice that also emails security alerts: the patient's email opt-out
    # for notifications cannot turn the system type off.
    system = Category(
        "system",
        notification_channels=frozenset({Channel.IN_APP, Channel.EMAIL}),
        patient_can_disable=False,
    )
    who = recipient(emails=[EMAIL], channel_opt_outs=[EMAIL_CH], overrides={("system", "email"): False})
    decision = run(NOTIFICATION, system, [IN_APP, EMAIL_CH], who)

    assert sent_rows(decision) == [("in_app", None), ("email", EMAIL)]


def test_system_notification_still_respects_sms_stop():
    system = Category(
        "system",
        notification_channels=frozenset({Channel.IN_APP, Channel.SMS}),
        patient_can_disable=False,
    )
    who = recipient(phones=[mobile()])
    decision = run(NOTIFICATION, system, [IN_APP, SMS], who, state(opted_out=[MOBILE]))

    assert rows(decision) == [
        ("in_app", None, "pending", None),
        ("sms", MOBILE, "skipped", "sms_opted_out"),
    ]


def test_system_notification_goes_to_a_patient_without_marketing_consent():
    # System notices are transactional: marketing consent never holds them back.
    decision = run(NOTIFICATION, "system", [IN_APP], recipient(marketing="no"))

    assert rows(decision) == [("in_app", None, "pending", None)]
    assert decision.warnings == ()
