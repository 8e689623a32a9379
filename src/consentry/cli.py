"""The ``consentry`` command: Django's management commands under the product's name."""

import os
import sys


def refused_argument(argv: list[str]) -> str | None:
    """Why an argument cannot be taken (bytes that are not UTF-8, NUL), naming its option; or None."""
    from consentry.text import problem

    for index, arg in enumerate(argv):
        if why := problem(arg):
            if arg.startswith("--") and "=" in arg:
                name = arg.split("=", 1)[0]
            elif index and argv[index - 1].startswith("-"):
                name = argv[index - 1]
            else:
                name = f"argument {index + 1}"
            return f"{name} {why}"
    return None


# Django's commands an operator needs; the rest (makemigrations, runserver...) are for development.
OPERATOR_COMMANDS = ("migrate", "check", "createsuperuser", "changepassword", "dbshell", "shell")


def product_help() -> str:
    """``consentry --help``: Consentry's own commands, one line each, then the few of Django's an
    operator uses; ``consentry help --all`` lists everything."""
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    ours = sorted(name for name, app in get_commands().items() if app == "consentry")
    width = max(len(name) for name in (*ours, *OPERATOR_COMMANDS)) + 2
    lines = ["Usage: consentry COMMAND [options]   (consentry COMMAND --help: its options)", "", "Commands:"]
    for name in ours:
        summary = load_command_class("consentry", name).help.split("\n")[0]
        lines.append(f"  {name:<{width}}{summary}")
    lines += ["", "Django's commands for operators:"]
    for name in OPERATOR_COMMANDS:
        summary = load_command_class(get_commands()[name], name).help.split("\n")[0]
        lines.append(f"  {name:<{width}}{summary}")
    lines += ["", "consentry help --all lists every command, development ones included."]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = sys.argv[1:]
    if refused := refused_argument(args):
        sys.stderr.write(f"consentry: error: {refused}\n")
        sys.exit(2)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    if args in ([], ["help"], ["-h"], ["--help"]):
        sys.stdout.write(product_help())
        return
    if args == ["help", "--all"]:
        args = ["help"]
    from django.core.management import execute_from_command_line

    execute_from_command_line(["consentry", *args])


if __name__ == "__main__":
    main()
