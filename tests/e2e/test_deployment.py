"""The documented production configuration, run for real: behind a TLS proxy, with the headers a
medical product's pages need (HSTS, Content-Security-Policy, no caching of a patient's pages)."""

from __future__ import annotations

import http.client
import os
import subprocess
import urllib.parse

import pytest

from tests.e2e.conftest import CLI, cli, free_port, start_service, wait_healthy

pytestmark = pytest.mark.e2e

PUBLIC = "https://messages.example.org"


@pytest.fixture(scope="module")
def production_env(service_env):
    """README's production settings (an https public URL, real secrets, a real provider), no demo."""
    env = {k: v for k, v in service_env.items() if k not in ("CONSENTRY_DEMO", "DEBUG")}
    env.update(
        SECRET_KEY="k" * 20 + "Zq9-x7Lm2Pw8Rt4Yv6Bn1Hc3Jd5Kf0Gs",
        CONSENTRY_PROVIDER="twilio",
        CONSENTRY_ENCRYPTION_KEYS="kW3xRj8d8n0tYqL2v6gk6H3Jm9uE5pQ1sZcV7bN4aXo=",
        CONSENTRY_PUBLIC_URL=PUBLIC,
        ALLOWED_HOSTS="messages.example.org,127.0.0.1",
    )
    return env


def _get(base: str, path: str, **headers) -> http.client.HTTPResponse:
    """One request, redirects not followed."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_django_deploy_checks_pass_with_no_warning(production_env):
    result = cli(["check", "--deploy", "--fail-level", "WARNING"], production_env, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.fixture(scope="module")
def production(production_env):
    service, server = start_service(production_env)
    yield service
    server.terminate()
    server.wait(timeout=10)


def test_behind_the_tls_proxy_pages_carry_hsts_and_plain_http_is_redirected(production):
    plain = _get(production.base, "/", Host="messages.example.org")
    assert plain.status == 301 and plain.getheader("Location") == f"{PUBLIC}/"
    proxied = _get(production.base, "/", Host="messages.example.org", **{"X-Forwarded-Proto": "https"})
    assert proxied.status == 200
    assert proxied.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    # A probe on loopback reaches the health check without TLS.
    assert _get(production.base, "/healthz").status == 200


def test_the_sandbox_is_not_there_in_production(production):
    for path in ("/sandbox/", "/sandbox/outbox"):
        assert _get(production.base, path, **{"X-Forwarded-Proto": "https"}).status == 404, path


@pytest.mark.parametrize("path", ["/email/unsubscribe/abc", "/email/resubscribe/abc", "/portal/abc"])
def test_patient_pages_are_never_cached_and_carry_a_content_security_policy(production, path):
    response = _get(production.base, path, **{"X-Forwarded-Proto": "https"})
    assert response.status in (400, 404)  # a made-up token: the page that says so
    assert "no-store" in response.getheader("Cache-Control")
    policy = response.getheader("Content-Security-Policy")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def test_x_forwarded_proto_from_anyone_but_the_trusted_proxy_is_ignored(production_env):
    env = {**production_env, "CONSENTRY_TRUSTED_PROXY": "192.0.2.10"}  # the proxy is elsewhere, not us
    port = free_port()
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        spoofed = _get(base, "/", Host="messages.example.org", **{"X-Forwarded-Proto": "https"})
        assert spoofed.status == 301 and spoofed.getheader("Strict-Transport-Security") is None
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_generated_env_file_is_a_production_configuration_that_passes_the_deploy_checks(tmp_path):
    """`consentry env` gives fresh secrets every time, and what it writes is enough to start on."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONSENTRY_", "DATABASE_URL", "SECRET_KEY"))}
    base.pop("DEBUG", None)
    made = [
        cli(["env", "--public-url", "https://msg.maple.example", "--database-url", f"sqlite:///{tmp_path}/c.db"], base)
        for _ in range(2)
    ]
    first, second = (_parse_env(m.stdout) for m in made)
    assert first["SECRET_KEY"] != second["SECRET_KEY"]
    assert first["CONSENTRY_ENCRYPTION_KEYS"] != second["CONSENTRY_ENCRYPTION_KEYS"]
    assert first["ALLOWED_HOSTS"] == "msg.maple.example"
    result = cli(["check", "--deploy", "--fail-level", "WARNING"], {**base, **first}, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    refused = cli(["env", "--public-url", "http://msg.maple.example"], base, check=False)
    assert refused.returncode == 1 and "https://" in refused.stderr and "Traceback" not in refused.stderr


def _parse_env(text: str) -> dict:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)
