"""Import patients from a CSV file, for a practice's admins: upload, read the check, confirm, read the summary.

The same file and the same domain as ``consentry import patients`` (``records/imports.py``). The
first upload is a dry run: its report (row, column, problem; what the sync rules keep) changes
nothing. To import, the admin chooses the same file again and confirms: the server keeps nothing of
the file between the two steps, since it holds PHI (names, phones, emails), so there is nothing to
encrypt, expire or clean up; the confirmation carries the SHA-256 of the file checked, and a
different file is checked instead of imported. Uploads are read in memory, never written to a
temporary file, and limited to the deployment's request size (``CONSENTRY_MAX_REQUEST_BYTES``, 5 MiB
by default, about 50,000 rows); larger files go through the command line.
"""

from __future__ import annotations

import hashlib
import io

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from consentry.records.imports import COLUMNS, Report, import_patients

from .access import staff_page

SHOWN = 500  # report lines shown on the page; the command line's --report FILE writes them all
MULTIPART_SLACK = 64 * 1024  # the form's other fields and the multipart boundaries


def max_upload_bytes() -> int:
    return settings.MAX_REQUEST_BYTES - MULTIPART_SLACK


class InMemoryUpload(FileUploadHandler):
    """Keeps an uploaded file in memory only, whatever its size (Django would write a large one to a
    temporary file), and drops a file larger than ``max_upload_bytes()``."""

    too_large = False

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if start + len(raw_data) > max_upload_bytes():
            self.too_large = True
            raise SkipFile()
        self.buffer.write(raw_data)

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            self.buffer, self.field_name, self.file_name, self.content_type, file_size, self.charset
        )


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8; the first row names the columns.")
    skip_invalid = forms.BooleanField(
        label="Skip invalid rows: import the valid ones and list the others", required=False
    )


def _page(request: HttpRequest, *, form: ImportForm | None = None, status: int = 200, **context) -> HttpResponse:
    report: Report | None = context.get("report")
    lines = list(report.lines()) if report else []
    context.update(
        nav="settings",
        form=form or ImportForm(),
        columns=COLUMNS,
        max_mb=f"{max_upload_bytes() / 2**20:.1f}",
        lines=lines[:SHOWN],
        more=max(0, len(lines) - SHOWN),
    )
    return render(request, "staff/import.html", context, status=status)


@csrf_exempt  # checked below, once the upload handlers are set (the CSRF check reads the body)
@require_http_methods(["GET", "POST"])
def import_page(request: HttpRequest) -> HttpResponse:
    handler = InMemoryUpload(request)
    request.upload_handlers = [handler]
    return _import_page(request, handler)


@staff_page(admin=True)
@csrf_protect
def _import_page(request: HttpRequest, handler: InMemoryUpload) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    form = ImportForm(request.POST, request.FILES)
    if handler.too_large:
        form.add_error(
            "file",
            f"The file is larger than {max_upload_bytes() / 2**20:.1f} MB: import it with "
            "the command line (consentry import patients).",
        )
        return _page(request, form=form, status=413)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    upload = form.cleaned_data["file"]
    data = upload.read()
    digest = hashlib.sha256(data).hexdigest()
    skip_invalid = form.cleaned_data["skip_invalid"]
    staff = request.staff  # type: ignore[attr-defined]
    confirmed = request.POST.get("action") == "import"
    changed_file = confirmed and request.POST.get("checked") != digest
    report = import_patients(
        staff.practice,
        data,
        file_name=(upload.name or "upload.csv")[-200:],
        actor=staff.actor,
        dry_run=not confirmed or changed_file,
        skip_invalid=skip_invalid,
    )
    return _page(
        request,
        form=ImportForm(initial={"skip_invalid": skip_invalid}),
        status=422 if report.refused else 200,
        report=report,
        checked=digest,
        skip_invalid=skip_invalid,
        changed_file=changed_file,
    )


urlpatterns = [
    path("settings/import", import_page, name="staff-settings-import"),
]
