"""`consentry practice create|update ...`: onboard a practice, change its settings."""

from __future__ import annotations

import datetime
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_phone
from consentry.patients.models import Practice
from consentry.patients.practices import create_practice, update_connection, update_practice


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

    parser.add_argument(
        "--timezone",
        default=None,
        help="IANA time zone, e.g. America/Chicago"
        + (" (default: the texting number's area code's, else America/New_York)." if defaults else "."),
    )
    parser.add_argument(
        "--contact-phone",
        default=None,
        help="The phone HELP replies give" + (" (default: the texting number)." if defaults else "."),
    )
    parser.add_argument(
        "--email-from",
        default=None,
        metavar="'NAME <ADDRESS>'",
        help="The From of the practice's email, e.g. 'Maple Pediatrics <frontdesk@maple.example>'"
        + (" (default: noreply@ the public URL's domain, under the practice's name)." if defaults else "."),
    )
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
    parser.add_argument(
        "--email-rate", type=float, default=None, metavar="PER_SECOND", help="Emails per second from the sender."
    )
    parser.add_argument(
        "--opt-out-hint",
        choices=["first", "always", "never"],
        default=None,
        help="End automated and broadcast texts with how to opt out: on a number's first in 30 days and on "
        "every marketing text (first, the default), on every one (always), or never (your texts say it).",
    )
    parser.add_argument(
        "--opt-out-hint-text",
        default=None,
        metavar="TEXT",
        help="Its words, naming STOP, at most 60 characters (default: 'Reply STOP to opt out.').",
    )
    parser.add_argument(
        "--twilio-account-sid", default=None, help="The practice's Twilio account (AC followed by 32 hex digits)."
    )
    parser.add_argument(
        "--twilio-auth-token",
        default=None,
        help="The account's auth token: Twilio's webhooks are checked against it, and it sends the texts.",
    )


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
        "opt_out_hint": "opt_out_hint",
        "opt_out_hint_text": "opt_out_hint_text",
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
        create.add_argument("--name", required=True, help="The practice's name, as patients know it.")
        create.add_argument("--texting-number", required=True, help="E.164, e.g. +14155550100")
        _settings_arguments(create, defaults=True)
        create.add_argument("--json", action="store_true", help='Print {"id", "api_key"} as JSON.')
        update = sub.add_parser("update", help="Change the settings given; the others stay as they are.")
        update.add_argument("practice", help="The practice's id or texting number.")
        update.add_argument("--name", default=None, help="The practice's name, as patients know it.")
        update.add_argument("--texting-number", default=None, help="A new texting number, E.164.")
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
            twilio_auth_token=options["twilio_auth_token"] or "",
            twilio_account_sid=options["twilio_account_sid"] or "",
            **_settings(options),
        )
        if options["json"]:
            self.stdout.write(json.dumps({"id": str(practice.pk), "api_key": key}))
        else:
            self.stdout.write(
                f"Practice {practice.name} ({practice.pk}), time zone {practice.timezone}, "
                f"email from {practice.email_sender}\nAPI key (shown once): {key}"
            )

    def _update(self, options) -> None:
        practice = _find(options["practice"])
        values = _settings(options)
        if options.get("name") is not None:
            values["name"] = options["name"]
        connection = {
            "texting_number": options.get("texting_number"),
            "account_sid": options.get("twilio_account_sid"),
            "auth_token": options.get("twilio_auth_token") or "",
        }
        changed = [*values, *(name for name, value in connection.items() if value)]
        if not changed:
            raise CommandError("nothing to change: give at least one setting")
        with transaction.atomic():  # all or nothing: a bad token changes no setting
            update_practice(practice, values)
            update_connection(practice, **connection)
        self.stdout.write(f"Practice {practice.name} ({practice.pk}) updated: {', '.join(sorted(changed))}")


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
