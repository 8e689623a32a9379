"""`consentry practice create|update`: every setting from the command line, checked before anything is written."""

import json
from datetime import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from consentry.patients.models import Practice

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
