"""Delivery statuses move only as the one table allows, whichever path moves them; a refused move never raises."""

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest

from consentry.messaging.models import Delivery, DeliveryEvent
from consentry.messaging.status import TRANSITIONS, can_move, handed_over, move, move_many
from consentry.vocabulary import Status
from tests.conftest import plan_text

pytestmark = pytest.mark.django_db

PAIRS = list(itertools.product(Status, repeat=2))


@pytest.fixture
def delivery(practice):
    return plan_text(practice)


def _in(delivery, status):
    Delivery.objects.filter(pk=delivery.pk).update(status=status)
    delivery.refresh_from_db()
    return delivery


def test_the_table_reads_like_a_deliverys_life():
    waiting = {Status.PENDING, Status.DEFERRED}
    for status in waiting:
        assert TRANSITIONS[status] == {
            Status.DEFERRED,
            Status.SENT,
            Status.SKIPPED,
            Status.DELIVERED,
            Status.UNDELIVERED,
            Status.FAILED,
        }
    assert TRANSITIONS[Status.SENT] == {Status.DELIVERED, Status.UNDELIVERED, Status.FAILED}
    assert all(not TRANSITIONS[s] for s in (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.SKIPPED))
    assert not any(can_move(s, Status.PENDING) for s in Status)  # nothing goes back to waiting


@pytest.mark.parametrize("current, to", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_move_walks_every_pair_of_statuses(delivery, current, to, caplog):
    delivery = _in(delivery, current)
    with caplog.at_level(logging.INFO, logger="consentry.status"):
        moved = move(delivery, to, provider_status="test")
    delivery.refresh_from_db()
    assert moved == can_move(current, to)
    assert delivery.status == (to if moved else current)
    # Either way the report is in the history; a refused change of status is logged.
    assert DeliveryEvent.objects.filter(delivery=delivery, status=to, provider_status="test").count() == 1
    assert ("refused" in caplog.text) == (not moved and current != to)


@pytest.mark.parametrize("current, to", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_move_many_walks_every_pair_of_statuses(delivery, current, to):
    delivery = _in(delivery, current)
    moved = move_many([delivery.pk], to, provider_status="test")
    delivery.refresh_from_db()
    assert moved == ([delivery.pk] if can_move(current, to) else [])
    assert delivery.status == (to if moved else current)
    assert DeliveryEvent.objects.filter(delivery=delivery, provider_status="test").count() == len(moved)


@pytest.mark.parametrize("current", list(Status))
def test_a_hand_over_is_recorded_only_on_a_delivery_that_may_still_go(delivery, current):
    delivery = _in(delivery, current)
    handed_over([(delivery.pk, "SM1", False)], datetime.now(UTC))
    delivery.refresh_from_db()
    if can_move(current, Status.SENT):
        assert (delivery.status, delivery.provider_ref) == (Status.SENT, "SM1")
    else:
        assert (delivery.status, delivery.provider_ref) == (current, "")


def test_a_deferral_sets_when_and_why(delivery):
    opens = datetime.now(UTC) + timedelta(hours=3)
    assert move_many([delivery.pk], Status.DEFERRED, reason="quiet_hours", not_before=opens) == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.reason, delivery.not_before) == ("deferred", "quiet_hours", opens)
