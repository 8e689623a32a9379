"""Recovery that depends on no single task: every worker sweeps for what a stopped process left behind.

A worker killed at any moment can leave three things open: its task row
(RUNNING for ever), a delivery it handed to a provider with no answer
recorded, and deliveries its task never reached. Every worker runs the same
sweep every ``CONSENTRY_SWEEP_SECONDS``, and it is safe to run anywhere at
once (every change is conditional on what it read):

- a task whose worker stopped beating for ``CONSENTRY_WORKER_DEAD_SECONDS``
  is made ready again (dispatching twice is harmless: only one task can take
  a delivery), or failed after ``CONSENTRY_TASK_MAX_CLAIMS`` workers died on it;
- a delivery handed over with no answer for ``CONSENTRY_OUTCOME_TIMEOUT_SECONDS``
  fails as ``outcome_unknown`` (it may have gone out: never resent);
- a delivery due for ``CONSENTRY_REDISPATCH_AFTER_SECONDS`` and never handed
  over is dispatched again, unless the queue is simply behind (due dispatch
  tasks waiting that long), up to ``CONSENTRY_RETRY_MAX_ATTEMPTS`` times in
  all; then it fails as ``not_dispatched``.

So nothing stays pending for ever, whatever is killed and whenever.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult, get_date_max

from consentry.vocabulary import Reason, Status

from .models import Delivery, DeliveryEvent, WorkerBeat
from .status import move
from .tasks import enqueue_dispatch

log = logging.getLogger("consentry.recovery")

WAITING = [Status.PENDING, Status.DEFERRED]
BATCH = 500  # deliveries settled per transaction
DISPATCH_TASK = "consentry.messaging.tasks.dispatch_deliveries"


class WorkerDied(Exception):
    """Recorded on a task failed because the workers running it kept dying."""


def _seconds(name: str) -> timedelta:
    return timedelta(seconds=getattr(settings, name))


# --- workers and their tasks ------------------------------------------------------------------------------------


def beat(worker_id: str, now: datetime | None = None) -> None:
    """Say that this worker is alive."""
    now = now or datetime.now(UTC)
    if WorkerBeat.objects.filter(pk=worker_id).update(beat_at=now):
        return
    try:
        with transaction.atomic():
            WorkerBeat.objects.create(
                worker_id=worker_id, host=socket.gethostname()[:255], pid=os.getpid(), started_at=now, beat_at=now
            )
    except IntegrityError:  # a beat of the same worker won the race
        WorkerBeat.objects.filter(pk=worker_id).update(beat_at=now)


def reclaim_tasks(now: datetime) -> dict[str, int]:
    """Tasks left RUNNING by workers that stopped beating: ready again, or failed when workers keep dying on them."""
    dead_before = now - _seconds("CONSENTRY_WORKER_DEAD_SECONDS")
    alive = set(WorkerBeat.objects.filter(beat_at__gt=dead_before).values_list("worker_id", flat=True))
    done = {"tasks_reclaimed": 0, "tasks_failed": 0}
    rows = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING, started_at__lt=dead_before).values_list(
        "id", "started_at", "worker_ids"
    )
    for task_id, started_at, worker_ids in rows:
        if worker_ids and worker_ids[-1] in alive:
            continue  # a long task of a live worker
        # Conditional on what was read: a sweep elsewhere, or the worker finishing, wins.
        same = DBTaskResult.objects.filter(pk=task_id, status=TaskResultStatus.RUNNING, started_at=started_at)
        if len(worker_ids or []) >= settings.CONSENTRY_TASK_MAX_CLAIMS:
            done["tasks_failed"] += same.update(
                status=TaskResultStatus.FAILED,
                finished_at=now,
                exception_class_path=f"{WorkerDied.__module__}.{WorkerDied.__qualname__}",
                traceback=f"the workers running it stopped {len(worker_ids)} times ({', '.join(worker_ids)})",
            )
        else:
            done["tasks_reclaimed"] += same.update(status=TaskResultStatus.READY)
    WorkerBeat.objects.filter(beat_at__lt=now - timedelta(days=1)).delete()
    return done


# --- deliveries ---------------------------------------------------------------------------------------------------


def settle_deliveries(now: datetime, ids: list[int] | None = None) -> dict[str, int]:
    """Fail the unknown outcomes past the timeout; dispatch again what no task will reach (see the module)."""
    done = {"outcome_unknown": 0, "redispatched": 0, "not_dispatched": 0, "queue_behind": 0}
    waiting = Delivery.objects.filter(status__in=WAITING)
    if ids is not None:
        waiting = waiting.filter(pk__in=ids)
    unanswered = waiting.filter(attempted_at__lte=now - _seconds("CONSENTRY_OUTCOME_TIMEOUT_SECONDS"))
    while batch := list(unanswered.values_list("pk", flat=True)[:BATCH]):
        with transaction.atomic():
            for delivery in _locked(batch).filter(
                attempted_at__lte=now - _seconds("CONSENTRY_OUTCOME_TIMEOUT_SECONDS")
            ):
                done["outcome_unknown"] += move(
                    delivery, Status.FAILED, reason=Reason.OUTCOME_UNKNOWN, error_code=Reason.OUTCOME_UNKNOWN
                )
    stale = now - _seconds("CONSENTRY_REDISPATCH_AFTER_SECONDS")
    lost = waiting.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=stale), attempted_at__isnull=True, updated_at__lte=stale
    )
    if ids is None and _queue_behind(stale):
        done["queue_behind"] = lost.count()  # their tasks are waiting for a worker, not lost
        return done
    while batch := list(lost.values_list("pk", flat=True)[:BATCH]):
        again = []
        with transaction.atomic():
            for delivery in _locked(batch).filter(attempted_at__isnull=True, updated_at__lte=stale):
                if delivery.attempts + 1 >= settings.CONSENTRY_RETRY_MAX_ATTEMPTS:
                    done["not_dispatched"] += move(
                        delivery,
                        Status.FAILED,
                        reason=Reason.NOT_DISPATCHED,
                        error_code=Reason.NOT_DISPATCHED,
                        error="not_dispatched: its dispatch task stopped before handing it over, every time",
                    )
                    continue
                delivery.attempts += 1
                delivery.save(update_fields=["attempts", "updated_at"])  # and so not lost again before the next wait
                DeliveryEvent.objects.create(delivery=delivery, status=delivery.status, provider_status="redispatch")
                again.append(delivery.pk)
            enqueue_dispatch(again)
        done["redispatched"] += len(again)
    return done


def _locked(pks: list[int]):
    """These deliveries, still waiting, locked for this transaction; those another sweep holds are left to it."""
    return (
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("practice")
        .filter(pk__in=pks, status__in=WAITING)
        .order_by("pk")
    )


def _queue_behind(stale: datetime) -> bool:
    """Dispatch tasks have been due since before ``stale`` and no worker has run them yet."""
    return DBTaskResult.objects.filter(
        Q(run_after=get_date_max(), enqueued_at__lte=stale) | Q(run_after__lte=stale),
        status=TaskResultStatus.READY,
        task_path=DISPATCH_TASK,
    ).exists()


def sweep(now: datetime | None = None) -> dict[str, int]:
    """One pass of recovery (see the module); safe to run in any number of processes at once."""
    now = now or datetime.now(UTC)
    done = reclaim_tasks(now)
    done.update(settle_deliveries(now))
    if any(done.values()):
        log.info("recovery sweep: %s", ", ".join(f"{k} {v}" for k, v in done.items() if v))
    return done


class Sweeper(threading.Thread):
    """Beats for its worker every few seconds and sweeps every ``CONSENTRY_SWEEP_SECONDS``, in the background."""

    def __init__(self, worker_id: str):
        super().__init__(name=f"consentry-sweeper-{worker_id}", daemon=True)
        self.worker_id = worker_id
        self.stopped = threading.Event()

    def run(self) -> None:
        every = settings.CONSENTRY_SWEEP_SECONDS
        next_sweep = time.monotonic() + random.uniform(0, min(every, 5))  # workers started together spread out
        while True:
            try:
                close_old_connections()
                beat(self.worker_id)
                if time.monotonic() >= next_sweep:
                    sweep()
                    next_sweep = time.monotonic() + every
            except Exception:  # a database hiccup must not end recovery: the next round tries again
                log.exception("recovery sweep failed; trying again shortly")
            if self.stopped.wait(min(settings.CONSENTRY_BEAT_SECONDS, every)):
                return

    def stop(self) -> None:
        self.stopped.set()
