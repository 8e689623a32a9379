"""Reads of patient records for people to look at: search, one patient's page.

A search reads what was typed the way staff mean it: a phone number in any format (it is put in
E.164 with the practice's region and found through its contact point), an email address, an
external id, or names (each word the start of a first or last name). Every lookup is indexed:
contact points and external ids by their unique keys, names by (practice, last name, first name).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet

from consentry.cursors import cursor_of, key_of
from consentry.errors import InvalidInput
from consentry.patients.addresses import looks_like_phone, normalize_email, typed_phone
from consentry.patients.models import ContactKind, ContactPoint, Patient, PatientContact, Practice

PER_PAGE = 50
MAX_QUERY = 200


class Match(StrEnum):
    ALL = "all"
    PHONE = "phone"
    EMAIL = "email"
    NAME = "name"  # names, or an external id


@dataclass(frozen=True)
class PatientPage:
    patients: list[Patient]
    page: int
    has_next: bool
    match: Match


def _listing(practice: Practice, address: str, kind: str) -> list:
    """The ids of the patients who list this address: two index lookups, resolved before the page is
    read (joined into it, the database may walk every patient in name order to find them)."""
    point = ContactPoint.objects.filter(practice=practice, address=address, kind=kind).values_list("pk", flat=True)
    return list(PatientContact.objects.filter(contact_point_id__in=list(point)).values_list("patient_id", flat=True))


def _matching(practice: Practice, q: str) -> tuple[QuerySet[Patient], Match]:
    patients = Patient.objects.filter(practice=practice)
    if not q:
        return patients, Match.ALL
    if looks_like_phone(q):
        number = typed_phone(q, practice.region)
        if number is None:
            return patients.none(), Match.PHONE
        return patients.filter(pk__in=_listing(practice, number, ContactKind.PHONE)), Match.PHONE
    if "@" in q:
        try:
            email = normalize_email(q, field="q")
        except InvalidInput:
            return patients.none(), Match.EMAIL
        return patients.filter(pk__in=_listing(practice, email, ContactKind.EMAIL)), Match.EMAIL
    names = Q()
    for word in q.split()[:4]:
        names &= Q(first_name__istartswith=word) | Q(last_name__istartswith=word)
    return patients.filter(names | Q(external_id=q)), Match.NAME


def search_patients(practice: Practice, q: str = "", *, page: int = 1, per_page: int = PER_PAGE) -> PatientPage:
    """One page of the practice's patients matching ``q``, by last name then first name."""
    q = " ".join((q or "").split())[:MAX_QUERY]
    page = max(1, page)
    found, match = _matching(practice, q)
    rows = list(found.order_by("last_name", "first_name", "pk")[(page - 1) * per_page : page * per_page + 1])
    return PatientPage(rows[:per_page], page, len(rows) > per_page, match)


def patient_points(patient: Patient) -> list[ContactPoint]:
    """The patient's phones and emails, in the order they were given."""
    return [link.contact_point for link in patient.contacts.select_related("contact_point").order_by("position", "pk")]


def sharing(practice: Practice, points: list[ContactPoint], but: Patient) -> dict[int, list[Patient]]:
    """The other patients who list each of these contact points (a family's shared phone)."""
    shared: dict[int, list[Patient]] = {p.pk: [] for p in points}
    links = (
        PatientContact.objects.filter(contact_point__in=points)
        .exclude(patient=but)
        .select_related("patient")
        .order_by("patient__last_name", "patient__first_name")
    )
    for link in links:
        shared[link.contact_point_id].append(link.patient)
    return shared


MAX_LIST_LINES = 200_000


@dataclass(frozen=True)
class Audience:
    patient_ids: Any  # a list of ids, or the planner's EVERY_PATIENT (read a chunk at a time)
    unmatched: list[str]  # lines of an uploaded list that named no patient of the practice


def audience_filtered(
    practice: Practice, *, tag: str = "", visited_after: date | None = None, visited_before: date | None = None
) -> Audience:
    """The practice's patients with this label and a last visit in this range (each filter optional;
    a patient with no known last visit is out of any range)."""
    patients = Patient.objects.filter(practice=practice)
    if visited_after is not None:
        patients = patients.filter(last_visit_on__gte=visited_after)
    if visited_before is not None:
        patients = patients.filter(last_visit_on__lt=visited_before)
    tag = " ".join(tag.split()).lower()
    ids = [pk for pk, tags in patients.order_by("pk").values_list("pk", "tags") if not tag or tag in (tags or [])]
    return Audience(ids, [])


def practice_tags(practice: Practice) -> list[str]:
    """Every label the practice's patients carry, in order."""
    found: set[str] = set()
    for tags in Patient.objects.filter(practice=practice).exclude(tags=[]).values_list("tags", flat=True):
        found.update(tags or [])
    return sorted(found)


def audience_from_list(practice: Practice, lines: list[str]) -> Audience:
    """The patients an uploaded list names, one per line (or per CSV row's first cell): an external
    id, a phone number in any format, or an email address. A phone or email names every patient
    who lists it (a family's shared phone)."""
    wanted_external: list[str] = []
    wanted_addresses: list[str] = []
    found_by_line: dict[str, str | None] = {}  # line -> what it names (None: not an address)
    for raw in lines[:MAX_LIST_LINES]:
        line = raw.split(",", 1)[0].strip().strip('"')
        if not line or line.lower() in ("external_id", "phone", "email", "patient"):
            continue
        key = line
        if "@" in line:
            try:
                key = normalize_email(line, field="list")
            except InvalidInput:
                found_by_line[line] = None
                continue
            wanted_addresses.append(key)
        elif looks_like_phone(line):
            number = typed_phone(line, practice.region)
            if number is None:
                found_by_line[line] = None
                continue
            key = number
            wanted_addresses.append(key)
        else:
            wanted_external.append(line)
        found_by_line[line] = key
    by_external = dict(
        Patient.objects.filter(practice=practice, external_id__in=wanted_external).values_list("external_id", "pk")
    )
    by_address: dict[str, list] = {}
    for address, patient_id in PatientContact.objects.filter(
        patient__practice=practice, contact_point__address__in=wanted_addresses
    ).values_list("contact_point__address", "patient_id"):
        by_address.setdefault(address, []).append(patient_id)
    ids: dict = {}
    unmatched = []
    for line, named in found_by_line.items():
        if named is None:
            matched: list = []
        else:
            matched = [by_external[named]] if named in by_external else by_address.get(named, [])
        if not matched:
            unmatched.append(line)
        for patient_id in matched:
            ids[patient_id] = None
    return Audience(list(ids), unmatched)


MAX_LIST = 500


@dataclass(frozen=True)
class PatientList:
    patients: list[Patient]
    next_cursor: str | None  # pass as ``cursor`` for the next page; None on the last


def list_patients(
    practice: Practice,
    *,
    q: str = "",
    updated_since: datetime | None = None,
    cursor: str = "",
    limit: int = 50,
) -> PatientList:
    """The practice's patients matching ``q`` (as the staff search reads it) and changed since then,
    in a stable order, a page at a time: the cursor carries on where the last page ended, whatever
    was added or changed meanwhile."""
    q = " ".join((q or "").split())[:MAX_QUERY]
    limit = max(1, min(limit, MAX_LIST))
    found, _ = _matching(practice, q)
    if updated_since is not None:
        found = found.filter(updated_at__gte=updated_since)
    if cursor:
        found = found.filter(pk__gt=key_of(cursor, uuid.UUID))
    rows = list(found.order_by("pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return PatientList(rows, cursor_of(rows[-1].pk) if more else None)
