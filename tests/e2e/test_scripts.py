"""The scripts `make test` runs: the PostgreSQL server the suite starts is stopped after it (and one
it found running is left alone), and installing a package waits for another package manager instead
of failing at once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _fake_apt_get(tmp_path: Path, locked_calls: int, failure: str) -> Path:
    """An apt-get that fails ``locked_calls`` times with ``failure``, then works; it logs each call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {tmp_path}/calls\n'
        f"n=$(wc -l < {tmp_path}/calls)\n"
        f'if [ "$n" -le {locked_calls} ]; then echo "{failure}" >&2; exit 100; fi\n'
    )
    fake.chmod(0o755)
    return bin_dir


def _apt_install(bin_dir: Path):
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CONSENTRY_APT_WAIT": "60"}
    return subprocess.run([SCRIPTS / "apt-install.sh", "chromium"], env=env, capture_output=True, text=True, timeout=90)


def test_installing_waits_while_another_package_manager_holds_the_lock(tmp_path):
    locked = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)"
    done = _apt_install(_fake_apt_get(tmp_path, 2, locked))
    assert done.returncode == 0, done.stderr
    assert "waiting for another package manager to finish" in done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 4 and calls[-1].endswith("install -y -qq chromium")  # two waits, update, install


def test_installing_fails_at_once_for_anything_but_a_lock(tmp_path):
    done = _apt_install(_fake_apt_get(tmp_path, 99, "E: Unable to locate package chromium"))
    assert done.returncode != 0 and "Unable to locate package" in done.stderr
    assert len((tmp_path / "calls").read_text().splitlines()) == 1


def _postgres(*args: str, owner: str, port: int, data: str):
    env = {**os.environ, "CONSENTRY_PG_OWNER": owner, "CONSENTRY_PG_PORT": str(port), "CONSENTRY_PG_DIR": data}
    return subprocess.run([SCRIPTS / "postgres.sh", *args], env=env, capture_output=True, text=True, timeout=120)


def _running(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def test_the_postgres_server_the_suite_started_is_stopped_and_one_it_found_is_left_alone():
    port = free_port()
    data = f"/tmp/consentry-pg-scripts-test-{port}"
    try:
        started = _postgres(owner="suite-1", port=port, data=data)
        if started.returncode == 3:  # no PostgreSQL and no way to install it; CI requires one, so it fails there
            if os.environ.get("CONSENTRY_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"PostgreSQL is required (CONSENTRY_REQUIRE_POSTGRES=1): {started.stderr.strip()}")
            pytest.skip(
                f"!! NOT RUN: no PostgreSQL on this machine, and none can be installed: {started.stderr.strip()}"
            )
        assert started.returncode == 0 and started.stdout.strip().endswith(f":{port}/consentry"), started.stderr
        assert _running(port)
        # Another run of the suite found it running: its stop leaves it alone.
        assert _postgres(owner="suite-2", port=port, data=data).returncode == 0
        _postgres("stop", owner="suite-2", port=port, data=data)
        assert _running(port)
        # The run that started it stops it.
        assert _postgres("stop", owner="suite-1", port=port, data=data).returncode == 0
        assert not _running(port)
    finally:
        _postgres("stop", owner="suite-1", port=port, data=data)
        shutil.rmtree(data, ignore_errors=True)
        Path(f"{data}.log").unlink(missing_ok=True)
