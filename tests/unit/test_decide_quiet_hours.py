"""Quiet hours: defer, never drop; staff messages and exempt types go at once."""

from datetime import UTC, datetime, time

import pytest

from consentry.consent.rules import ConsentState, Phone, Recipient, SendRequest, SendWindow, decide, window_opens
from consentry.vocabulary import Channel, Kind, Reason, Status
from tests.unit.factories import category

NY = "America/New_York"
WINDOW = SendWindow(time(8, 0), time(21, 0))
PATIENT = Recipient(patient_id=1, phones=(Phone("+12125550111"),), emails=("a@example.com",), timezone=NY)


def _request(kind, channels=(Channel.SMS,), window=WINDOW, key="appointment_reminder"):
    return SendRequest(
        kind=kind, category=category(key), content_channels=frozenset(channels), window=window, default_timezone="UTC"
    )


def _at(local: str, zone=NY) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize("kind", [Kind.AUTOMATION, Kind.BROADCAST, Kind.NOTIFICATION])
def test_a_message_at_2230_patient_local_is_deferred_to_0800(kind):
    decision = decide(_request(kind), PATIENT, ConsentState(), _at("2026-11-23 22:30"))
    [sms] = [p for p in decision.deliveries if p.channel == Channel.SMS]
    assert (sms.status, sms.reason) == (Status.DEFERRED, Reason.QUIET_HOURS)
    assert sms.not_before == _at("2026-11-24 08:00")
    assert sms.address == "+12125550111"


def test_before_the_window_opens_it_waits_until_this_morning():
    decision = decide(_request(Kind.AUTOMATION), PATIENT, ConsentState(), _at("2026-11-23 06:15"))
    assert decision.deliveries[0].not_before == _at("2026-11-23 08:00")


def test_inside_the_window_it_goes_now():
    for local in ("2026-11-23 08:00", "2026-11-23 13:00", "2026-11-23 20:59"):
        decision = decide(_request(Kind.BROADCAST), PATIENT, ConsentState(), _at(local))
        assert decision.deliveries[0].status == Status.PENDING, local


def test_manual_staff_messages_are_never_deferred():
    decision = decide(_request(Kind.MANUAL), PATIENT, ConsentState(), _at("2026-11-23 23:45"))
    assert decision.deliveries[0].status == Status.PENDING


def test_an_exempt_type_has_no_window_and_goes_at_once():
    decision = decide(_request(Kind.AUTOMATION, window=None), PATIENT, ConsentState(), _at("2026-11-23 23:45"))
    assert decision.deliveries[0].status == Status.PENDING


def test_the_patients_zone_decides_not_the_practices():
    # 22:30 in New York is 19:30 in Los Angeles: inside the window there.
    west = Recipient(patient_id=2, phones=(Phone("+14155550111"),), timezone="America/Los_Angeles")
    decision = decide(_request(Kind.AUTOMATION), west, ConsentState(), _at("2026-11-23 22:30"))
    assert decision.deliveries[0].status == Status.PENDING


def test_without_a_zone_of_their_own_the_practice_zone_applies():
    nowhere = Recipient(patient_id=3, phones=(Phone("+14155550111"),))
    request = SendRequest(
        kind=Kind.AUTOMATION,
        category=category("recall"),
        content_channels=frozenset({Channel.SMS}),
        window=WINDOW,
        default_timezone="Europe/London",
    )
    decision = decide(request, nowhere, ConsentState(), datetime(2026, 11, 23, 23, 0, tzinfo=UTC))
    assert decision.deliveries[0].not_before == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def test_quiet_hours_never_turn_a_skip_into_a_deferral():
    state = ConsentState(sms_opted_out=frozenset({"+12125550111"}))
    decision = decide(_request(Kind.AUTOMATION), PATIENT, state, _at("2026-11-23 22:30"))
    assert [(p.status, p.reason) for p in decision.deliveries] == [(Status.SKIPPED, Reason.SMS_OPTED_OUT)]


def test_in_app_notices_are_not_held_back():
    request = _request(Kind.NOTIFICATION, channels=(Channel.IN_APP, Channel.EMAIL), key="message_received")
    decision = decide(request, PATIENT, ConsentState(), _at("2026-11-23 22:30"))
    assert [(p.channel, p.status) for p in decision.deliveries] == [
        (Channel.IN_APP, Status.PENDING),
        (Channel.EMAIL, Status.DEFERRED),
    ]


def test_a_window_across_midnight():
    night_shift = SendWindow(time(20, 0), time(2, 0))
    assert window_opens(_at("2026-11-23 23:00"), NY, night_shift) is None
    assert window_opens(_at("2026-11-23 01:30"), NY, night_shift) is None
    assert window_opens(_at("2026-11-23 10:00"), NY, night_shift) == _at("2026-11-23 20:00")


def test_the_opening_respects_daylight_saving_changes():
    # The night clocks go back (2026-11-01 in the US): 08:00 local is 13:00 UTC, not 12:00.
    assert window_opens(_at("2026-10-31 22:00"), NY, WINDOW) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_a_window_from_midnight_to_midnight_means_no_quiet_hours():
    always = SendWindow(time(0, 0), time(0, 0))
    for local in ("2026-11-23 00:00", "2026-11-23 03:17", "2026-11-23 23:59"):
        assert window_opens(_at(local), NY, always) is None
