"""Races and kills at full size: tests/e2e/test_races_and_kills.py with a 20,000-recipient broadcast.

Four workers drain the broadcast through Twilio's API on loopback while STOPs
arrive from random recipients, then the web process and the workers are
killed with SIGKILL over several rounds. Prints the counts (sends after
opt-out, duplicates, lost STOPs, stuck deliveries: all must be 0). Needs
PostgreSQL (scripts/postgres.sh starts a throwaway server).

    .venv/bin/python bench/races.py [--recipients 20000] [--stops 500] [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--stops", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    url = subprocess.run([ROOT / "scripts" / "postgres.sh"], capture_output=True, text=True, check=True).stdout.strip()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CONSENTRY_RACE_RECIPIENTS": str(args.recipients),
        "CONSENTRY_RACE_STOPS": str(args.stops),
        "CONSENTRY_KILL_ROUNDS": str(args.rounds),
    }
    return subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/e2e/test_races_and_kills.py"],
        cwd=ROOT,
        env=env,
    )


if __name__ == "__main__":
    sys.exit(main())
