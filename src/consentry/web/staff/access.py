"""Who is signed in, at which practice, with which role: every staff page goes through ``staff_page``.

A staff user works at one practice at a time (chosen in the header when they have several). Every
object a page shows is looked up within that practice, so another practice's object is a 404,
never a 403 that would confirm it exists. Pages carry PHI: none is ever cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import cast
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django_htmx.http import HttpResponseClientRedirect

from consentry.accounts.models import Membership
from consentry.accounts.services import staff_actor
from consentry.patients.models import Practice
from consentry.vocabulary import Role

SESSION_PRACTICE = "practice_id"


@dataclass(frozen=True)
class Staff:
    """The signed-in user at the practice they are working at."""

    user: User
    membership: Membership
    memberships: list[Membership]

    @property
    def practice(self) -> Practice:
        return self.membership.practice

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Role.ADMIN

    @property
    def actor(self) -> str:
        return staff_actor(self.user)


def current_staff(request: HttpRequest) -> Staff | None:
    """The signed-in user's staff context, or None when they belong to no practice."""
    user = cast(User, request.user)  # signed in: staff_page checked
    memberships = list(Membership.objects.filter(user=user).select_related("practice").order_by("practice__name"))
    if not memberships:
        return None
    chosen = request.session.get(SESSION_PRACTICE)
    membership = next((m for m in memberships if str(m.practice_id) == chosen), memberships[0])
    return Staff(user=user, membership=membership, memberships=memberships)


def no_store(response: HttpResponse) -> HttpResponse:
    patch_cache_control(response, no_store=True, private=True)
    return response


def staff_page(view: Callable | None = None, *, admin: bool = False) -> Callable:
    """A page for signed-in staff (``admin=True``: for the practice's admins only)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.htmx:  # type: ignore[attr-defined]
                    # A part of a page refreshing itself after the session ended: the whole page goes
                    # to the sign-in page, not the sign-in form into the part.
                    back = request.htmx.current_url_abs_path or request.path  # type: ignore[attr-defined]
                    return HttpResponseClientRedirect(f"{reverse('staff-sign-in')}?{urlencode({'next': back})}")
                return redirect_to_login(request.get_full_path())
            staff = current_staff(request)
            if staff is None:
                return no_store(render(request, "staff/no_practice.html", status=403))
            request.staff = staff  # type: ignore[attr-defined]
            if admin and not staff.is_admin:
                return no_store(render(request, "staff/admins_only.html", status=403))
            return no_store(view(request, *args, **kwargs))

        return wrapper

    return decorate(view) if view is not None else decorate


def page_number(raw: str | None) -> int:
    """A page number from a query string: 1 for anything that is not one."""
    try:
        return max(1, min(int(raw or 1), 10_000))
    except ValueError:
        return 1
