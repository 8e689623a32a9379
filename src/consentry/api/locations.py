"""Locations: a practice's sites, each with its own texting number and timezone.

A text to any location's number reaches the practice; a patient's texts go from their location's
number. Consent stays the practice's: a STOP to any of its numbers stops texts from all of them.
"""

from __future__ import annotations

from typing import Any

from ninja import Field, Router, Schema, Status

from consentry.api.auth import owned_or_404, practice_of
from consentry.api.schemas import In
from consentry.patients.locations import create_location, delete_location, update_location
from consentry.patients.models import Location

router = Router(tags=["locations"])

# The default of a field that was not sent: model_dump(exclude_unset=True) leaves it out.
UNSET: Any = None


class LocationIn(In):
    model_config = {"extra": "forbid"}
    name: str = Field(max_length=100)
    texting_number: str = Field(max_length=40, description="Unique across every practice and location")
    timezone: str = Field("", max_length=64, description="An IANA zone; blank: the practice's")
    twilio_messaging_service_sid: str = Field(
        "", max_length=34, description="MG...: the location's texts go through this Messaging Service"
    )


class LocationPatch(In):
    """Only the fields sent change."""

    model_config = {"extra": "forbid"}
    name: str = Field(UNSET, max_length=100)
    texting_number: str = Field(UNSET, max_length=40)
    timezone: str = Field(UNSET, max_length=64)
    twilio_messaging_service_sid: str = Field(UNSET, max_length=34, description='"" removes it')


class LocationOut(Schema):
    id: str
    name: str
    texting_number: str
    timezone: str
    twilio_messaging_service_sid: str
    patients: int = Field(description="Patients who belong to it")


def _out(location: Location) -> dict:
    return {
        "id": str(location.pk),
        "name": location.name,
        "texting_number": location.texting_number,
        "timezone": location.timezone,
        "twilio_messaging_service_sid": location.twilio_messaging_service_sid,
        "patients": location.patients.count(),
    }


@router.get("", response=list[LocationOut])
def locations_list(request):
    """The practice's locations, by name."""
    return [_out(location) for location in Location.objects.filter(practice=practice_of(request)).order_by("name")]


@router.post("", response={201: LocationOut})
def locations_create(request, payload: LocationIn):
    """Add a location; a number any practice or location already has is a 422."""
    location = create_location(practice=practice_of(request), **payload.model_dump())
    return Status(201, _out(location))


@router.get("/{location_id}", response=LocationOut)
def locations_get(request, location_id: str):
    return _out(owned_or_404(Location, request, location_id))


@router.patch("/{location_id}", response=LocationOut)
def locations_update(request, location_id: str, payload: LocationPatch):
    """Change the fields sent; all are checked first and nothing changes on an error."""
    location = owned_or_404(Location, request, location_id)
    return _out(update_location(location, payload.model_dump(exclude_unset=True)))


@router.delete("/{location_id}", response={204: None})
def locations_delete(request, location_id: str):
    """Delete a location: its patients stay, with no location, and their texts go from the practice's number."""
    delete_location(owned_or_404(Location, request, location_id))
    return Status(204, None)
