"""`consentry demo`: a demo practice with families, opt-outs, blocks and a landline."""

from __future__ import annotations

import datetime
import secrets

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from consentry.accounts.models import Membership
from consentry.accounts.services import create_staff
from consentry.consent import services as consent
from consentry.consent.models import EmailState, Source
from consentry.conversations.inbound import handle_inbound_text
from consentry.management.commands._options import port as port_number
from consentry.messaging.planning import create_message
from consentry.patients.locations import create_location
from consentry.patients.models import Patient, Practice
from consentry.patients.practices import create_practice, issue_api_key
from consentry.providers.base import InboundText
from consentry.records.dues import set_due
from consentry.records.services import PhoneInput, create_patient, update_patient
from consentry.vocabulary import Kind

DEMO_NUMBER = "+14155550100"
DEMO_LOCATION_NUMBER = "+17205550100"  # Maple Street North, in Denver
# Demo staff: the passwords are printed by every run and are only for a demo deployment.
DEMO_STAFF = (
    ("admin@maple-pediatrics.example", "admin", "Alex Admin", "maple-demo-admin"),
    ("desk@maple-pediatrics.example", "front_desk", "Frankie Desk", "maple-demo-desk"),
)


class Command(BaseCommand):
    help = "Load the demo practice (what exists stays, keys included) and print how to use it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=port_number, default=8000, help="The port `consentry serve` will use, for the printed links."
        )

    @transaction.atomic
    def handle(self, *args, port, **options):
        practice = Practice.objects.filter(texting_number=DEMO_NUMBER).first()
        if practice is None:
            practice, key = create_practice(
                name="Maple Street Pediatrics",
                texting_number=DEMO_NUMBER,
                contact_phone="+14155550199",
                email_from="frontdesk@maple-pediatrics.example",
                # No quiet hours, so that the demo behaves the same at any hour (its broadcast finishes
                # at once); a practice sets its own in Settings.
                send_window=(datetime.time(0, 0), datetime.time(0, 0)),
            )
            self._patients(practice)
            self._location(practice)
            self._activity(practice)
        else:
            # Keys are stored hashed, so a re-run issues a fresh demo key; the keys made before stay.
            key = issue_api_key(practice=practice, label="demo")
        if not practice.twilio_auth_token:
            # The sandbox page signs its phones' replies with it, as Twilio would.
            practice.twilio_auth_token = secrets.token_hex(16)
            practice.save(update_fields=["twilio_auth_token"])
        staff = self._staff(practice)
        base = f"http://127.0.0.1:{port}"
        self.stdout.write(
            "\n".join(
                [
                    f"Demo practice: {practice.name} ({practice.pk}), texting number {practice.texting_number}",
                    *(
                        f"  location:    {location.name}, texting number {location.texting_number}"
                        for location in practice.locations.order_by("name")
                    ),
                    f"Demo API key:  {key}",
                    f"Staff app:     {base}/  (sign in as one of these)",
                    *staff,
                    f"API docs:      {base}/api/v1/docs",
                    f"Sandbox:       {base}/sandbox/  (the patients' phones and inboxes; reply STOP from a phone)",
                    f"Try:           curl -H 'Authorization: Bearer {key}' '{base}/api/v1/contacts/status?address=%2B14155550111'",
                ]
            )
        )

    def _staff(self, practice: Practice) -> list[str]:
        """The demo's admin and front-desk users (created once; a re-run leaves their passwords alone)."""
        lines = []
        for email, role, name, password in DEMO_STAFF:
            if not Membership.objects.filter(practice=practice, user__username=email).exists():
                create_staff(practice=practice, email=email, role=role, name=name, password=password)
            lines.append(f"  {role.replace('_', ' '):<11} {email}  password: {password}")
        return lines

    def _patients(self, practice: Practice) -> None:
        actor = "demo"
        parent = PhoneInput("+14155550111", "mobile")
        for first in ("Ava", "Ben", "Cleo"):  # three children, one caregiver's phone
            create_patient(
                practice=practice,
                first_name=first,
                last_name="Rivera",
                phones=[parent],
                emails=["rivera.family@example.com"],
                marketing_consent="yes",
                external_id=f"demo-{first.lower()}",
                source=Source.IMPORT,
                actor=actor,
            )
        create_patient(
            practice=practice,
            first_name="Dora",
            last_name="Okafor",
            phones=[PhoneInput("+14155550122", "landline")],
            emails=["dora.okafor@example.com"],
            external_id="demo-dora",
            source=Source.IMPORT,
            actor=actor,
        )
        create_patient(
            practice=practice,
            first_name="Eli",
            last_name="Schmidt",
            phones=[PhoneInput("+14155550133", "mobile")],
            external_id="demo-eli",
            marketing_consent="no",
            source=Source.IMPORT,
            actor=actor,
        )
        create_patient(
            practice=practice,
            first_name="Fay",
            last_name="Nguyen",
            phones=[PhoneInput("+14155550144", "mobile")],
            emails=["fay.nguyen@example.com"],
            do_not_contact=True,
            external_id="demo-fay",
            source=Source.IMPORT,
            actor=actor,
        )
        create_patient(
            practice=practice,
            first_name="Gus",
            last_name="Patel",
            emails=["gus.patel@example.com"],
            external_id="demo-gus",
            source=Source.IMPORT,
            actor=actor,
        )
        # A legacy opt-out (UNSUB keyword in the old system), a recall block, a bounce.
        consent.record_sms_opt_out(
            practice=practice,
            number="+14155550133",
            source=Source.IMPORT,
            actor=actor,
            evidence={"legacy_keyword": "UNSUB"},
        )
        consent.set_block(
            practice=practice, number="+14155550144", categories=["recall"], source=Source.STAFF, actor=actor
        )
        consent.record_email_state(
            practice=practice,
            email="dora.okafor@example.com",
            state=EmailState.BOUNCED,
            source=Source.IMPORT,
            actor=actor,
        )

    def _location(self, practice: Practice) -> None:
        """A second site with its own number and time zone: its patients' texts go from that number, and a
        text to it reaches the practice (the sandbox's phones may text either number)."""
        actor = "demo"
        north = create_location(
            practice=practice, name="Maple Street North", texting_number=DEMO_LOCATION_NUMBER, timezone="America/Denver"
        )
        for first, last, phone in (
            ("Liam", "Ortiz", "+17205550111"),
            ("Mia", "Ortiz", "+17205550111"),
            ("Noah", "Reed", "+17205550122"),
        ):
            create_patient(
                practice=practice,
                first_name=first,
                last_name=last,
                phones=[PhoneInput(phone, "mobile")],
                external_id=f"demo-{first.lower()}",
                location_id=str(north.pk),
                source=Source.IMPORT,
                actor=actor,
            )
        handle_inbound_text(
            InboundText(
                practice=practice,
                from_number="+17205550122",
                to_number=north.texting_number,
                body="Is the North office open on Saturday?",
                provider="sandbox",
                provider_ref="SB" + secrets.token_hex(16),
            )
        )

    def _activity(self, practice: Practice) -> None:
        """What makes every screen of the staff app show something: recalls due, an unsubscribed
        email, a number blocked for recalls, replies in the inbox (one to confirm as an opt-out, one
        STOP), and a broadcast that the worker finishes with skips as soon as the demo serves."""
        actor = "demo"
        hana = create_patient(
            practice=practice,
            first_name="Hana",
            last_name="Kim",
            phones=[PhoneInput("+14155550155", "mobile")],
            emails=["hana.kim@example.com"],
            external_id="demo-hana",
            source=Source.IMPORT,
            actor=actor,
        )
        create_patient(  # a number the PMS holds that no phone can have: the invalid-number icon
            practice=practice,
            first_name="Kai",
            last_name="Lee",
            phones=[PhoneInput("+14151234567", "mobile")],
            emails=["kai.lee@example.com"],
            external_id="demo-kai",
            source=Source.IMPORT,
            actor=actor,
        )
        for first, phone in (("Ivy", "+14155550166"), ("Jo", "+14155550177")):
            create_patient(
                practice=practice,
                first_name=first,
                last_name="Brooks",
                phones=[PhoneInput(phone, "mobile")],
                external_id=f"demo-{first.lower()}",
                source=Source.IMPORT,
                actor=actor,
            )
        consent.set_block(
            practice=practice, number="+14155550155", categories=["recall"], source=Source.STAFF, actor=actor
        )
        consent.record_email_state(
            practice=practice,
            email="gus.patel@example.com",
            state=EmailState.UNSUBSCRIBED,
            source=Source.ONE_CLICK_UNSUBSCRIBE,
            actor="gus.patel@example.com",
        )
        today = timezone.localdate()
        due = {"ava": -14, "ben": 3, "cleo": 3, "dora": 10, "eli": 12, "fay": 20, "gus": 25}
        for patient in Patient.objects.filter(practice=practice, external_id__startswith="demo-"):
            days = due.get(patient.external_id.removeprefix("demo-"))
            if days is not None:
                set_due(patient=patient, category="recall", due_on=today + datetime.timedelta(days=days))
        set_due(patient=hana, category="recall", due_on=today + datetime.timedelta(days=8))
        # Labels and last visits, from the PMS, for choosing a broadcast's audience.
        labels = {"ava": (["asthma"], 40), "ben": (["asthma"], 200), "dora": (["diabetic"], 90), "eli": ([], 400)}
        for patient in Patient.objects.filter(practice=practice, external_id__startswith="demo-"):
            if found := labels.get(patient.external_id.removeprefix("demo-")):
                tags, days_ago = found
                update_patient(
                    patient=patient, tags=tags, last_visit_on=today - datetime.timedelta(days=days_ago), actor=actor
                )
        # Texts in: an ordinary reply, one that asks to stop in other words (flagged for staff), a STOP.
        for phone, body in (
            ("+14155550111", "Thanks! We'll be there Tuesday."),
            ("+14155550166", "Could you please stop sending me these texts?"),
            ("+14155550177", "STOP"),
        ):
            handle_inbound_text(
                InboundText(
                    practice=practice,
                    from_number=phone,
                    to_number=practice.texting_number,
                    body=body,
                    provider="sandbox",
                    provider_ref="SB" + secrets.token_hex(16),
                )
            )
        create_message(
            practice=practice,
            kind=Kind.BROADCAST,
            category="announcement",
            patient_ids=list(Patient.objects.filter(practice=practice).values_list("pk", flat=True)),
            content={
                "sms": "Hi {{first_name}}, flu shots are in: call {{practice_phone}} to book.",
                "email": {"subject": "Flu shots are in", "text": "Hi {{first_name}}, flu shots are in."},
            },
            actor=actor,
        )
