"""`consentry practice create|update ...`: onboard a practice, change its settings."""

from __future__ import annotations

import datetime
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_phone
from consentry.patients.models import Practice
from consentry.patients.practices import create_practice, update_practice


def parse_send_window(text: str) -> tuple[datetime.time, datetime.time]:
    try:
        start, end = (datetime.time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise InvalidInput("send_window", f"expected HH:MM-HH:MM, got {text!r}") from None
    return start, end


def _settings_arguments(parser, *, defaults: bool) -> None:
    """The settings both subcommands take; ``update`` changes only those given."""

    def default(value):
        return value if defaults else None

    parser.add_argument("--timezone", default=default("America/New_York"))
    parser.add_argument("--contact-phone", default=None)
    parser.add_argument("--email-from", default=None)
    parser.add_argument(
        "--send-window",
        default=default("08:00-21:00"),
        metavar="HH:MM-HH:MM",
        help="Local hours for automated messages (quiet hours outside); 00:00-00:00 turns quiet hours off.",
    )
    parser.add_argument(
        "--reasonable-means",
        choices=["flag", "auto"],
        default=None,
        help="Replies that ask to stop without the keyword: flag them for staff (default) "
        "or opt out at once and confirm.",
    )
    parser.add_argument(
        "--keyword-languages",
        default=None,
        metavar="LANG[,LANG]",
        help="Keyword languages besides English, e.g. es.",
    )
    parser.add_argument(
        "--keyword-mode",
        choices=["self", "provider"],
        default=None,
        help="provider: Twilio Advanced Opt-Out sends the confirmations.",
    )
    parser.add_argument(
        "--sms-rate",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="Texts per second from the texting number (a long code takes about 1).",
    )
    parser.add_argument("--email-rate", type=float, default=None, metavar="PER_SECOND")


def _settings(options) -> dict:
    values: dict = {}
    simple = {
        "timezone": "timezone",
        "contact_phone": "contact_phone",
        "email_from": "email_from",
        "reasonable_means": "reasonable_means",
        "keyword_mode": "keyword_mode",
        "sms_rate": "sms_rate_per_second",
        "email_rate": "email_rate_per_second",
    }
    for option, field in simple.items():
        if options.get(option) is not None:
            values[field] = options[option]
    if options.get("send_window") is not None:
        values["send_window"] = parse_send_window(options["send_window"])
    if options.get("keyword_languages") is not None:
        values["keyword_languages"] = [v for v in options["keyword_languages"].split(",") if v.strip()]
    return values


class Command(BaseCommand):
    help = "Manage practices."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a practice and print its API key once.")
        create.add_argument("--name", required=True)
        create.add_argument("--texting-number", required=True, help="E.164, e.g. +14155550100")
        create.add_argument("--twilio-auth-token", default="")
        create.add_argument("--twilio-account-sid", default="")
        _settings_arguments(create, defaults=True)
        create.add_argument("--json", action="store_true", help='Print {"id", "api_key"} as JSON.')
        update = sub.add_parser("update", help="Change the settings given; the others stay as they are.")
        update.add_argument("practice", help="The practice's id or texting number.")
        update.add_argument("--name", default=None)
        _settings_arguments(update, defaults=False)

    def handle(self, *args, action, **options):
        try:
            if action == "create":
                self._create(options)
            else:
                self._update(options)
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, options) -> None:
        practice, key = create_practice(
            name=options["name"],
            texting_number=options["texting_number"],
            twilio_auth_token=options["twilio_auth_token"],
            twilio_account_sid=options["twilio_account_sid"],
            **_settings(options),
        )
        if options["json"]:
            self.stdout.write(json.dumps({"id": str(practice.pk), "api_key": key}))
        else:
            self.stdout.write(f"Practice {practice.name} ({practice.pk})\nAPI key (shown once): {key}")

    def _update(self, options) -> None:
        practice = _find(options["practice"])
        values = _settings(options)
        if options.get("name") is not None:
            values["name"] = options["name"]
        if not values:
            raise CommandError("nothing to change: give at least one setting")
        update_practice(practice, values)
        self.stdout.write(f"Practice {practice.name} ({practice.pk}) updated: {', '.join(sorted(values))}")


def _find(ref: str) -> Practice:
    try:
        practice = Practice.objects.filter(pk=ref).first()
    except ValidationError:  # not a UUID: try it as a phone number
        practice = None
    if practice is None:
        try:
            practice = Practice.objects.filter(texting_number=normalize_phone(ref, field="practice").number).first()
        except InvalidInput:
            practice = None
    if practice is None:
        raise CommandError(f"no practice {ref!r}")
    return practice
