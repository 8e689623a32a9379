"""Recovery by sweep: what a killed worker leaves open is settled by any other worker, whatever was killed when."""

from datetime import UTC, datetime, timedelta

import pytest
from django_tasks_db.models import DBTaskResult

from consentry.messaging.models import Delivery, WorkerBeat
from consentry.messaging.recovery import beat, sweep
from consentry.providers.models import SandboxMessage
from tests.conftest import drain_worker, plan_text

pytestmark = pytest.mark.django_db

PHONE = "+14155550111"


@pytest.fixture
def queued(practice):
    """A text whose dispatch task a worker has claimed."""
    plan_text(practice, PHONE)
    task = DBTaskResult.objects.get(task_path__endswith=".dispatch_deliveries")
    return task


def _claimed_by(task, *workers, minutes_ago=5):
    DBTaskResult.objects.filter(pk=task.pk).update(
        status="RUNNING", worker_ids=list(workers), started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago)
    )


def test_a_task_of_a_worker_that_stopped_beating_runs_again_and_its_text_goes_once(queued):
    _claimed_by(queued, "killed-worker")  # killed right after claiming it: RUNNING for ever, before
    assert sweep()["tasks_reclaimed"] == 1
    drain_worker()
    assert Delivery.objects.get().status == "delivered"
    assert SandboxMessage.objects.count() == 1
    assert DBTaskResult.objects.get(pk=queued.pk).worker_ids == ["killed-worker", "test-worker"]


def test_a_long_task_of_a_live_worker_is_left_alone(queued):
    _claimed_by(queued, "busy-worker", minutes_ago=30)
    beat("busy-worker")
    assert sweep()["tasks_reclaimed"] == 0
    assert DBTaskResult.objects.get(pk=queued.pk).status == "RUNNING"


def test_a_task_just_claimed_is_not_taken_from_its_worker_before_it_could_beat(queued):
    _claimed_by(queued, "starting-worker", minutes_ago=0)
    assert sweep()["tasks_reclaimed"] == 0


def test_a_task_that_kills_every_worker_that_runs_it_fails_after_the_last_claim(queued, settings):
    settings.CONSENTRY_TASK_MAX_CLAIMS = 3
    _claimed_by(queued, "w1", "w2", "w3")
    assert sweep()["tasks_failed"] == 1
    failed = DBTaskResult.objects.get(pk=queued.pk)
    assert failed.status == "FAILED" and failed.exception_class_path.endswith("WorkerDied")
    assert "w1, w2, w3" in failed.traceback


def test_beats_are_kept_per_worker(db):
    beat("w1")
    beat("w1")
    beat("w2")
    assert sorted(WorkerBeat.objects.values_list("worker_id", flat=True)) == ["w1", "w2"]


def test_sweeps_running_at_once_settle_each_delivery_once(queued, settings):
    """Two workers sweeping the same lost delivery: one re-dispatch between them (the second finds it fresh)."""
    DBTaskResult.objects.all().delete()
    settings.CONSENTRY_REDISPATCH_AFTER_SECONDS = 0
    first, second = sweep(), sweep(datetime.now(UTC) - timedelta(seconds=1))
    assert (first["redispatched"], second["redispatched"]) == (1, 0)
    assert Delivery.objects.get().attempts == 1
