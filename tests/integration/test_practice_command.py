"""`consentry practice create|update`: every setting from the command line, checked before anything is written."""

import json
from datetime import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from consentry.patients.models import Practice
from tests.conftest import send_sms_webhook

pytestmark = pytest.mark.django_db


def _create(*args) -> Practice:
    out = StringIO()
    call_command(
        "practice", "create", "--name", "Oak Clinic", "--texting-number", "(415) 555-0100", "--json", *args, stdout=out
    )
    return Practice.objects.get(pk=json.loads(out.getvalue())["id"])


def test_create_takes_the_policy_languages_rates_and_quiet_hours():
    practice = _create(
        "--reasonable-means",
        "auto",
        "--keyword-languages",
        "es",
        "--sms-rate",
        "30",
        "--email-rate",
        "10",
        "--send-window",
        "09:00-20:00",
        "--keyword-mode",
        "provider",
    )
    assert (practice.texting_number, practice.reasonable_means, practice.keyword_languages) == (
        "+14155550100",
        "auto",
        ["es"],
    )
    assert (practice.sms_rate_per_second, practice.email_rate_per_second) == (30, 10)
    assert (practice.send_window_start, practice.send_window_end) == (time(9), time(20))
    assert practice.keyword_mode == "provider"


def test_defaults_are_flag_english_and_the_providers_rate():
    practice = _create()
    assert (practice.reasonable_means, practice.keyword_languages, practice.sms_rate_per_second) == ("flag", [], None)


def test_update_changes_only_what_it_is_given_by_id_or_number():
    practice = _create("--sms-rate", "5")
    call_command("practice", "update", "+1 415 555 0100", "--reasonable-means", "auto", stdout=StringIO())
    practice.refresh_from_db()
    assert (practice.reasonable_means, practice.sms_rate_per_second) == ("auto", 5)
    call_command("practice", "update", str(practice.pk), "--name", "Oak & Elm Clinic", stdout=StringIO())
    practice.refresh_from_db()
    assert practice.name == "Oak & Elm Clinic" and practice.reasonable_means == "auto"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--keyword-languages", "fr"], "unsupported: fr"),
        (["--sms-rate", "0"], "sms_rate_per_second"),
        (["--send-window", "8-21"], "HH:MM-HH:MM"),
        (["--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--twilio-auth-token", "not a token"], "twilio_auth_token"),
        (["--twilio-account-sid", "AC12"], "twilio_account_sid"),
        ([], "nothing to change"),
    ],
)
def test_a_bad_update_is_refused_and_changes_nothing(args, words):
    practice = _create()
    with pytest.raises(CommandError, match=words):
        call_command(
            "practice", "update", str(practice.pk), "--reasonable-means", "auto", *args, stdout=StringIO()
        ) if args else call_command("practice", "update", str(practice.pk), stdout=StringIO())
    practice.refresh_from_db()
    assert practice.reasonable_means == "flag"


def test_an_unknown_practice_is_named():
    with pytest.raises(CommandError, match="no practice"):
        call_command("practice", "update", "not-a-practice", "--reasonable-means", "auto")


@pytest.mark.parametrize(
    "number, zone",
    [
        ("(415) 555-0100", "America/Los_Angeles"),
        ("(512) 555-0100", "America/Chicago"),
        ("(808) 555-0100", "Pacific/Honolulu"),
    ]
    + [("(800) 555-0100", "America/New_York")],  # a toll-free number says nothing: the default
)
def test_a_new_practice_takes_the_time_zone_of_its_numbers_area_code(number, zone):
    out = StringIO()
    call_command("practice", "create", "--name", "Oak Clinic", "--texting-number", number, stdout=out)
    assert Practice.objects.get().timezone == zone and f"time zone {zone}" in out.getvalue()
    assert _create_elsewhere("--timezone", "America/Denver").timezone == "America/Denver"  # unless told


def _create_elsewhere(*args) -> Practice:
    out = StringIO()
    call_command("practice", "create", "--name", "Elm", "--texting-number", "+12125550100", "--json", *args, stdout=out)
    return Practice.objects.get(pk=json.loads(out.getvalue())["id"])


def test_without_an_email_from_a_practice_sends_from_its_public_domain_and_the_checks_say_so(settings):
    settings.CONSENTRY_PUBLIC_URL = "https://msg.oak-clinic.example"
    settings.DEMO_MODE = settings.DEBUG = False
    practice = _create()
    assert practice.email_from == "" and practice.email_sender == "Oak Clinic <noreply@msg.oak-clinic.example>"
    from django.core.checks import run_checks

    (warning,) = [m for m in run_checks(tags=["consentry"]) if m.id == "consentry.W002"]
    assert "Oak Clinic" in warning.msg and "noreply@msg.oak-clinic.example" in warning.msg
    call_command("practice", "update", str(practice.pk), "--email-from", "Oak <desk@oak.example>", stdout=StringIO())
    assert not [m for m in run_checks(tags=["consentry"]) if m.id == "consentry.W002"]


def test_update_sets_the_twilio_credentials_the_webhooks_are_checked_against(client):
    practice = _create("--twilio-auth-token", "e" * 32)
    token, sid = "f" * 32, "AC" + "0" * 32
    call_command("practice", "update", str(practice.pk), "--twilio-auth-token", token, "--twilio-account-sid", sid)
    practice.refresh_from_db()
    assert (practice.twilio_auth_token, practice.twilio_account_sid) == (token, sid)
    old = send_sms_webhook(client, body="hello", sender="+14155550111", token="e" * 32)
    assert old.status_code == 403
    assert send_sms_webhook(client, body="hello", sender="+14155550111", token=token).status_code == 200
