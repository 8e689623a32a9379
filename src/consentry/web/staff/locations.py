"""Locations, in Settings, for a practice's admins: each site with its own texting number, time zone and,
optionally, Twilio Messaging Service. Every value is checked by the same services as the API and the CLI
(``patients.locations``)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from consentry.errors import InvalidInput
from consentry.patients.locations import create_location, delete_location, update_location
from consentry.patients.models import Location

from .access import staff_page


class LocationForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="e.g. Maple Street North")
    texting_number = forms.CharField(
        label="Texting number",
        max_length=40,
        help_text="A number of the practice's Twilio account, used by no other practice or location.",
    )
    timezone = forms.CharField(
        label="Time zone", max_length=64, required=False, help_text="e.g. America/Denver; blank: the practice's."
    )
    twilio_messaging_service_sid = forms.CharField(
        label="Twilio Messaging Service SID",
        max_length=34,
        required=False,
        help_text="Optional (MG…): texts go through it, from this location's number.",
    )

    @classmethod
    def of(cls, location: Location) -> LocationForm:
        return cls(
            initial={
                "name": location.name,
                "texting_number": location.texting_number,
                "timezone": location.timezone,
                "twilio_messaging_service_sid": location.twilio_messaging_service_sid,
            }
        )


def _refuse(form: forms.Form, exc: InvalidInput) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _list(request: HttpRequest, form: LocationForm | None = None, status: int = 200) -> HttpResponse:
    practice = request.staff.practice  # type: ignore[attr-defined]
    locations = Location.objects.filter(practice=practice).annotate(patient_count=Count("patients")).order_by("name")
    context = {"nav": "settings", "practice": practice, "locations": locations, "form": form or LocationForm()}
    return render(request, "staff/locations.html", context, status=status)


@staff_page(admin=True)
def location_list(request: HttpRequest) -> HttpResponse:
    return _list(request)


@require_POST
@staff_page(admin=True)
def location_add(request: HttpRequest) -> HttpResponse:
    form = LocationForm(request.POST)
    if form.is_valid():
        try:
            location = create_location(practice=request.staff.practice, **form.cleaned_data)  # type: ignore[attr-defined]
        except InvalidInput as exc:
            _refuse(form, exc)
        else:
            messages.success(request, f"Location {location.name} added, texting from {location.texting_number}.")
            return redirect("staff-locations")
    return _list(request, form, status=400)


def _location(request: HttpRequest, location_id: uuid.UUID) -> Location:
    """The location, at the practice the user is working at: another practice's is a 404."""
    return get_object_or_404(Location, pk=location_id, practice=request.staff.practice)  # type: ignore[attr-defined]


@staff_page(admin=True)
def location_edit(request: HttpRequest, location_id: uuid.UUID) -> HttpResponse:
    location = _location(request, location_id)
    form = LocationForm(request.POST) if request.method == "POST" else LocationForm.of(location)
    if request.method == "POST" and form.is_valid():
        try:
            update_location(location, form.cleaned_data)
        except InvalidInput as exc:
            location.refresh_from_db()
            _refuse(form, exc)
        else:
            messages.success(request, f"Location {location.name} saved.")
            return redirect("staff-locations")
    context = {"nav": "settings", "location": location, "form": form, "patients": location.patients.count()}
    return render(request, "staff/location.html", context, status=400 if form.errors else 200)


@require_POST
@staff_page(admin=True)
def location_delete(request: HttpRequest, location_id: uuid.UUID) -> HttpResponse:
    location = _location(request, location_id)
    delete_location(location)
    messages.success(
        request, f"Location {location.name} deleted; its patients now get texts from the practice's number."
    )
    return redirect("staff-locations")


urlpatterns = [
    path("settings/locations/", location_list, name="staff-locations"),
    path("settings/locations/add", location_add, name="staff-location-add"),
    path("settings/locations/<uuid:location_id>/", location_edit, name="staff-location"),
    path("settings/locations/<uuid:location_id>/delete", location_delete, name="staff-location-delete"),
]
