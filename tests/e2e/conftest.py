"""A real `consentry serve` process on its own throwaway database, driven over HTTP.

On the PostgreSQL pass (DATABASE_URL set) each service gets a fresh PostgreSQL
database; otherwise a fresh SQLite file. Nothing here shares the test
transaction, so the append-only ledger never has to be flushed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TWILIO_TOKEN, twilio_signature

CLI = [sys.executable, "-m", "consentry.cli"]
TEXTING_NUMBER = "+14155550100"


def cli(args, env, check=True):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def service_env(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        CONSENTRY_DEMO="1", CONSENTRY_DATA_DIR=str(tmp_path_factory.mktemp("data")), CONSENTRY_LOG_LEVEL="WARNING"
    )
    base_url = os.environ.get("DATABASE_URL", "")
    dropped = None
    if base_url.startswith("postgres"):
        import psycopg

        name = f"consentry_e2e_{uuid.uuid4().hex[:12]}"
        admin = base_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = base_url.rsplit("/", 1)[0] + "/" + name
        dropped = (admin, name)
    cli(["migrate", "--noinput", "-v0"], env)
    yield env
    if dropped:
        import psycopg

        with psycopg.connect(dropped[0], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dropped[1]}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, *, json_body=None, form=None, headers=None):
    headers = dict(headers or {})
    data = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


@dataclass
class Service:
    base: str
    key: str
    practice_id: str

    def api(self, method, path, body=None):
        return http(
            method, f"{self.base}/api/v1{path}", json_body=body, headers={"Authorization": f"Bearer {self.key}"}
        )

    def text_in(self, sender, body, sid, token=TWILIO_TOKEN, signature=None):
        form = {"From": sender, "To": TEXTING_NUMBER, "Body": body, "MessageSid": sid, "AccountSid": "AC1"}
        url = f"{self.base}/webhooks/twilio/sms"
        sig = signature if signature is not None else twilio_signature(url, form, token)
        return http("POST", url, form=form, headers={"X-Twilio-Signature": sig})

    def read_all(self, timeout=20) -> None:
        """Until a worker has read every text the webhook stored (``/healthz`` shows none waiting)."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = http("GET", f"{self.base}/healthz")
            assert status == 200, body
            if body["oldest_unread_text_age_seconds"] is None:
                return
            assert time.monotonic() < deadline, f"texts still unread after {timeout} s: {body}"
            time.sleep(0.05)

    def outbox(self, to):
        status, body = http("GET", f"{self.base}/sandbox/outbox?to={urllib.parse.quote(to)}")
        assert status == 200
        return [m["body"] for m in body["messages"]]

    def settled(self, message_id, timeout=20):
        """The message's deliveries once the embedded worker has handled every pending one."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.api("GET", f"/messages/{message_id}")
            assert status == 200, body
            rows = [(d["channel"], d["status"], d["reason"]) for d in body["deliveries"]]
            if all(s != "pending" for _, s, _ in rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def wait_outbox(self, to, count, timeout=20):
        deadline = time.monotonic() + timeout
        while len(bodies := self.outbox(to)) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return bodies


def wait_healthy(base: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until ``base``'s /healthz answers; fails with the process's output if it stopped first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.poll() is not None and process.stdout else ""
                raise AssertionError(f"consentry serve did not start:\n{output}") from exc
            time.sleep(0.1)


# Recovery at a test's pace: a killed worker counts as dead after 1.5 s, a lost delivery after 2.
FAST_RECOVERY = {
    "CONSENTRY_BEAT_SECONDS": "0.2",
    "CONSENTRY_SWEEP_SECONDS": "0.5",
    "CONSENTRY_WORKER_DEAD_SECONDS": "1.5",
    "CONSENTRY_REDISPATCH_AFTER_SECONDS": "2",
}


@pytest.fixture(scope="module")
def twilio_api():
    """Twilio's REST API on loopback, for the services of one module."""
    from tests.conftest import TWILIO_ACCOUNT
    from tests.fakes.twilio import start_fake_twilio

    fake, server = start_fake_twilio(TWILIO_ACCOUNT, TWILIO_TOKEN)
    yield fake
    server.shutdown()
    server.server_close()


def twilio_env(service_env: dict, twilio, *, outcome_timeout: float, **more: str) -> dict:
    """A service that texts through the loopback Twilio, with fast recovery and this outcome timeout."""
    return {
        **service_env,
        "CONSENTRY_PROVIDER": "twilio",
        "CONSENTRY_TWILIO_API_BASE": twilio.url,
        "CONSENTRY_OUTCOME_TIMEOUT_SECONDS": str(outcome_timeout),
        **FAST_RECOVERY,
        **more,
    }


def start_service(env, *serve_args, practice_args=()) -> tuple[Service, subprocess.Popen]:
    """A practice (created with ``practice_args`` too) and a running `consentry serve` (with
    ``serve_args``) on this environment's database."""
    created = json.loads(
        cli(
            [
                "practice",
                "create",
                "--name",
                "Oak Clinic",
                "--texting-number",
                TEXTING_NUMBER,
                "--twilio-auth-token",
                TWILIO_TOKEN,
                "--send-window",
                "00:00-00:00",
                "--json",
                *practice_args,
            ],
            env,
        ).stdout
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The links it puts in emails and on pages lead back to it.
    env = {"CONSENTRY_PUBLIC_URL": base, **env}
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *serve_args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_healthy(base, server)
    return Service(base, created["api_key"], created["id"]), server


@pytest.fixture(scope="module")
def service(service_env):
    service, server = start_service(service_env)
    yield service
    server.terminate()
    server.wait(timeout=10)


# --- a real browser -----------------------------------------------------------------------------------------------

# Chromium's own calls home are refused on a closed network: it is told not to make them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium():
    """The machine's Chromium under Playwright, found (or installed) by scripts/chromium.sh."""
    found = subprocess.run([ROOT / "scripts" / "chromium.sh"], capture_output=True, text=True, timeout=600)
    if found.returncode != 0:
        why = (
            f"!! THE BROWSER TESTS DID NOT RUN: no Chromium on this machine ({found.stderr.strip()}). "
            "Install Debian's chromium, or set CONSENTRY_CHROMIUM to a Chromium's path."
        )
        if os.environ.get("CONSENTRY_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    path = found.stdout.strip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def axe_clean(page, what: str) -> int:
    """Run axe-core on the page as it is; fail on any serious or critical violation. How many rules passed."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations", "passes"]})
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    detail = "; ".join(f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in bad)
    assert not bad, f"axe on {what}: {detail}"
    return len(results.response["passes"])


def staff_user(service_env, service, email, role="front_desk", password="a-long-test-passphrase", name="Dana Desk"):
    """A staff user of the service's practice, made with the CLI as an operator would; (email, password)."""
    subprocess.run(
        [*CLI, "staff", "create", "--practice", service.practice_id, "--email", email, "--role", role,
         "--name", name, "--password-stdin"],
        input=password + "\n", env=service_env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return email, password


def browser_sign_in(page, base, email, password):
    page.goto(f"{base}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
