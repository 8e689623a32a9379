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


def main() -> None:
    if refused := refused_argument(sys.argv[1:]):
        sys.stderr.write(f"consentry: error: {refused}\n")
        sys.exit(2)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["consentry", *sys.argv[1:]])


if __name__ == "__main__":
    main()
