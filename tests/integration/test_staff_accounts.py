"""Staff accounts: sign-in, lockout, CSRF, idle sessions, set-password links, roles, practices, the admin."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from consentry.accounts.models import Membership
from consentry.providers.models import SandboxMessage
from tests.conftest import STAFF_PASSWORD, make_practice, make_staff, signed_in

pytestmark = pytest.mark.django_db


def local_path(link: str) -> str:
    """The path of a link in an email, for the test client."""
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


def sign_in(client, email, password):
    return client.post("/account/sign-in", {"username": email, "password": password})


def test_a_visitor_gets_the_sign_in_page_at_the_root_and_a_json_client_gets_the_api(practice):
    page = Client().get("/")
    assert page.status_code == 200 and b"Sign in to Consentry" in page.content
    assert "no-store" in page["Cache-Control"]
    index = Client().get("/", HTTP_ACCEPT="application/json").json()
    assert index["api"] == "/api/v1/"


def test_staff_sign_in_with_their_email_in_any_case_and_land_on_the_dashboard(practice):
    make_staff(practice, email="dana@oak.example")
    client = Client()
    answer = sign_in(client, "  Dana@Oak.Example ", STAFF_PASSWORD)
    assert answer.status_code == 302 and answer["Location"] == "/"
    dashboard = client.get("/")
    assert b"Dashboard" in dashboard.content and b"Oak Clinic" in dashboard.content
    assert b"Dana Desk" in dashboard.content
    assert "no-store" in dashboard["Cache-Control"]


def test_passwords_are_hashed_with_argon2(practice):
    user = make_staff(practice)
    assert user.password.startswith("argon2$")
    assert STAFF_PASSWORD not in user.password


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(practice):
    make_staff(practice, email="dana@oak.example")
    for email, password in [("dana@oak.example", "wrong-password-123"), ("nobody@oak.example", STAFF_PASSWORD)]:
        page = sign_in(Client(), email, password)
        assert page.status_code == 200
        assert b"enter a correct" in page.content.lower()
        assert "_auth_user_id" not in Client().session


def test_sign_in_locks_after_five_failures_for_that_account_in_any_case(practice, settings):
    make_staff(practice, email="dana@oak.example")
    make_staff(practice, email="lee@oak.example")
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        email = "dana@oak.example" if attempt % 2 else "DANA@oak.example"
        # The fifth failure locks the account, and says so.
        expected = 429 if attempt == settings.AXES_FAILURE_LIMIT else 200
        assert sign_in(Client(), email, f"wrong-{attempt}-password").status_code == expected
    # Locked now: even the right password is refused, with the lockout page.
    locked = sign_in(Client(), "dana@oak.example", STAFF_PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in locked.client.session
    # Another account is not locked by it.
    assert sign_in(Client(), "lee@oak.example", STAFF_PASSWORD).status_code == 302
    # After the cool-off, the right password works again.
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert sign_in(Client(), "dana@oak.example", STAFF_PASSWORD).status_code == 302


def test_the_sign_in_form_and_every_staff_form_need_the_csrf_token(practice):
    user = make_staff(practice, email="dana@oak.example")
    client = Client(enforce_csrf_checks=True)
    assert client.post("/account/sign-in", {"username": user.email, "password": STAFF_PASSWORD}).status_code == 403
    client = signed_in(user, Client(enforce_csrf_checks=True))
    assert client.post("/account/sign-out").status_code == 403
    assert client.post("/account/practice", {"practice": str(practice.pk)}).status_code == 403
    # With the token from the page, the same post works.
    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post("/account/sign-out", {"csrfmiddlewaretoken": token}).status_code == 302
    assert b"Sign in to Consentry" in client.get("/").content


def test_a_session_ends_after_fifteen_idle_minutes_and_page_refreshes_do_not_keep_it(practice, settings):
    user = make_staff(practice)
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert sign_in(client, user.email, STAFF_PASSWORD).status_code == 302
    # Working keeps it alive...
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert b"Dashboard" in client.get("/").content
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        assert b"Dashboard" in client.get("/").content
    # ...a page's own refreshes do not.
    with time_machine.travel(start + timedelta(minutes=30), tick=False):
        assert b"Dashboard" in client.get("/", HTTP_X_CONSENTRY_REFRESH="1").content
    with time_machine.travel(start + timedelta(minutes=36), tick=False):
        assert b"Sign in to Consentry" in client.get("/").content
    assert settings.SESSION_COOKIE_AGE == 15 * 60 and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    assert settings.SESSION_COOKIE_HTTPONLY


def test_staff_create_with_a_password_from_stdin_prints_json(practice, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("another-long-passphrase\n"))
    out = io.StringIO()
    call_command(
        "staff", "create", "--practice", str(practice.pk), "--email", "Ann@Oak.example", "--role", "admin",
        "--name", "Ann Admin", "--password-stdin", "--json", stdout=out,
    )  # fmt: skip
    created = json.loads(out.getvalue())
    assert created["email"] == "ann@oak.example" and created["role"] == "admin" and created["created"] is True
    assert created["set_password_url"] is None
    assert sign_in(Client(), "ann@oak.example", "another-long-passphrase").status_code == 302
    assert Membership.objects.get(user_id=created["user_id"], practice=practice).role == "admin"


def test_staff_create_refuses_a_weak_password_and_a_bad_role_and_changes_nothing(practice, monkeypatch):
    from django.core.management.base import CommandError

    monkeypatch.setattr("sys.stdin", io.StringIO("12345678\n"))
    with pytest.raises(CommandError, match="password"):
        call_command(
            "staff", "create", "--practice", str(practice.pk), "--email", "a@oak.example", "--role", "admin",
            "--password-stdin",
        )  # fmt: skip
    with pytest.raises(CommandError):
        call_command("staff", "create", "--practice", str(practice.pk), "--email", "a@oak.example", "--role", "owner")
    with pytest.raises(CommandError, match="email"):
        call_command("staff", "create", "--practice", str(practice.pk), "--email", "not-an-email", "--role", "admin")
    assert not get_user_model().objects.exists()


def test_staff_create_without_a_password_prints_a_one_time_set_password_link(practice):
    out = io.StringIO()
    call_command(
        "staff", "create", "--practice", str(practice.pk), "--email", "lee@oak.example", "--role", "front_desk",
        "--json", stdout=out,
    )  # fmt: skip
    link = json.loads(out.getvalue())["set_password_url"]
    path = local_path(link)
    client = Client()
    # Nobody can sign in before the password is chosen.
    assert sign_in(Client(), "lee@oak.example", "").status_code == 200
    form_page = client.get(path, follow=True)
    assert b"Choose your password" in form_page.content and b"new_password1" in form_page.content
    form_url = form_page.redirect_chain[-1][0]
    weak = client.post(form_url, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 200 and b"too short" in weak.content
    done = client.post(form_url, {"new_password1": "lees-own-passphrase", "new_password2": "lees-own-passphrase"})
    assert done.status_code == 302
    assert sign_in(Client(), "lee@oak.example", "lees-own-passphrase").status_code == 302
    # The link worked once.
    again = Client().get(path, follow=True)
    assert b"has been used or has expired" in again.content


def test_a_password_reset_link_goes_out_through_the_practice_email_provider(practice):
    make_staff(practice, email="dana@oak.example")
    page = Client().post("/account/reset", {"email": "Dana@oak.example"})
    assert b"Check your email" in page.content
    [mail] = SandboxMessage.objects.filter(channel="email", to="dana@oak.example")
    assert mail.subject == "Reset your Consentry password"
    link = re.search(r"https?://\S+/account/set-password/\S+", mail.body).group(0)
    client = Client()
    form = client.get(local_path(link), follow=True)
    assert b"new_password1" in form.content
    # An address with no account gets the same answer, and nothing is sent.
    page = Client().post("/account/reset", {"email": "stranger@oak.example"})
    assert b"Check your email" in page.content
    assert SandboxMessage.objects.count() == 1


def test_an_existing_user_keeps_their_password_when_given_another_practice(practice):
    other = make_practice(name="Elm Clinic", number="+14155550101")[0]
    user = make_staff(practice, email="dana@oak.example")
    from consentry.accounts.services import create_staff
    from consentry.errors import InvalidInput

    with pytest.raises(InvalidInput, match="keep their own password"):
        create_staff(practice=other, email="dana@oak.example", role="admin", password="a-new-passphrase-1")
    account = create_staff(practice=other, email="dana@oak.example", role="admin")
    assert account.user.pk == user.pk and not account.created and account.set_password_url == ""
    assert sign_in(Client(), "dana@oak.example", STAFF_PASSWORD).status_code == 302


def test_a_user_of_two_practices_switches_between_them_and_never_into_a_third(practice):
    elm = make_practice(name="Elm Clinic", number="+14155550101")[0]
    pine = make_practice(name="Pine Clinic", number="+14155550102")[0]
    user = make_staff(practice, email="dana@oak.example")
    make_staff(elm, email="dana@oak.example", role="admin")
    client = signed_in(user)
    page = client.get("/").content.decode()
    assert 'id="practice-switch"' in page and "Elm Clinic" in page and "Pine Clinic" not in page
    client.post("/account/practice", {"practice": str(elm.pk)})
    page = client.get("/").content.decode()
    assert re.search(rf'value="{elm.pk}" selected', page) and "Admin" in page
    client.post("/account/practice", {"practice": str(pine.pk)})  # not theirs: ignored
    assert re.search(rf'value="{elm.pk}" selected', client.get("/").content.decode())


def test_a_user_of_no_practice_is_told_so(practice):
    user = get_user_model().objects.create_user("loner@oak.example", "loner@oak.example", STAFF_PASSWORD)
    page = signed_in(user).get("/")
    assert page.status_code == 403 and b"not part of any practice" in page.content


def test_the_django_admin_is_for_superusers_only_and_the_ledger_is_read_only_there(practice):
    from consentry.consent import services as consent
    from consentry.consent.models import ConsentEvent

    consent.record_sms_opt_out(practice=practice, number="+14155550111", source="api", actor="test")
    event = ConsentEvent.objects.get()
    staff_user = make_staff(practice, role="admin")
    staff_user.is_staff = True  # even Django's own staff flag does not open it
    staff_user.save()
    assert signed_in(staff_user).get("/admin/").status_code == 302
    operator = get_user_model().objects.create_superuser("ops@example.org", "ops@example.org", STAFF_PASSWORD)
    client = signed_in(operator)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/consent/consentevent/").status_code == 200
    view = client.get(f"/admin/consent/consentevent/{event.pk}/change/")
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert client.get("/admin/consent/consentevent/add/").status_code == 403
    assert client.post(f"/admin/consent/consentevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ConsentEvent.objects.filter(pk=event.pk).exists()


def test_reset_emails_go_at_most_once_every_ten_minutes_whoever_asks(practice):
    make_staff(practice, email="dana@oak.example")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(5):
            assert b"Check your email" in Client().post("/account/reset", {"email": "dana@oak.example"}).content
    assert SandboxMessage.objects.filter(to="dana@oak.example").count() == 1
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        Client().post("/account/reset", {"email": "dana@oak.example"})
    assert SandboxMessage.objects.filter(to="dana@oak.example").count() == 2
