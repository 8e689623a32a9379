"""`consentry practice create ...`: onboard a practice and print its first API key."""

from __future__ import annotations

import datetime
import json

from django.core.management.base import BaseCommand, CommandError

from consentry.patients.services import InvalidInput, create_practice


def parse_send_window(text: str) -> tuple[datetime.time, datetime.time]:
    try:
        start, end = (datetime.time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise InvalidInput("send_window", f"expected HH:MM-HH:MM, got {text!r}") from None
    return start, end


class Command(BaseCommand):
    help = "Manage practices."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a practice and print its API key once.")
        create.add_argument("--name", required=True)
        create.add_argument("--texting-number", required=True, help="E.164, e.g. +14155550100")
        create.add_argument("--twilio-auth-token", default="")
        create.add_argument("--twilio-account-sid", default="")
        create.add_argument("--timezone", default="America/New_York")
        create.add_argument("--contact-phone", default="")
        create.add_argument("--email-from", default="")
        create.add_argument(
            "--send-window", default="08:00-21:00", metavar="HH:MM-HH:MM",
            help="Local hours for automated messages (quiet hours outside); 00:00-00:00 turns quiet hours off.",
        )
        create.add_argument("--json", action="store_true", help="Print {\"id\", \"api_key\"} as JSON.")

    def handle(self, *args, action, **options):
        try:
            start, end = parse_send_window(options["send_window"])
            practice, key = create_practice(
                name=options["name"],
                texting_number=options["texting_number"],
                twilio_auth_token=options["twilio_auth_token"],
                twilio_account_sid=options["twilio_account_sid"],
                timezone=options["timezone"],
                contact_phone=options["contact_phone"],
                email_from=options["email_from"],
                send_window=(start, end),
            )
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps({"id": str(practice.pk), "api_key": key}))
        else:
            self.stdout.write(f"Practice {practice.name} ({practice.pk})\nAPI key (shown once): {key}")
