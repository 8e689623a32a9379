"""Webhook endpoints, for a practice's admins: where its signed events go, each endpoint's log.

The same services as the API (``consentry.events.endpoints``): the same checks of the URL, the
signing secret shown once, on the answer that registers the endpoint.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from consentry.errors import InvalidInput
from consentry.events.endpoints import (
    DESCRIPTION_MAX_LENGTH,
    URL_MAX_LENGTH,
    create_endpoint,
    delete_endpoint,
    delivery_log,
    summary,
)
from consentry.events.models import EventType, WebhookEndpoint

from .access import staff_page

LOG_ROWS = 50


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=URL_MAX_LENGTH, help_text="Your system's https:// address that receives the events"
    )
    events = forms.MultipleChoiceField(
        label="Events it gets",
        choices=[(t.value, f"{t.value}: {t.label}") for t in EventType],
        widget=forms.CheckboxSelectMultiple,
        initial=[t.value for t in EventType],
    )
    description = forms.CharField(
        label="Description", max_length=DESCRIPTION_MAX_LENGTH, required=False, help_text="e.g. EHR consent sync"
    )


def _endpoint(request: HttpRequest, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(practice=request.staff.practice, pk=endpoint_id).first()  # type: ignore[attr-defined]
    if endpoint is None:
        raise Http404("no such webhook endpoint")
    return endpoint


def _page(request: HttpRequest, *, form: EndpointForm | None = None, new: tuple | None = None, status: int = 200):
    practice = request.staff.practice  # type: ignore[attr-defined]
    endpoints = WebhookEndpoint.objects.filter(practice=practice).order_by("created_at")
    context = {
        "nav": "settings",
        "endpoints": [(e, summary(e)) for e in endpoints],
        "form": form or EndpointForm(),
        "new": new,  # (endpoint, secret): the secret is shown on this answer only
    }
    return render(request, "staff/webhooks.html", context, status=status)


@staff_page(admin=True)
def webhook_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@staff_page(admin=True)
def webhook_add(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            endpoint, secret = create_endpoint(
                practice=request.staff.practice,  # type: ignore[attr-defined]
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                description=form.cleaned_data["description"],
            )
        except InvalidInput as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return _page(request, new=(endpoint, secret))
    return _page(request, form=form, status=400)


@require_POST
@staff_page(admin=True)
def webhook_delete(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    delete_endpoint(endpoint)
    messages.success(request, f"Webhook endpoint {endpoint.url} deleted: nothing more is sent to it.")
    return redirect("staff-webhooks")


@staff_page(admin=True)
def webhook_log(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    page = delivery_log(endpoint, limit=LOG_ROWS)
    context = {"nav": "settings", "endpoint": endpoint, "counts": summary(endpoint), "deliveries": page.deliveries}
    return render(request, "staff/webhook_log.html", context)


urlpatterns = [
    path("settings/webhooks/", webhook_list, name="staff-webhooks"),
    path("settings/webhooks/add", webhook_add, name="staff-webhook-add"),
    path("settings/webhooks/<uuid:endpoint_id>/", webhook_log, name="staff-webhook"),
    path("settings/webhooks/<uuid:endpoint_id>/delete", webhook_delete, name="staff-webhook-delete"),
]
