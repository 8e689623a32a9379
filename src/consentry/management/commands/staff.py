"""`consentry staff create|list`: give a person a role at a practice from the command line."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from consentry.accounts.models import Membership
from consentry.accounts.services import create_staff
from consentry.errors import InvalidInput
from consentry.vocabulary import Role

from .practice import _find


class Command(BaseCommand):
    help = "Manage a practice's staff users."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser(
            "create",
            help="Give an email address a role at a practice (creating the user). Without --password-stdin, "
            "prints a one-time link to choose a password.",
        )
        create.add_argument("--practice", required=True, help="The practice's id or texting number.")
        create.add_argument("--email", required=True, help="The address they sign in with.")
        create.add_argument(
            "--role", required=True, choices=[r.value for r in Role], help="front_desk, or admin (also Settings)."
        )
        create.add_argument("--name", default="", help="The person's name, as shown beside their changes.")
        create.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input (one line)."
        )
        create.add_argument("--json", action="store_true", help='Print {"user_id", "email", "role", ...} as JSON.')
        listing = sub.add_parser("list", help="The practice's staff users and their roles.")
        listing.add_argument("--practice", required=True, help="The practice's id or texting number.")
        listing.add_argument("--json", action="store_true", help="Print the users as a JSON list.")

    def handle(self, *args, action, **options):
        practice = _find(options["practice"])
        if action == "list":
            return self._list(practice, options["json"])
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: no password on standard input")
        try:
            account = create_staff(
                practice=practice, email=options["email"], role=options["role"], password=password, name=options["name"]
            )
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            out = {
                "user_id": account.user.pk,
                "email": account.user.email,
                "practice_id": str(practice.pk),
                "role": account.membership.role,
                "created": account.created,
                "set_password_url": account.set_password_url or None,
            }
            self.stdout.write(json.dumps(out))
            return
        verb = "Created" if account.created else "Updated"
        lines = [f"{verb} {account.user.email}: {account.membership.get_role_display()} at {practice.name}"]
        if account.set_password_url:
            lines.append(f"Set-password link (works once, for 24 hours): {account.set_password_url}")
        self.stdout.write("\n".join(lines))

    def _list(self, practice, as_json: bool) -> None:
        rows = Membership.objects.filter(practice=practice).select_related("user").order_by("user__username")
        if as_json:
            self.stdout.write(json.dumps([{"user_id": m.user_id, "email": m.user.email, "role": m.role} for m in rows]))
            return
        for m in rows:
            self.stdout.write(f"{m.user.email}\t{m.role}")
