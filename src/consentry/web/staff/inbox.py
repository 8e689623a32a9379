"""The inbox: every conversation of the practice, possible opt-outs on top, opted-out phones in red,
one conversation open with its reply box.

Two parts of the page refresh themselves (htmx polling, with ``REFRESH_HEADER`` so that they do not
keep an idle session alive): the list and the open conversation's lines. Each poll sends the
fingerprint of what the page shows and gets 204 when nothing changed, so focus, a screen
reader's place and a reply being typed are left alone. The reply box is replaced only when whether
a reply may go changes (the patient texted STOP meanwhile).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from consentry.accounts.selectors import actor_names
from consentry.conversations import selectors, services
from consentry.conversations.models import Conversation
from consentry.errors import InvalidInput
from consentry.messaging.content import MAX_SMS_CHARS
from consentry.messaging.templating import sms_prefix

from .access import page_number, staff_page

# The ids of the two parts that refresh themselves; an htmx request names its target.
LIST = "inbox-rows"
THREAD = "thread-live"
# Django masks the CSRF token anew on every render: it is not part of what the page shows.
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def _fingerprint(html: str) -> str:
    return hashlib.sha256(_CSRF.sub("", html).encode()).hexdigest()[:20]


def _conversation(request: HttpRequest, conversation_id: uuid.UUID) -> Conversation:
    """The conversation, at the practice the user is working at: another practice's is a 404."""
    return get_object_or_404(
        Conversation.objects.select_related("practice"),
        pk=conversation_id,
        practice=request.staff.practice,  # type: ignore[attr-defined]
    )


def _list_part(request: HttpRequest, conversation: Conversation | None, q: str) -> dict:
    found = selectors.inbox(
        request.staff.practice,  # type: ignore[attr-defined]
        q,
        page=page_number(request.GET.get("page")),
    )
    html = render_to_string("staff/_inbox_rows.html", {"found": found, "open": conversation}, request)
    return {"found": found, "rows_html": html, "rows_version": _fingerprint(html)}


def _thread_part(request: HttpRequest, conversation: Conversation, q: str) -> dict:
    thread = selectors.thread(conversation)
    authors = actor_names(line.author for line in thread.lines if line.author)
    html = render_to_string("staff/_inbox_thread.html", {"thread": thread, "authors": authors, "q": q}, request)
    practice = conversation.practice
    return {
        "q": q,
        "thread": thread,
        "thread_html": html,
        "thread_version": _fingerprint(html),
        "prefix": sms_prefix(practice),
        "room": MAX_SMS_CHARS - len(sms_prefix(practice)),
    }


def _unchanged(request: HttpRequest, version: str) -> bool:
    return request.GET.get("v") == version


@staff_page
def inbox(request: HttpRequest, conversation_id: uuid.UUID | None = None) -> HttpResponse:
    """The inbox page, or (for htmx) the part it asks for: the list (search, refresh) or the open
    conversation (refresh)."""
    conversation = _conversation(request, conversation_id) if conversation_id else None
    target = request.htmx.target if request.htmx else None  # type: ignore[attr-defined]
    q = request.GET.get("q", "")
    if target == LIST:
        part = _list_part(request, conversation, q)
        if _unchanged(request, part["rows_version"]):
            return HttpResponse(status=204)
        return render(request, "staff/_inbox_rows_live.html", part)
    if target == THREAD and conversation is not None:
        part = _thread_part(request, conversation, q)
        reply_changed = request.GET.get("shown") != part["thread"].reply_state
        if _unchanged(request, part["thread_version"]) and not reply_changed:
            return HttpResponse(status=204)
        return render(request, "staff/_inbox_thread_live.html", {**part, "reply_oob": reply_changed})
    context = {"nav": "inbox", "open": conversation, "q": q, **_list_part(request, conversation, q)}
    if conversation is not None:
        context.update(_thread_part(request, conversation, q))
    return render(request, "staff/inbox.html", context)


def _back(request: HttpRequest, conversation: Conversation):
    """To the conversation, keeping the search the user had."""
    q = request.POST.get("q", "")
    url = reverse("staff-inbox-conversation", args=[conversation.pk])
    return redirect(f"{url}?{urlencode({'q': q})}" if q else url)


@require_POST
@staff_page
def reply(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Text the conversation's phone as staff; refused, with the reason, when its consent forbids it."""
    staff = request.staff  # type: ignore[attr-defined]
    conversation = _conversation(request, conversation_id)
    body, q = request.POST.get("body", ""), request.POST.get("q", "")
    error, status = "", 200
    try:
        services.reply(conversation, body, staff.actor)
    except services.ReplyRefused as refused:
        error, status = f"Not sent: {refused.message}.", 409
    except InvalidInput as invalid:
        error, status = f"Not sent: {invalid.message}.", 422
    else:
        if not request.htmx:  # type: ignore[attr-defined]
            messages.success(request, f"Reply sent to {conversation.phone}.")
            return _back(request, conversation)
        body = ""
    part = _thread_part(request, conversation, q)
    context = {**part, "open": conversation, "body": body, "error": error, "sent": not error}
    if request.htmx:  # type: ignore[attr-defined]
        # The reply box again (empty once sent, the text kept when refused) and the lines with the reply.
        return render(request, "staff/_inbox_reply_sent.html", context)
    context.update({"nav": "inbox", **_list_part(request, conversation, q)})
    return render(request, "staff/inbox.html", context, status=status)


@require_POST
@staff_page
def confirm_opt_out(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """Staff confirm that a reply asked to stop: the phone is opted out of texts (only the patient
    can opt back in)."""
    staff = request.staff  # type: ignore[attr-defined]
    conversation = _conversation(request, conversation_id)
    event = services.confirm_opt_out(conversation, staff.actor)
    if event is None:
        messages.info(request, f"{conversation.phone} was already opted out of texts; nothing changed.")
    else:
        messages.success(request, f"{conversation.phone} is opted out of texts. Only the patient can opt back in.")
    return _back(request, conversation)


@require_POST
@staff_page
def clear_flag(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    """The flagged reply was not a request to stop: the conversation leaves the top of the inbox."""
    conversation = _conversation(request, conversation_id)
    if services.dismiss_flag(conversation, request.staff.actor):  # type: ignore[attr-defined]
        messages.success(request, f"Flag cleared: the reply from {conversation.phone} was not a request to stop.")
    return _back(request, conversation)


urlpatterns: list[URLPattern] = [
    path("inbox/", inbox, name="staff-inbox"),
    path("inbox/<uuid:conversation_id>/", inbox, name="staff-inbox-conversation"),
    path("inbox/<uuid:conversation_id>/reply", reply, name="staff-inbox-reply"),
    path("inbox/<uuid:conversation_id>/opt-out", confirm_opt_out, name="staff-inbox-opt-out"),
    path("inbox/<uuid:conversation_id>/clear-flag", clear_flag, name="staff-inbox-clear-flag"),
]
