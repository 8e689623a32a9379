"""Practices, API keys, patients and their contact points."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import phonenumbers.timezone
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from consentry.consent.categories import BUILTIN_CATEGORIES
from consentry.errors import InvalidInput

from .models import (
    ApiKey,
    Category,
    ContactKind,
    ContactPoint,
    KeywordMode,
    Patient,
    PatientContact,
    Practice,
    ReasonableMeans,
)

LINE_TYPES = ("mobile", "landline", "voip", "unknown")
CHANNELS = ("in_app", "sms", "voice", "email")


@dataclass(frozen=True)
class NormalizedPhone:
    number: str  # E.164
    valid: bool
    timezone: str = ""  # when the numbering plan places the number in one zone


def normalize_phone(raw: str, *, region: str = "US", field: str = "number") -> NormalizedPhone:
    """E.164 for anything that can be a phone number; refuse what cannot.

    A number that has the shape of a phone number but is not assigned (the
    numbering plan says no such number exists) is kept and marked invalid, so
    the decision engine can report ``phone_invalid`` instead of dropping it.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(field, "a phone number is required")
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(field, f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(field, f"not a phone number: {raw!r}")
    zones = phonenumbers.timezone.time_zones_for_number(parsed)
    return NormalizedPhone(
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.is_valid_number(parsed),
        zones[0] if len(zones) == 1 and zones[0] != "Etc/Unknown" else "",
    )


def normalize_email(raw: str, *, field: str = "email") -> str:
    if not isinstance(raw, str):
        raise InvalidInput(field, "an email address is required")
    email = raw.strip().lower()
    if len(email) > 254:  # RFC 5321: a forward path is at most 256 octets with its <>
        raise InvalidInput(field, "an email address is at most 254 characters")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput(field, f"not an email address: {raw!r}") from exc
    return email


def normalize_address(raw: str, *, region: str = "US", field: str = "address") -> str:
    """A phone number or an email address, normalized."""
    if isinstance(raw, str) and "@" in raw:
        return normalize_email(raw, field=field)
    return normalize_phone(raw, region=region, field=field).number


def validate_timezone(name: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(field, f"unknown time zone {name!r}") from exc
    return name


# --- practices and keys ------------------------------------------------------


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is enough: there
    # is nothing to brute-force that a slow hash would protect.
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key(*, practice: Practice, label: str = "") -> str:
    key = "csk_" + secrets.token_urlsafe(32)
    ApiKey.objects.create(practice=practice, key_hash=hash_api_key(key), label=label)
    return key


def api_key_for(key: str) -> ApiKey | None:
    """The live API key row (with its practice) for a presented key, or None."""
    return (
        ApiKey.objects.select_related("practice")
        .filter(key_hash=hash_api_key(key), revoked_at__isnull=True)
        .first()
    )


KEYWORD_LANGUAGES = ("es",)  # besides English, which is always on
MAX_RATE_PER_SECOND = 10_000.0


def _rate(value, field: str) -> float | None:
    if value is None or value == "":
        return None  # the provider's default
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a number of messages per second")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be a number of messages per second") from None
    if not 0 < rate <= MAX_RATE_PER_SECOND:
        raise InvalidInput(field, f"must be more than 0 and at most {MAX_RATE_PER_SECOND:g}")
    return rate


def _time(value, field: str):
    if isinstance(value, datetime.time):
        return value
    try:
        return datetime.time.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, f"expected HH:MM, got {value!r}") from None


