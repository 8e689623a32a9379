"""Signing in and out, choosing a password, and the practice switcher."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, LogoutView, PasswordResetConfirmView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from consentry.accounts.services import base_url, send_password_reset

from .access import SESSION_PRACTICE, no_store, staff_page


def normalized_username(value: str) -> str:
    """Staff sign in with their email address, in any case."""
    return (value or "").strip().lower()


def axes_username(request: HttpRequest, credentials: dict | None) -> str:
    """The account a sign-in attempt counts against (django-axes): "Ann@X" and "ann@x" are one."""
    raw = (credentials or {}).get("username") or request.POST.get("username", "")
    return normalized_username(raw)


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True})
    )

    def clean_username(self) -> str:
        return normalized_username(self.cleaned_data["username"])


class SignIn(LoginView):
    template_name = "staff/sign_in.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def dispatch(self, request, *args, **kwargs):
        return no_store(super().dispatch(request, *args, **kwargs))


sign_in = SignIn.as_view()
sign_out = LogoutView.as_view(next_page="staff-sign-in")


class SetPassword(PasswordResetConfirmView):
    template_name = "staff/set_password.html"
    success_url = reverse_lazy("staff-password-set")
    post_reset_login = False


set_password = SetPassword.as_view()


def password_set(request: HttpRequest) -> HttpResponse:
    return no_store(render(request, "staff/password_set.html"))


class ResetForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


def reset_password(request: HttpRequest) -> HttpResponse:
    """Ask for a set-password link. The answer is the same whether or not the address has an account."""
    form = ResetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        send_password_reset(form.cleaned_data["email"], base_url(request))
        return no_store(render(request, "staff/reset_sent.html"))
    return no_store(render(request, "staff/reset.html", {"form": form}))


@require_POST
@staff_page
def switch_practice(request: HttpRequest) -> HttpResponse:
    """Work at another of the user's practices (one they do not belong to is ignored)."""
    chosen = request.POST.get("practice", "")
    if any(str(m.practice_id) == chosen for m in request.staff.memberships):  # type: ignore[attr-defined]
        request.session[SESSION_PRACTICE] = chosen
    return redirect("index")
