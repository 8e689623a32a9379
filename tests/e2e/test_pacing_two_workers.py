"""Sender pacing holds across worker processes: two `consentry worker` processes share one texting number's rate."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest

from tests.e2e.conftest import CLI, cli, http, start_service

pytestmark = pytest.mark.e2e

RATE = 4  # texts per second from the practice's number
PATIENTS = 8


@pytest.fixture(scope="module")
def paced(service_env, tmp_path_factory):
    service, server = start_service(service_env, "--no-worker")
    assert cli(["practice", "update", service.practice_id, "--sms-rate", str(RATE)], service_env).returncode == 0
    logs = tmp_path_factory.mktemp("workers")
    workers = [
        subprocess.Popen(
            [*CLI, "worker", "--interval", "0.05"],
            env=service_env,
            stdout=(logs / f"worker{i}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    # Both must be polling before any task exists, or one could take every task on a busy machine.
    deadline = time.monotonic() + 60
    while not all("Starting worker" in (logs / f"worker{i}.log").read_text() for i in range(2)):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)
    yield service
    for process in (*workers, server):
        process.terminate()
        process.wait(timeout=10)
    print("\n".join((logs / f"worker{i}.log").read_text() for i in range(2)))


def _sent_times(service) -> list[datetime]:
    status, body = http("GET", f"{service.base}/sandbox/outbox")
    assert status == 200
    return sorted(datetime.fromisoformat(m["created_at"]) for m in body["messages"] if m["channel"] == "sms")


def test_two_workers_never_exceed_the_senders_rate(paced, service_env):
    ids = []
    for i in range(PATIENTS):
        status, patient = paced.api(
            "POST",
            "/patients",
            {"first_name": f"P{i}", "phones": [{"number": f"+1415555{1000 + i}", "line_type": "mobile"}]},
        )
        assert status == 201, patient
        ids.append(patient["id"])
    # Two messages, so the two workers each take one task and race for the same number.
    for half in (ids[: PATIENTS // 2], ids[PATIENTS // 2 :]):
        status, body = paced.api(
            "POST",
            "/messages",
            {
                "kind": "broadcast",
                "category": "announcement",
                "patient_ids": half,
                "content": {"sms": "Flu shots are in."},
            },
        )
        assert status == 202, body
    deadline = time.monotonic() + 30
    while len(times := _sent_times(paced)) < PATIENTS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(times) == PATIENTS

    # At most RATE texts in any one-second window. Each hand-over goes within a quarter interval of
    # its own reserved instant (see pacing.wait_for); 100 ms more for the two processes' clocks and
    # the moment between the hand-over and the sandbox writing its record on a busy machine.
    tolerance = 1 / RATE / 4 + 0.1
    for first, later in zip(times, times[RATE:], strict=False):
        assert (later - first).total_seconds() >= 1 - tolerance, [t.isoformat() for t in times]
    # Both processes did take part.
    script = (
        "from django_tasks_db.models import DBTaskResult; import json; "
        "print(json.dumps(list(DBTaskResult.objects.values_list('worker_ids', flat=True))))"
    )
    workers = {
        w for claimed in json.loads(cli(["shell", "-c", script], service_env).stdout.splitlines()[-1]) for w in claimed
    }
    assert len(workers) == 2, workers
