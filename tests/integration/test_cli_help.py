"""The command line is the product's: `consentry --help` lists Consentry's commands with a line each
(Django's development commands are left to `consentry help --all`), and every option of every
Consentry command says what it is for."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command, get_commands, load_command_class

CLI = [sys.executable, "-m", "consentry.cli"]


def _ours() -> list[str]:
    return sorted(name for name, app in get_commands().items() if app == "consentry")


def test_help_lists_consentrys_commands_one_line_each_and_hides_djangos_development_ones():
    done = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in [*_ours(), "migrate"]:
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        assert len(line.split()) > 2, f"{name} has no summary"
    for development in ("makemigrations", "runserver", "squashmigrations", "startapp", "test"):
        assert not any(line.split()[:1] == [development] for line in lines), development
    everything = subprocess.run([*CLI, "help", "--all"], capture_output=True, text=True, timeout=60, env=_env())
    assert everything.returncode == 0 and "makemigrations" in everything.stdout


def _env() -> dict:
    import os

    return {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "CONSENTRY_DEMO": "1"}


def _unexplained(parser: argparse.ArgumentParser, where: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not described.get(name):
                    missing.append(f"{where} {name}")
                missing += _unexplained(sub, f"{where} {name}")
        elif not action.help and action.dest != "help":
            missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_consentry_command_has_help():
    missing = []
    for name in _ours():
        command = load_command_class("consentry", name)
        assert command.help, f"{name} has no help"
        missing += _unexplained(command.create_parser("consentry", name), name)
    assert not missing, f"options without help: {missing}"


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "+1415"])
def test_audit_names_a_practice_that_is_not_there_instead_of_failing(ref):
    # A CommandError is what the command line prints as one line, with no traceback.
    for action in (["verify"], ["export"]):
        with pytest.raises(CommandError, match="no practice"):
            call_command("audit", *action, "--practice", ref)
