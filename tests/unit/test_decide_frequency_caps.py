"""Frequency caps: automated calls and texts per number, off unless the practice turns them on."""

from consentry.consent.rules import ConsentState, FrequencyCap, Phone, Recipient, SendRequest, decide
from consentry.vocabulary import Channel, Kind, Reason, Status
from tests.unit.factories import NOW, category

PHONE = "+14155550111"
PATIENT = Recipient(patient_id=1, phones=(Phone(PHONE),), emails=("a@example.com",))
CAP = FrequencyCap(per_day=1, per_week=3)


def _decide(kind, recent, cap=CAP, channels=(Channel.SMS,)):
    request = SendRequest(
        kind=kind, category=category("recall"), content_channels=frozenset(channels), frequency_cap=cap
    )
    return decide(request, PATIENT, ConsentState(recent_sends=recent), NOW)


def test_a_number_that_had_its_one_message_today_is_skipped_with_frequency_cap():
    decision = _decide(Kind.AUTOMATION, {PHONE: (1, 1)})
    assert [(p.status, p.reason) for p in decision.deliveries] == [(Status.SKIPPED, Reason.FREQUENCY_CAP)]


def test_three_in_a_week_is_the_weekly_limit():
    assert _decide(Kind.BROADCAST, {PHONE: (0, 3)}).deliveries[0].reason == Reason.FREQUENCY_CAP
    assert _decide(Kind.BROADCAST, {PHONE: (0, 2)}).deliveries[0].status == Status.PENDING


def test_no_cap_no_limit():
    assert _decide(Kind.AUTOMATION, {PHONE: (5, 20)}, cap=None).deliveries[0].status == Status.PENDING


def test_staff_messages_are_never_capped():
    assert _decide(Kind.MANUAL, {PHONE: (5, 20)}).deliveries[0].status == Status.PENDING


def test_a_capped_number_lets_the_message_go_by_email_instead():
    decision = _decide(Kind.AUTOMATION, {PHONE: (1, 1)}, channels=(Channel.SMS, Channel.EMAIL))
    assert [(p.channel, p.status, p.reason) for p in decision.deliveries] == [
        (Channel.SMS, Status.SKIPPED, Reason.FREQUENCY_CAP),
        (Channel.EMAIL, Status.PENDING, None),
    ]


def test_consent_reasons_come_before_the_cap():
    state = ConsentState(sms_opted_out=frozenset({PHONE}), recent_sends={PHONE: (1, 1)})
    request = SendRequest(
        kind=Kind.AUTOMATION, category=category("recall"), content_channels=frozenset({Channel.SMS}), frequency_cap=CAP
    )
    assert decide(request, PATIENT, state, NOW).deliveries[0].reason == Reason.SMS_OPTED_OUT
