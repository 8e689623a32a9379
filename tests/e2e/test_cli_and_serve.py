"""The `consentry` command on a real database file: practice create, serve with its embedded worker."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from tests.e2e.conftest import http, wait_healthy

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "consentry.cli"]


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(CONSENTRY_DEMO="1", CONSENTRY_DATA_DIR=str(tmp_path), CONSENTRY_LOG_LEVEL="WARNING")
    subprocess.run([*CLI, "migrate", "--noinput", "-v0"], env=env, check=True, timeout=120)
    return env


def _run(args, env, check=True):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=check)


def test_practice_create_prints_id_and_api_key_as_json(env):
    result = _run(
        [
            "practice",
            "create",
            "--name",
            "Oak Clinic",
            "--texting-number",
            "+14155550100",
            "--twilio-auth-token",
            "tok",
            "--json",
        ],
        env,
    )
    body = json.loads(result.stdout)
    assert set(body) == {"id", "api_key"} and body["api_key"].startswith("csk_")
    again = _run(
        ["practice", "create", "--name", "Other", "--texting-number", "+14155550100", "--json"], env, check=False
    )
    assert again.returncode != 0 and "texting_number" in again.stderr
    bad = _run(["practice", "create", "--name", "Other", "--texting-number", "12", "--json"], env, check=False)
    assert bad.returncode != 0 and "texting_number" in bad.stderr


def test_a_placeholder_secret_is_refused_outside_debug(env):
    strict = {k: v for k, v in env.items() if k not in ("CONSENTRY_DEMO", "DEBUG", "SECRET_KEY")}
    result = _run(["check"], strict, check=False)
    assert result.returncode != 0
    assert "SECRET_KEY is the placeholder" in result.stderr
    # The worker, which runs only the product's own checks, refuses too.
    worker = _run(["worker", "--batch", "--interval", "0", "--no-startup-delay"], strict, check=False)
    assert worker.returncode != 0
    assert "SECRET_KEY is the placeholder" in worker.stderr
    strict.update(
        SECRET_KEY="x" * 50,
        CONSENTRY_ENCRYPTION_KEYS="kW3xRj8d8n0tYqL2v6gk6H3Jm9uE5pQ1sZcV7bN4aXo=",
        CONSENTRY_PROVIDER="twilio",
    )
    # Without the address patients and Twilio reach it at, it does not start either.
    for command in (["check"], ["worker", "--batch", "--interval", "0", "--no-startup-delay"], ["serve"]):
        refused = _run(command, strict, check=False)
        assert refused.returncode != 0 and "CONSENTRY_PUBLIC_URL is not set" in refused.stderr, command
    strict["CONSENTRY_PUBLIC_URL"] = "https://msg.oak-clinic.example"
    assert _run(["check"], strict).returncode == 0
    worker = _run(["worker", "--batch", "--interval", "0", "--no-startup-delay"], strict)
    assert worker.returncode == 0 and "DEMO MODE" not in worker.stderr


def test_production_does_not_start_while_anything_would_deliver_to_the_sandbox(env):
    strict = {k: v for k, v in env.items() if k not in ("CONSENTRY_DEMO", "DEBUG")}
    strict.update(
        SECRET_KEY="x" * 50,
        CONSENTRY_ENCRYPTION_KEYS="kW3xRj8d8n0tYqL2v6gk6H3Jm9uE5pQ1sZcV7bN4aXo=",
        CONSENTRY_PUBLIC_URL="https://msg.oak-clinic.example",
    )
    for command in (["check"], ["worker", "--batch", "--interval", "0", "--no-startup-delay"]):
        refused = _run(command, strict, check=False)  # the default provider is the sandbox
        assert refused.returncode != 0 and "consentry.E003" in refused.stderr, command


def test_a_demo_process_says_at_start_up_that_nothing_is_secure(env):
    worker = _run(["worker", "--batch", "--interval", "0", "--no-startup-delay"], env)
    assert "DEMO MODE: nothing here is secure" in worker.stderr


def test_serve_is_a_working_service_in_one_process(service):
    status, patient = service.api(
        "POST", "/patients", {"first_name": "Zoe", "phones": [{"number": "+14155550177", "line_type": "mobile"}]}
    )
    assert status == 201
    status, message = service.api(
        "POST",
        "/messages",
        {
            "kind": "manual",
            "category": "document_shared",
            "patient_ids": [patient["id"]],
            "content": {"sms": "Forms to sign: https://example.com/f"},
        },
    )
    assert status == 202
    assert service.settled(message["id"]) == [("sms", "delivered", None)], "the embedded worker did not deliver"
    assert service.outbox("+14155550177") == ["Oak Clinic: Forms to sign: https://example.com/f"]


def test_demo_loads_a_practice_and_prints_a_working_key(env):
    out = _run(["demo"], env).stdout
    assert "Demo API key" in out and "/api/v1/docs" in out
    again = _run(["demo"], env).stdout  # idempotent; a fresh key each time
    assert again.count("Demo API key") == 1
    # The keys made before stay: a key an integrator was given keeps working.
    keys = json.loads(_run(["key", "list", "--practice", "+14155550100", "--json"], env).stdout)
    assert len(keys) == 2 and all(k["revoked_at"] is None and k["scopes"] == ["read", "send", "manage"] for k in keys)


def test_api_keys_are_created_with_scopes_listed_and_revoked_from_the_command_line(env):
    _run(["demo"], env)
    created = json.loads(
        _run(
            ["key", "create", "--practice", "+14155550100", "--label", "Reports", "--scopes", "read", "--json"], env
        ).stdout
    )
    assert created["scopes"] == ["read"] and created["key"].startswith("csk_")
    listed = _run(["key", "list", "--practice", "+14155550100"], env).stdout
    assert f"{created['id']}\tReports\tread\tactive" in listed and created["key"] not in listed
    _run(["key", "revoke", "--practice", "+14155550100", str(created["id"])], env)
    assert f"{created['id']}\tReports\tread\trevoked" in _run(["key", "list", "--practice", "+14155550100"], env).stdout
    refused = _run(["key", "create", "--practice", "+14155550100", "--scopes", "admin"], env, check=False)
    assert refused.returncode != 0 and "unknown scope" in refused.stderr


def test_practice_create_takes_a_send_window_and_refuses_a_bad_one(env):
    ok = _run(
        [
            "practice",
            "create",
            "--name",
            "Night Clinic",
            "--texting-number",
            "+14155550177",
            "--send-window",
            "07:30-20:00",
            "--json",
        ],
        env,
    )
    assert json.loads(ok.stdout)["api_key"]
    bad = _run(
        ["practice", "create", "--name", "X", "--texting-number", "+14155550178", "--send-window", "late", "--json"],
        env,
        check=False,
    )
    assert bad.returncode != 0 and "send_window" in bad.stderr
    # Nothing was created for the refused one: the number is still free.
    again = _run(["practice", "create", "--name", "X", "--texting-number", "+14155550178", "--json"], env)
    assert json.loads(again.stdout)["id"]


def test_serve_serves_the_sandbox_page_and_its_assets(service):
    from tests.e2e.conftest import http

    status, html = http("GET", f"{service.base}/sandbox/")
    assert status == 200 and 'action="/sandbox/reply"' in html and "Oak Clinic" in html
    for asset in ("/static/sandbox/sandbox.css", "/static/django_htmx/htmx-2.min.js"):
        assert http("GET", service.base + asset)[0] == 200, asset


def test_serve_refuses_a_port_that_is_not_a_port(env):
    for port in ("99999", "-1", "http"):
        result = _run(["serve", "--port", port], env, check=False)
        assert result.returncode == 2, result
        assert "--port" in result.stderr and "Traceback" not in result.stderr
    assert "1 to 65535" in _run(["serve", "--port", "99999"], env, check=False).stderr


def test_serve_on_a_port_in_use_says_which_and_how_to_choose_another(env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(["serve", "--port", str(port)], env, check=False)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use: choose another with --port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_port_0_prints_the_real_port_and_links_follow_the_address_served(env):
    """In a demo without CONSENTRY_PUBLIC_URL, the links a patient gets lead to the address served."""
    assert "CONSENTRY_PUBLIC_URL" not in env
    key = json.loads(
        _run(["practice", "create", "--name", "Oak", "--texting-number", "+14155550100", "--json"], env).stdout
    )["api_key"]
    server = subprocess.Popen(
        [*CLI, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = server.stdout.readline()
        found = re.search(r"Consentry on (http://127\.0\.0\.1:(\d+))/", line)
        assert found and found.group(2) != "0", line
        base = found.group(1)
        wait_healthy(base, server)
        status, patient = _api(base, key, "POST", "/patients", {"first_name": "Zoe"})
        assert status == 201
        status, link = _api(base, key, "POST", f"/patients/{patient['id']}/portal-link", {})
        assert status == 201 and link["url"].startswith(f"{base}/"), link
    finally:
        server.terminate()
        server.wait(timeout=10)


def _api(base, key, method, path, body):
    return http(method, f"{base}/api/v1{path}", json_body=body, headers={"Authorization": f"Bearer {key}"})
