"""Shared helpers for the benchmarks: a seeded synthetic population and Django bootstrap.

The population is plain data (no Django, no consentry models) so that
``decide.py`` can turn it into ``Recipient`` values and ``broadcast.py`` into
database rows, and both benchmarks see the same kind of mix:

- households: ~30% of patients are children in families of three who share
  their caregiver's phone(s) and email; the rest have 1-3 phones of their own;
- line types: mostly mobile first phones, landlines common as second phones,
  some VoIP/unknown; ~3% of phones are invalid (unassigned) numbers;
- emails for ~90% of patients (a few with two);
- a preferred phone for a quarter of patients with more than one phone;
- do-not-contact ~2%, PMS marketing consent yes/no/unknown 45/15/40;
- per-patient channel opt-outs and notification overrides for a few percent;
- consent state by address: SMS opt-outs, email unsubscribes and bounces,
  and Blocked Communications (mostly for ``recall``).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # the venv has the package installed editable; this is a fallback
    sys.path.insert(0, str(ROOT / "src"))

# Shares of the population (see module docstring).
FAMILY_SHARE = 0.30  # patients who are one of three children sharing a caregiver phone
FAMILY_SIZE = 3
PHONES_PER_PATIENT = ((1, 0.60), (2, 0.30), (3, 0.10))
FIRST_LINE = (("mobile", 0.80), ("voip", 0.05), ("unknown", 0.08), ("landline", 0.07))
OTHER_LINE = (("landline", 0.40), ("mobile", 0.45), ("unknown", 0.10), ("voip", 0.05))
INVALID_PHONE = 0.03
EMAILS = ((0, 0.10), (1, 0.85), (2, 0.05))
PREFERRED_WHEN_SEVERAL = 0.25
DO_NOT_CONTACT = 0.02
MARKETING = (("yes", 0.45), ("no", 0.15), ("unknown", 0.40))
CHANNEL_OPT_OUTS = ((("sms",), 0.03), (("email",), 0.02), ((), 0.95))
OVERRIDE_SHARE = 0.03

# Shares of addresses with a consent state (of unique valid phones / emails).
SMS_OPTED_OUT = 0.03
BLOCKED = 0.008
BLOCK_CATEGORIES = ((("recall",), 0.6), (("marketing",), 0.2), (("recall", "payment_due"), 0.2))
EMAIL_UNSUBSCRIBED = 0.02
EMAIL_BOUNCED = 0.01


def _pick(rng: random.Random, weighted):
    r = rng.random()
    acc = 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


@dataclass
class PhoneSpec:
    number: str
    line_type: str
    valid: bool


@dataclass
class PatientSpec:
    index: int
    first_name: str
    phones: list[PhoneSpec]
    emails: list[str]
    preferred_phone: str | None = None
    do_not_contact: bool = False
    marketing_consent: str = "unknown"
    channel_opt_outs: list[str] = field(default_factory=list)
    notification_overrides: dict = field(default_factory=dict)


@dataclass
class ConsentSpec:
    sms_opted_out: list[str]
    email_unsubscribed: list[str]
    email_bounced: list[str]
    blocks: dict[str, list[str]]

    @property
    def addresses(self) -> int:
        return len(self.sms_opted_out) + len(self.email_unsubscribed) + len(self.email_bounced) + len(self.blocks)


@dataclass
class Population:
    patients: list[PatientSpec]
    phones: dict[str, PhoneSpec]  # unique phones, by number
    emails: list[str]  # unique emails
    consent: ConsentSpec


class _Numbers:
    def __init__(self):
        self.n = 0

    def phone(self, valid: bool) -> str:
        self.n += 1
        # Distinct E.164-shaped numbers; invalid ones use the unassigned 555-01xx-like block.
        return f"+1{(2_012_000_000 if valid else 5_550_000_000) + self.n}"


def population(n: int, seed: int = 20240601) -> Population:
    rng = random.Random(seed)
    numbers = _Numbers()
    phones: dict[str, PhoneSpec] = {}
    emails: list[str] = []

    def new_phone(first: bool) -> PhoneSpec:
        valid = rng.random() >= INVALID_PHONE
        spec = PhoneSpec(numbers.phone(valid), _pick(rng, FIRST_LINE if first else OTHER_LINE), valid)
        phones[spec.number] = spec
        return spec

    def new_email(i: int, k: int) -> str:
        email = f"patient{i}.{k}@example.org"
        emails.append(email)
        return email

    def common(spec: PatientSpec) -> PatientSpec:
        spec.do_not_contact = rng.random() < DO_NOT_CONTACT
        spec.marketing_consent = _pick(rng, MARKETING)
        spec.channel_opt_outs = list(_pick(rng, CHANNEL_OPT_OUTS))
        if rng.random() < OVERRIDE_SHARE:
            spec.notification_overrides = {"appointment_reminder": {"sms": False, "email": True}}
        return spec

    # Chance that a draw makes a family (FAMILY_SIZE patients) rather than one patient,
    # so that FAMILY_SHARE of all patients end up in families.
    family_draw = FAMILY_SHARE / (FAMILY_SHARE + (1 - FAMILY_SHARE) * FAMILY_SIZE)
    patients: list[PatientSpec] = []
    while len(patients) < n:
        i = len(patients)
        if rng.random() < family_draw and n - i >= FAMILY_SIZE:
            # A caregiver's phone(s) and email, listed by three children.
            family_phones = [new_phone(True)] + ([new_phone(False)] if rng.random() < 0.3 else [])
            family_emails = [new_email(i, 0)] if rng.random() < 0.9 else []
            for c in range(FAMILY_SIZE):
                patients.append(common(PatientSpec(i + c, f"Child{i + c}", list(family_phones), list(family_emails))))
            continue
        count = _pick(rng, PHONES_PER_PATIENT)
        own = [new_phone(k == 0) for k in range(count)]
        spec = PatientSpec(i, f"Patient{i}", own, [new_email(i, k) for k in range(_pick(rng, EMAILS))])
        if len(own) > 1 and rng.random() < PREFERRED_WHEN_SEVERAL:
            spec.preferred_phone = rng.choice(own).number
        patients.append(common(spec))
    del patients[n:]

    valid_phones = [p.number for p in phones.values() if p.valid]
    sms_out = rng.sample(valid_phones, int(len(valid_phones) * SMS_OPTED_OUT))
    blocked = rng.sample(valid_phones, int(len(valid_phones) * BLOCKED))
    email_sample = rng.sample(emails, int(len(emails) * (EMAIL_UNSUBSCRIBED + EMAIL_BOUNCED)))
    n_unsub = int(len(emails) * EMAIL_UNSUBSCRIBED)
    consent = ConsentSpec(
        sms_opted_out=sms_out,
        email_unsubscribed=email_sample[:n_unsub],
        email_bounced=email_sample[n_unsub:],
        blocks={number: list(_pick(rng, BLOCK_CATEGORIES)) for number in blocked},
    )
    return Population(patients, phones, emails, consent)


def describe(pop: Population) -> str:
    pts = pop.patients
    landlines = sum(1 for p in pop.phones.values() if p.line_type == "landline")
    invalid = sum(1 for p in pop.phones.values() if not p.valid)
    with_email = sum(1 for p in pts if p.emails)
    shared = sum(1 for p in pts if p.first_name.startswith("Child"))
    c = pop.consent
    return (
        f"{len(pts):,} patients ({shared:,} children sharing a caregiver phone), "
        f"{len(pop.phones):,} phones ({landlines:,} landline, {invalid:,} invalid), "
        f"{len(pop.emails):,} emails ({with_email:,} patients with one); consent: "
        f"{len(c.sms_opted_out):,} SMS opt-outs, {len(c.email_unsubscribed):,} unsubscribes, "
        f"{len(c.email_bounced):,} bounces, {len(c.blocks):,} blocks"
    )


# --- Django --------------------------------------------------------------


def django_on_temp_sqlite(prefix: str = "consentry-bench-") -> Path:
    """Point Django at a fresh SQLite file in a new temp dir, set it up and migrate. Returns the dir.

    Must run before anything imports Django models: settings read the
    environment once, at import.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    os.environ["CONSENTRY_DEMO"] = "1"
    os.environ["CONSENTRY_DATA_DIR"] = str(tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
    os.environ.setdefault("CONSENTRY_LOG_LEVEL", "WARNING")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return tmp


def seed_patients(practice, pop: Population, last_name: str = "Bench") -> list[str]:
    """Bulk-create the population's contact points, patients and their links at the practice (straight
    on the models, in one transaction); the patients' ids, as text, in population order."""
    import uuid

    from django.db import transaction

    from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact

    points = [
        ContactPoint(practice=practice, address=p.number, kind=ContactKind.PHONE, line_type=p.line_type, valid=p.valid)
        for p in pop.phones.values()
    ]
    points += [ContactPoint(practice=practice, address=e, kind=ContactKind.EMAIL) for e in pop.emails]
    with transaction.atomic():
        ContactPoint.objects.bulk_create(points, batch_size=2000)
        point_id = dict(ContactPoint.objects.filter(practice=practice).values_list("address", "id"))
        patients, links = [], []
        for spec in pop.patients:
            pk = uuid.uuid4()
            patients.append(
                Patient(
                    id=pk,
                    practice=practice,
                    first_name=spec.first_name,
                    last_name=last_name,
                    external_id=f"pms-{spec.index}",
                    do_not_contact=spec.do_not_contact,
                    marketing_consent=spec.marketing_consent,
                    preferred_phone_id=point_id[spec.preferred_phone] if spec.preferred_phone else None,
                    channel_opt_outs=spec.channel_opt_outs,
                    notification_overrides=spec.notification_overrides,
                )
            )
            addresses = [p.number for p in spec.phones] + spec.emails
            links += [
                PatientContact(patient_id=pk, contact_point_id=point_id[a], position=i) for i, a in enumerate(addresses)
            ]
        Patient.objects.bulk_create(patients, batch_size=2000)
        PatientContact.objects.bulk_create(links, batch_size=2000)
    return [str(p.id) for p in patients]
