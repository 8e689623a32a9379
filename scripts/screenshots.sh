#!/usr/bin/env bash
# Save a screenshot of each main screen of the staff app under docs/screenshots/, by driving the demo
# of `make run` in Chromium (the same browser test that checks every screen: tests/e2e/test_demo_in_chromium.py).
set -euo pipefail
cd "$(dirname "$0")/.."
CONSENTRY_SCREENSHOTS="$PWD/docs/screenshots" .venv/bin/pytest tests/e2e/test_demo_in_chromium.py -q \
  -k every_screen
ls docs/screenshots