def clean_practice_settings(values: dict, *, region: str = "US") -> dict:
    """Check the settings a practice admin may change; return them as model fields.

    Every value is checked before anything is written, whatever the interface
    (API, command line).
    """
    cleaned: dict = {}
    for field, value in values.items():
        if field == "name":
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("name", "a practice name is required")
            if len(value.strip()) > 200:
                raise InvalidInput("name", "is at most 200 characters")
            cleaned["name"] = value.strip()
        elif field == "timezone":
            cleaned["timezone"] = validate_timezone(value)
        elif field == "contact_phone":
            cleaned["contact_phone"] = normalize_phone(value, region=region, field=field).number
        elif field == "email_from":
            cleaned["email_from"] = normalize_email(value, field=field) if value else ""
        elif field == "send_window":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise InvalidInput("send_window", "expected [start, end] as HH:MM")
            cleaned["send_window_start"] = _time(value[0], "send_window")
            cleaned["send_window_end"] = _time(value[1], "send_window")
        elif field == "keyword_mode":
            if value not in KeywordMode.values:
                raise InvalidInput(field, f"must be one of {', '.join(KeywordMode.values)}")
            cleaned[field] = value
        elif field == "reasonable_means":
            if value not in ReasonableMeans.values:
                raise InvalidInput(field, f"must be one of {', '.join(ReasonableMeans.values)}")
            cleaned[field] = value
        elif field == "keyword_languages":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise InvalidInput(field, "must be a list of language codes")
            wanted = sorted({v.strip().lower() for v in value} - {"en"})
            unknown = set(wanted) - set(KEYWORD_LANGUAGES)
            if unknown:
                raise InvalidInput(field, f"unsupported: {', '.join(sorted(unknown))} "
                                          f"(supported besides English: {', '.join(KEYWORD_LANGUAGES)})")
            cleaned[field] = wanted
        elif field in ("sms_rate_per_second", "email_rate_per_second"):
            cleaned[field] = _rate(value, field)
        elif field == "frequency_caps":
            if not isinstance(value, bool):
                raise InvalidInput(field, "must be true or false")
            cleaned[field] = value
        elif field in ("frequency_cap_per_day", "frequency_cap_per_week"):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                raise InvalidInput(field, "must be a whole number from 1 to 100")
            cleaned[field] = value
        else:
            raise InvalidInput(field, "is not a practice setting")
    return cleaned


@transaction.atomic
def create_practice(
    *,
    name: str,
    texting_number: str,
    twilio_auth_token: str = "",
    twilio_account_sid: str = "",
    timezone: str = "America/New_York",
    region: str = "US",
    contact_phone: str = "",
    email_from: str = "",
    send_window: tuple | None = None,
    **settings,
) -> tuple[Practice, str]:
    """Create a practice with the built-in categories and one API key (returned once).

    ``settings`` are any of ``clean_practice_settings``'s fields.
    """
    if not name or not name.strip():
        raise InvalidInput("name", "a practice name is required")
    number = normalize_phone(texting_number, region=region, field="texting_number").number
    values = {"name": name, "timezone": timezone, **settings}
    if contact_phone:
        values["contact_phone"] = contact_phone
    if email_from:
        values["email_from"] = email_from
    if send_window:
        values["send_window"] = send_window
    cleaned = clean_practice_settings(values, region=region)
    if Practice.objects.filter(texting_number=number).exists():
        raise InvalidInput("texting_number", f"{number} already belongs to a practice")
    cleaned.setdefault("contact_phone", number)
    practice = Practice.objects.create(
        texting_number=number,
        region=region,
        twilio_account_sid=twilio_account_sid,
        # Every inbound webhook is signature-checked; a practice that has not
        # connected Twilio yet gets a random token that the sandbox signs with.
        twilio_auth_token=twilio_auth_token or secrets.token_hex(16),
        **cleaned,
    )
    Category.objects.bulk_create(
        Category(
            practice=practice,
            key=key,
            marketing=marketing,
            notification_channels=[c for c in CHANNELS if c in channels],
            patient_can_disable=can_disable,
        )
        for key, (marketing, channels, can_disable) in BUILTIN_CATEGORIES.items()
    )
    return practice, issue_api_key(practice=practice, label="initial")


@transaction.atomic
def update_practice(practice: Practice, values: dict) -> Practice:
    """Change a practice's settings; all are checked first, and nothing is written on an error."""
    cleaned = clean_practice_settings(values, region=practice.region)
    if cleaned:
        for field, value in cleaned.items():
            setattr(practice, field, value)
        practice.save(update_fields=list(cleaned))
    return practice


# --- patients --------------------------------------------------------------


@dataclass(frozen=True)
class PhoneInput:
    number: str
    line_type: str = "unknown"


