"""docs/deployment.md works as written: scripts/deployment-check.sh brings its layout up on loopback
(PostgreSQL, `consentry env`, migrate and the deploy checks, the web process and two workers behind the
proxy's headers, a text handed to Twilio, a STOP, a backup restored and verified, a key rotated)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "deployment-check.sh"


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="!! NOT RUN IN THE POSTGRESQL PASS: the deployment check brings up its own PostgreSQL database, "
    "so it runs once, in make test's SQLite pass (which CI requires too)",
)
def test_the_deployment_guide_brings_up_a_working_service():
    done = subprocess.run([SCRIPT], capture_output=True, text=True, timeout=600)
    if (
        done.returncode != 0
        and "no PostgreSQL here" in done.stderr
        and os.environ.get("CONSENTRY_REQUIRE_POSTGRES") != "1"
    ):
        # Where PostgreSQL is required (CI), a missing server falls through to the assertion and fails.
        pytest.skip(f"!! NOT RUN: no PostgreSQL on this machine, and the deployment check needs one\n{done.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("1. PostgreSQL", "5. Behind the TLS proxy", "6. Backup", "7. Rotating the encryption key"):
        assert f"== {step}" in done.stdout
    assert done.stdout.rstrip().endswith("deployment check: every step of docs/deployment.md works")
