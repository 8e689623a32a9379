"""Shared fixtures: real database, real worker, real signatures. Factories live here."""

from __future__ import annotations

import json
import os
import sys
from datetime import time

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from consentry.patients.practices import create_practice
from consentry.records.services import PhoneInput, create_patient

TWILIO_TOKEN = "test-auth-token-0123456789abcdef"
TWILIO_ACCOUNT = "AC" + "1" * 32


def only_on_postgresql(why: str):
    """A mark that skips a test, loudly, outside make test's PostgreSQL pass (which CI requires): ``why`` says
    what it proves that only PostgreSQL has."""
    return pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason=f"!! NOT RUN ON SQLITE: {why}. It runs in make test's PostgreSQL pass, which CI requires.",
    )


def make_practice(name="Oak Clinic", number="+14155550100", **kwargs):
    """A practice with no quiet hours, so that no test depends on the hour it runs at.

    Tests of quiet hours set the window themselves. The time zone is New York's, whatever the number.
    """
    kwargs.setdefault("send_window", (time(0, 0), time(0, 0)))
    kwargs.setdefault("timezone", "America/New_York")
    return create_practice(name=name, texting_number=number, twilio_auth_token=TWILIO_TOKEN, **kwargs)


def make_patient(practice, first_name="Pat", phones=(), emails=(), **kwargs):
    return create_patient(
        practice=practice,
        first_name=first_name,
        phones=[p if isinstance(p, PhoneInput) else PhoneInput(*p) for p in phones],
        emails=list(emails),
        **kwargs,
    )


STAFF_PASSWORD = "a-long-test-passphrase"


def make_staff(practice, email="desk@oak.example", role="front_desk", password=STAFF_PASSWORD, name="Dana Desk"):
    """A staff user with a role at the practice (an existing user is given the role); the user."""
    from consentry.accounts.services import create_staff

    if password is not None:
        from django.contrib.auth import get_user_model

        if get_user_model().objects.filter(username=email).exists():
            password = None
    return create_staff(practice=practice, email=email, role=role, password=password, name=name).user


def signed_in(user, client=None):
    """A test client signed in as this staff user (the sign-in form itself is tested on its own)."""
    client = client or Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def plan_text(practice, number: str = "+14155550111", body: str = "Forms to sign"):
    """A staff text to a new patient with this mobile number, planned (its dispatch task queued); its delivery."""
    from consentry.messaging.models import Delivery
    from consentry.messaging.planning import create_message

    patient = make_patient(practice, phones=[(number, "mobile")])
    create_message(
        practice=practice, kind="manual", category="document_shared", patient_ids=[patient.pk], content={"sms": body}
    )
    return Delivery.objects.select_related("practice").get(patient=patient)


def drain_worker() -> int:
    """Run queued tasks with the real database worker until none is ready; return how many ran.

    This is the worker's own claim-then-run cycle, minus its between-task
    ``close_old_connections()``, which would close the connection that holds
    the test's transaction.
    """
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction

    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )
    while True:
        with exclusive_transaction():
            task_result = DBTaskResult.objects.ready().filter(backend_name="default").get_locked()
            if task_result is None:
                return worker._run_tasks
            task_result.claim(worker.worker_id)
        worker.run_task(task_result)
        failed = (
            DBTaskResult.objects.filter(pk=task_result.pk, status="FAILED").values_list("traceback", flat=True).first()
        )
        if failed:
            raise AssertionError(f"task failed:\n{failed}")


def twilio_signature(url: str, params: dict, token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class Api:
    """The REST API through Django's test client, authenticated as one practice."""

    def __init__(self, key: str):
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def post(self, path, body, **headers):
        return self.client.post(f"/api/v1{path}", json.dumps(body), content_type="application/json", **headers)

    def put(self, path, body):
        return self.client.put(f"/api/v1{path}", json.dumps(body), content_type="application/json")

    def patch(self, path, body):
        return self.client.patch(f"/api/v1{path}", json.dumps(body), content_type="application/json")

    def get(self, path, **params):
        return self.client.get(f"/api/v1{path}", params)

    def delete(self, path):
        return self.client.delete(f"/api/v1{path}")


@pytest.fixture
def practice_and_key(db):
    return make_practice()


@pytest.fixture
def practice(practice_and_key):
    return practice_and_key[0]


@pytest.fixture
def user(practice):
    """A front-desk staff user of the practice: Dana Desk."""
    return make_staff(practice)


@pytest.fixture
def desk(user):
    """A test client signed in as that staff user."""
    return signed_in(user)


@pytest.fixture
def api(practice_and_key):
    return Api(practice_and_key[1])


@pytest.fixture
def twilio(settings, practice):
    """Twilio's REST API on loopback, the practice's SMS and voice provider (its account and token)."""
    from tests.fakes.twilio import start_fake_twilio

    fake, server = start_fake_twilio(TWILIO_ACCOUNT, TWILIO_TOKEN)
    settings.CONSENTRY_TWILIO_API_BASE = fake.url
    settings.CONSENTRY_PUBLIC_URL = "http://testserver"
    practice.sms_provider = "twilio"
    practice.twilio_account_sid = TWILIO_ACCOUNT
    practice.save()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def sendgrid(settings, practice):
    """SendGrid's API on loopback, the practice's email provider through anymail."""
    from tests.fakes.sendgrid import API_KEY, start_fake_sendgrid

    fake, server = start_fake_sendgrid(API_KEY)
    settings.CONSENTRY_ANYMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    settings.ANYMAIL = {"SENDGRID_API_KEY": API_KEY, "SENDGRID_API_URL": f"{fake.url}/v3/"}
    practice.email_provider = "anymail"
    practice.save()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp(settings, practice):
    """A real SMTP server on loopback, the practice's email provider."""
    from tests.fakes.smtp import start_fake_smtp

    fake, controller = start_fake_smtp()
    settings.CONSENTRY_SMTP_HOST = fake.host
    settings.CONSENTRY_SMTP_PORT = fake.port
    practice.email_provider = "smtp"
    practice.save()
    yield fake
    controller.stop()


def read_received() -> int:
    """A worker's reader reads the texts the webhook stored (no task runs); how many it read."""
    from consentry.conversations.reader import Reader

    return Reader().read_unread()


def send_sms_webhook(
    client: Client,
    *,
    body: str,
    sender: str,
    to: str = "+14155550100",
    sid: str = "SM1",
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
    extra: dict | None = None,
    read: bool = True,
):
    """Twilio's inbound webhook, signed; ``read``: then the worker reads what it stored, as it would a moment
    later (``read=False`` leaves the text stored and not yet read)."""
    params = {
        "From": sender,
        "To": to,
        "Body": body,
        "MessageSid": sid,
        "AccountSid": "AC1",
        "NumMedia": "0",
        **(extra or {}),
    }
    url = "http://testserver/webhooks/twilio/sms"
    sig = signature if signature is not None else twilio_signature(url, params, token)
    response = client.post("/webhooks/twilio/sms", params, HTTP_X_TWILIO_SIGNATURE=sig)
    if read:
        read_received()
    return response


# --- figures printed at the end of the run ---------------------------------------------------------------------


def summary(request, line: str) -> None:
    """A line at the end of the run (pytest's terminal summary), whatever the capture mode."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(line, file=sys.stderr)
        return
    lines = request.config.stash.setdefault(_SUMMARY, [])
    if not lines:
        request.config.pluginmanager.register(_SummaryPlugin(lines), "consentry-summary")
    lines.append(line)


class _SummaryPlugin:
    def __init__(self, lines):
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines:
            terminalreporter.write_line(line)


_SUMMARY = pytest.StashKey[list]()
