"""A worker killed in the middle of a batch: nothing is sent twice, nothing is lost.

One `consentry worker` hands a three-text broadcast to Twilio (the loopback
fake) and is killed with SIGKILL while Twilio holds the second call open. Of
the three deliveries, the first was answered, the second was handed over with
no answer (it may have gone out), and the third was never handed over. A
second worker's recovery sweep finds the dead worker's task and runs it
again: the third goes out, and once the outcome timeout has passed the second
fails as ``outcome_unknown`` without being sent again.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.conftest import TWILIO_ACCOUNT
from tests.e2e.conftest import CLI, cli, start_service, twilio_env

pytestmark = pytest.mark.e2e

NUMBERS = ["+14155552001", "+14155552002", "+14155552003"]
OUTCOME_TIMEOUT = 3  # seconds


@pytest.fixture(scope="module")
def twilio(twilio_api):
    return twilio_api


@pytest.fixture(scope="module")
def env(service_env, twilio):
    # No answer for a minute is a hung call; the outcome of one not answered is unknown after 3 s.
    return twilio_env(service_env, twilio, outcome_timeout=OUTCOME_TIMEOUT, CONSENTRY_PROVIDER_TIMEOUT="60")


@pytest.fixture(scope="module")
def service(env, tmp_path_factory):
    service, server = start_service(env, "--no-worker", practice_args=["--twilio-account-sid", TWILIO_ACCOUNT])
    # Fast enough that pacing does not split the batch into several tasks.
    assert cli(["practice", "update", service.practice_id, "--sms-rate", "50"], env).returncode == 0
    yield service
    server.terminate()
    server.wait(timeout=10)


def _worker(env, log):
    return subprocess.Popen(
        [*CLI, "worker", "--interval", "0.05"],
        env={**env, "CONSENTRY_LOG_LEVEL": "INFO"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _deliveries(service, message_id) -> dict[str, tuple[str, str]]:
    status, body = service.api("GET", f"/messages/{message_id}")
    assert status == 200, body
    return {d["address"]: (d["status"], d["reason"]) for d in body["deliveries"]}


def test_a_killed_worker_leaves_no_double_send_and_no_lost_delivery(service, env, twilio, tmp_path):
    patient_ids = []
    for i, number in enumerate(NUMBERS):
        status, patient = service.api(
            "POST", "/patients", {"first_name": f"P{i}", "phones": [{"number": number, "line_type": "mobile"}]}
        )
        assert status == 201, patient
        patient_ids.append(patient["id"])
    status, message = service.api(
        "POST",
        "/messages",
        {
            "kind": "broadcast",
            "category": "announcement",
            "patient_ids": patient_ids,
            "content": {"sms": "Flu shots are in."},
        },
    )
    assert status == 202, message
    # The worker takes them in the order they were planned (the API lists them in that order).
    first_number, second_number, third_number = _deliveries(service, message["id"])
    twilio.delays[second_number] = 120  # Twilio takes the second text and does not answer

    first = _worker(env, tmp_path / "first.log")
    deadline = time.monotonic() + 30
    while second_number not in [r["form"].get("To") for r in twilio.messages()]:
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    assert _deliveries(service, message["id"]) == {
        first_number: ("sent", None),  # answered, and recorded at once
        second_number: ("pending", None),  # handed over, no answer
        third_number: ("pending", None),  # never reached
    }

    second = _worker(env, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + OUTCOME_TIMEOUT + 30
        while ("pending", None) in (rows := _deliveries(service, message["id"])).values():
            assert second.poll() is None and time.monotonic() < deadline, (
                rows,
                twilio.requests,
                (tmp_path / "second.log").read_text(),
            )
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait(timeout=10)
    assert rows == {
        first_number: ("sent", None),
        second_number: ("failed", "outcome_unknown"),  # it may have gone out: never sent again
        third_number: ("sent", None),  # dispatched again, once
    }
    sent_to = [r["form"]["To"] for r in twilio.messages()]
    assert sorted(sent_to) == sorted(NUMBERS), sent_to
