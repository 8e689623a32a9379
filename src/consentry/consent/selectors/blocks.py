"""Blocked Communications as staff read it: each blocked number with the patients who list it."""

from __future__ import annotations

from dataclasses import dataclass

from consentry.patients.models import ContactKind, Patient, PatientContact, Practice

from ..models import Block


@dataclass(frozen=True)
class BlockedNumber:
    number: str
    categories: frozenset[str]
    patients: list[Patient]  # who list the number, by name


def blocked_numbers(practice: Practice, only: str | None = None) -> list[BlockedNumber]:
    """The practice's blocked numbers (or just ``only``), each with the patients who list it.

    Two queries whatever the length of the list.
    """
    blocks = Block.objects.filter(practice=practice).order_by("number")
    if only is not None:
        blocks = blocks.filter(number=only)
    rows = list(blocks.values_list("number", "categories"))
    listing: dict[str, list[Patient]] = {number: [] for number, _ in rows}
    links = (
        PatientContact.objects.filter(
            contact_point__practice=practice, contact_point__kind=ContactKind.PHONE, contact_point__address__in=listing
        )
        .select_related("patient", "contact_point")
        .order_by("patient__last_name", "patient__first_name", "patient_id")
    )
    for link in links:
        listing[link.contact_point.address].append(link.patient)
    return [BlockedNumber(number, frozenset(categories), listing[number]) for number, categories in rows]
