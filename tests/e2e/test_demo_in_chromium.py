"""The demo of `make run`, as a new user meets it: sign in with the printed credentials and open every
screen of the staff app; each shows the demo's states and passes axe-core.

With CONSENTRY_SCREENSHOTS set to a directory, each screen is also saved there as a PNG
(`scripts/screenshots.sh` does this for docs/screenshots/).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CLI, axe_clean, browser_sign_in, cli, free_port, wait_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def demo(service_env):
    port = free_port()
    printed = cli(["demo", "--port", str(port)], service_env).stdout
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env={"CONSENTRY_PUBLIC_URL": base, **service_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_healthy(base, server)
    yield base, printed
    server.terminate()
    server.wait(timeout=10)


def shoot(page, name: str) -> None:
    folder = os.environ.get("CONSENTRY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def credentials(printed: str, role: str) -> tuple[str, str]:
    match = re.search(rf"^\s+{role}\s+(\S+)\s+password: (\S+)$", printed, re.M)
    assert match, printed
    return match.group(1), match.group(2)


def test_the_demo_opens_on_sign_in_and_every_screen_shows_its_states(demo, page):
    base, printed = demo
    email, password = credentials(printed, "admin")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Sign in to Consentry")).to_be_visible()
    shoot(page, "01-sign-in")
    browser_sign_in(page, base, email, password)

    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("region", name="Replies waiting")).to_contain_text("1")
    axe_clean(page, "the demo's dashboard")
    shoot(page, "02-dashboard")

    page.get_by_role("link", name="Patients").click()
    listing = page.locator("#patient-rows")
    for title in ("Opted out of texts", "Landline: calls only", "Blocked for recall", "Email bounced",
                  "Unsubscribed from email", "Not a valid number"):  # fmt: skip
        expect(listing.get_by_role("img", name=title).first).to_be_visible()
    axe_clean(page, "the demo's patient list")
    shoot(page, "03-patients")

    page.get_by_role("link", name="Schmidt, Eli").click()
    page.get_by_role("button", name="Opted out of texts: what happened and what to do").click()
    expect(page.get_by_role("dialog", name="Opted out of texts")).to_contain_text("+14155550100")
    axe_clean(page, "the demo's facesheet")
    shoot(page, "04-facesheet")

    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_role("button", name=re.compile("Confirm opt-out")).first).to_be_visible()
    expect(page.get_by_text("Opted out of texts").first).to_be_visible()
    axe_clean(page, "the demo's inbox")
    shoot(page, "05-inbox")

    page.get_by_role("link", name="Broadcasts").click()
    page.get_by_role("link", name=re.compile(r"\w{3} \d+, \d{4}")).first.click()
    expect(page.get_by_role("status").first).to_contain_text("Finished", timeout=30_000)
    expect(page.get_by_role("region", name="Not sent, by reason")).to_contain_text("email unsubscribed")
    axe_clean(page, "the demo's broadcast report")
    shoot(page, "06-broadcast-report")

    page.get_by_role("link", name="Recalls").click()
    expect(page.locator("body")).to_contain_text("Hana")
    axe_clean(page, "the demo's recalls")
    shoot(page, "07-recalls")

    page.get_by_role("link", name="Blocked Communications").click()
    expect(page.locator("body")).to_contain_text("+14155550155")
    axe_clean(page, "the demo's blocked communications")
    shoot(page, "08-blocked")

    page.get_by_role("link", name="Audit").click()
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.get_by_role("status").first).to_contain_text("Chain intact")
    axe_clean(page, "the demo's audit")
    shoot(page, "09-audit")

    page.get_by_role("link", name="Settings").click()
    axe_clean(page, "the demo's settings")
    shoot(page, "10-settings")


def test_the_demo_front_desk_user_signs_in_and_has_no_settings(demo, page):
    base, printed = demo
    email, password = credentials(printed, "front desk")
    browser_sign_in(page, base, email, password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_have_count(0)