def _contact_point(practice: Practice, address: str, kind: str, **extra) -> ContactPoint:
    point, created = ContactPoint.objects.get_or_create(
        practice=practice, address=address, defaults={"kind": kind, **extra}
    )
    if not created and extra.get("line_type", "unknown") not in ("unknown", point.line_type):
        # The newest known line type of a shared number wins (e.g. a PMS sync
        # learning that a number is a landline); "unknown" never erases it.
        point.line_type = extra["line_type"]
        point.save(update_fields=["line_type"])
    return point


@transaction.atomic
def create_patient(
    *,
    practice: Practice,
    first_name: str,
    last_name: str = "",
    phones: list[PhoneInput] = (),
    emails: list[str] = (),
    preferred_phone: str | None = None,
    do_not_contact: bool = False,
    marketing_consent: str = "unknown",
    timezone: str = "",
    external_id: str = "",
    language: str = "en",
    notification_overrides: dict | None = None,
    channel_opt_outs: list[str] = (),
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Create a patient, sharing contact points with other patients at the practice.

    Every input is validated before the first write, so a bad field changes nothing.
    """
    from consentry.consent import services as consent  # the ledger records patient-level consent

    if not first_name or not first_name.strip():
        raise InvalidInput("first_name", "a first name is required")
    normalized_phones = []
    for i, phone in enumerate(phones):
        if phone.line_type not in LINE_TYPES:
            raise InvalidInput(f"phones[{i}].line_type", f"must be one of {', '.join(LINE_TYPES)}")
        normalized_phones.append(
            (normalize_phone(phone.number, region=practice.region, field=f"phones[{i}].number"), phone.line_type)
        )
    normalized_emails = [normalize_email(e, field=f"emails[{i}]") for i, e in enumerate(emails)]
    preferred = None
    if preferred_phone:
        preferred = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        if preferred not in {p.number for p, _ in normalized_phones}:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
    if marketing_consent not in ("yes", "no", "unknown"):
        raise InvalidInput("marketing_consent", "must be yes, no or unknown")
    if timezone:
        validate_timezone(timezone)
    overrides, opt_outs = clean_notification_preferences(practice, notification_overrides or {}, channel_opt_outs)
    if external_id and Patient.objects.filter(practice=practice, external_id=external_id).exists():
        raise InvalidInput("external_id", f"a patient with external_id {external_id!r} already exists")

    patient = Patient.objects.create(
        practice=practice,
        first_name=first_name.strip(),
        last_name=(last_name or "").strip(),
        timezone=timezone,
        external_id=external_id,
        language=language,
        notification_overrides=overrides,
        channel_opt_outs=opt_outs,
    )
    links, position, seen = [], 0, set()
    preferred_point = None
    for phone, line_type in normalized_phones:
        point = _contact_point(
            practice, phone.number, ContactKind.PHONE, line_type=line_type, valid=phone.valid, timezone=phone.timezone
        )
        if phone.number == preferred:
            preferred_point = point
        if point.pk not in seen:
            seen.add(point.pk)
            links.append(PatientContact(patient=patient, contact_point=point, position=position))
            position += 1
    for email in normalized_emails:
        point = _contact_point(practice, email, ContactKind.EMAIL)
        if point.pk not in seen:
            seen.add(point.pk)
            links.append(PatientContact(patient=patient, contact_point=point, position=position))
            position += 1
    PatientContact.objects.bulk_create(links)
    if preferred_point:
        patient.preferred_phone = preferred_point
        patient.save(update_fields=["preferred_phone"])
    consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    return patient


def clean_notification_preferences(
    practice: Practice, overrides: dict, opt_outs
) -> tuple[dict[str, dict[str, bool]], list[str]]:
    """Validate a patient's per-type channel overrides and whole-channel opt-outs."""
    if not isinstance(overrides, dict):
        raise InvalidInput("notification_overrides", "must map a category to {channel: true|false}")
    known = dict(Category.objects.filter(practice=practice).values_list("key", "patient_can_disable"))
    cleaned: dict[str, dict[str, bool]] = {}
    for key, channels in overrides.items():
        field = f"notification_overrides.{key}"
        if key not in known:
            raise InvalidInput(field, f"unknown category {key!r}")
        if not isinstance(channels, dict) or not all(isinstance(v, bool) for v in channels.values()):
            raise InvalidInput(field, "must map a channel to true or false")
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise InvalidInput(field, f"unknown channel(s): {', '.join(unknown)}")
        if not known[key] and not all(channels.values()):
            raise InvalidInput(field, "patients cannot turn off this category")
        cleaned[key] = dict(channels)
    opt_outs = list(dict.fromkeys(opt_outs or ()))
    unknown = sorted(set(opt_outs) - set(CHANNELS) | ({"in_app"} & set(opt_outs)))
    if unknown:
        raise InvalidInput("channel_opt_outs", f"cannot opt out of: {', '.join(unknown)}")
    return cleaned, opt_outs


@transaction.atomic
def update_patient(
    *,
    patient: Patient,
    preferred_phone: str | None = None,
    clear_preferred_phone: bool = False,
    do_not_contact: bool | None = None,
    marketing_consent: str | None = None,
    notification_overrides: dict | None = None,
    channel_opt_outs: list[str] | None = None,
    source: str = "api",
    actor: str = "api",
) -> Patient:
    """Change a patient's preferences; consent flags go through the ledger. All-or-nothing."""
    from consentry.consent import services as consent

    practice = patient.practice
    fields = []
    if preferred_phone is not None:
        number = normalize_phone(preferred_phone, region=practice.region, field="preferred_phone").number
        point = patient.contact_points.filter(address=number, kind=ContactKind.PHONE).first()
        if point is None:
            raise InvalidInput("preferred_phone", "must be one of the patient's phones")
        patient.preferred_phone = point
        fields.append("preferred_phone")
    elif clear_preferred_phone:
        patient.preferred_phone = None
        fields.append("preferred_phone")
    if marketing_consent is not None and marketing_consent not in ("yes", "no", "unknown"):
        raise InvalidInput("marketing_consent", "must be yes, no or unknown")
    if notification_overrides is not None or channel_opt_outs is not None:
        overrides, opt_outs = clean_notification_preferences(
            practice,
            patient.notification_overrides if notification_overrides is None else notification_overrides,
            patient.channel_opt_outs if channel_opt_outs is None else channel_opt_outs,
        )
        patient.notification_overrides, patient.channel_opt_outs = overrides, opt_outs
        fields += ["notification_overrides", "channel_opt_outs"]
    if fields:
        patient.save(update_fields=fields)
    if marketing_consent is not None:
        consent.set_marketing_consent(patient=patient, value=marketing_consent, source=source, actor=actor)
    if do_not_contact is not None:
        consent.set_do_not_contact(patient=patient, value=do_not_contact, source=source, actor=actor)
    return patient


# --- categories --------------------------------------------------------------


def _clean_channels(channels, field="notification_channels") -> list[str]:
    if not isinstance(channels, (list, tuple)) or not all(isinstance(c, str) for c in channels):
        raise InvalidInput(field, "must be a list of channels")
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise InvalidInput(field, f"unknown channel(s): {', '.join(unknown)}")
    return [c for c in CHANNELS if c in channels]


def create_category(*, practice: Practice, key: str, marketing: bool, notification_channels: list[str]) -> Category:
    import re

    if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", key):
        raise InvalidInput("key", "must be lowercase letters, digits and underscores, starting with a letter")
    if Category.objects.filter(practice=practice, key=key).exists():
        raise InvalidInput("key", f"category {key!r} already exists")
    return Category.objects.create(
        practice=practice, key=key, marketing=marketing, notification_channels=_clean_channels(notification_channels)
    )


def set_notification_channels(
    *, category: Category, notification_channels: list[str], quiet_hours_exempt: bool | None = None
) -> Category:
    """Change the practice's default grid for one notification type (and whether quiet hours hold it)."""
    category.notification_channels = _clean_channels(notification_channels)
    if quiet_hours_exempt is not None:
        category.quiet_hours_exempt = quiet_hours_exempt
    category.save(update_fields=["notification_channels", "quiet_hours_exempt"])
    return category
