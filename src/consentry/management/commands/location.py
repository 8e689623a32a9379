"""`consentry location add|list|update|remove`: a practice's locations, each with its own texting number."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_phone
from consentry.patients.locations import create_location, delete_location, update_location
from consentry.patients.models import Location

from .practice import _find as find_practice


class Command(BaseCommand):
    help = "Manage a practice's locations: each has its own texting number, name and time zone."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a location to a practice.")
        add.add_argument("practice", help="The practice's id or texting number.")
        add.add_argument("--name", required=True, help="Its name, unique within the practice.")
        add.add_argument("--texting-number", required=True, help="Used by no other practice or location.")
        add.add_argument("--timezone", default="", help="An IANA zone; the practice's if left out.")
        add.add_argument("--messaging-service", default="", help="A Twilio Messaging Service SID (MG...).")
        listing = sub.add_parser("list", help="List a practice's locations.")
        listing.add_argument("practice", help="The practice's id or texting number.")
        listing.add_argument("--json", action="store_true", help="Print the locations as a JSON list.")
        update = sub.add_parser("update", help="Change what is given; the rest stays.")
        update.add_argument("location", help="The location's id or texting number.")
        update.add_argument("--name", help="A new name.")
        update.add_argument("--texting-number", help="A new texting number, used by no other practice or location.")
        update.add_argument("--timezone", help="An IANA zone.")
        update.add_argument("--messaging-service", help='"" removes it.')
        remove = sub.add_parser("remove", help="Delete a location; its patients stay, with no location.")
        remove.add_argument("location", help="The location's id or texting number.")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(options)
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc

    def _add(self, options) -> None:
        location = create_location(
            practice=find_practice(options["practice"]),
            name=options["name"],
            texting_number=options["texting_number"],
            timezone=options["timezone"],
            twilio_messaging_service_sid=options["messaging_service"],
        )
        self.stdout.write(f"Location {location.name} ({location.pk}): {location.texting_number}, {location.timezone}")

    def _list(self, options) -> None:
        practice = find_practice(options["practice"])
        rows = [
            {
                "id": str(location.pk),
                "name": location.name,
                "texting_number": location.texting_number,
                "timezone": location.timezone,
                "twilio_messaging_service_sid": location.twilio_messaging_service_sid,
            }
            for location in practice.locations.order_by("name")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        self.stdout.write(f"{practice.name}: {practice.texting_number} (the practice's own number)")
        for row in rows:
            service = f", via {row['twilio_messaging_service_sid']}" if row["twilio_messaging_service_sid"] else ""
            self.stdout.write(f"  {row['name']}: {row['texting_number']}, {row['timezone']}{service}  ({row['id']})")

    def _update(self, options) -> None:
        location = _find(options["location"])
        given = {
            "name": options["name"],
            "texting_number": options["texting_number"],
            "timezone": options["timezone"],
            "twilio_messaging_service_sid": options["messaging_service"],
        }
        values = {field: value for field, value in given.items() if value is not None}
        if not values:
            raise CommandError("nothing to change: give --name, --texting-number, --timezone or --messaging-service")
        update_location(location, values)
        self.stdout.write(f"Location {location.name} ({location.pk}) updated: {', '.join(sorted(values))}")

    def _remove(self, options) -> None:
        location = _find(options["location"])
        delete_location(location)
        self.stdout.write(f"Location {location.name} deleted; its patients now text from the practice's number.")


def _find(ref: str) -> Location:
    try:
        location = Location.objects.select_related("practice").filter(pk=ref).first()
    except ValidationError:  # not a UUID: try it as a phone number
        location = None
    if location is None:
        try:
            number = normalize_phone(ref, field="location").number
        except InvalidInput:
            number = None
        location = Location.objects.select_related("practice").filter(texting_number=number).first() if number else None
    if location is None:
        raise CommandError(f"no location {ref!r}")
    return location
