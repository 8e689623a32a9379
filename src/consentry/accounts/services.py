"""Staff accounts: create a staff user at a practice, invite one, reset a password, name the actor.

Passwords are set by their owner only: through a one-time link (``set_password_url``) made from
Django's password-reset tokens, which stop working once the password is set or after
``PASSWORD_RESET_TIMEOUT``. The links go out through the practice's own email provider.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from consentry import text
from consentry.errors import InvalidInput
from consentry.patients.addresses import normalize_email
from consentry.patients.models import Practice
from consentry.providers.base import Outbound, ProviderError, provider_for
from consentry.vocabulary import Role

from .models import Membership, PasswordResetSent

log = logging.getLogger("consentry.accounts")


def staff_actor(user: User) -> str:
    """How the ledger and the delivery history name a change made by this staff user."""
    return f"staff:{user.pk}"


def base_url(request=None) -> str:
    """Where links in staff emails point: the public URL, else the address this request came to."""
    if settings.CONSENTRY_PUBLIC_URL:
        return settings.CONSENTRY_PUBLIC_URL
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return "http://127.0.0.1:8000"


def set_password_url(user: User, base: str) -> str:
    """A one-time link to choose a password: it stops working once the password is set."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return base + reverse("staff-set-password", kwargs={"uidb64": uid, "token": token})


@dataclass(frozen=True)
class StaffAccount:
    user: User
    membership: Membership
    created: bool  # a new user; else an existing one, given (or re-given) a role at this practice
    set_password_url: str  # a link to choose a password, when the user has none yet


def _clean_role(role: str) -> Role:
    if role not in set(Role):
        raise InvalidInput("role", f"must be one of {', '.join(Role)}")
    return Role(role)


def _clean_password(password: str, user=None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput("password", " ".join(exc.messages)) from exc


@transaction.atomic
def create_staff(
    *, practice: Practice, email: str, role: str, password: str | None = None, name: str = "", base: str = ""
) -> StaffAccount:
    """Give this email address a role at the practice, creating the user when it is new.

    A new user without a password gets a one-time link to choose one. An existing user keeps
    their password: giving one for them is refused, so nobody's password changes behind them.
    """
    email = normalize_email(email)
    role = _clean_role(role)
    name = " ".join((name or "").split())
    if why := text.problem(name):
        raise InvalidInput("name", why)
    if len(name) > 150:
        raise InvalidInput("name", "is at most 150 characters")
    User = get_user_model()
    user = User.objects.filter(username=email).first()
    created = user is None
    if user is None:
        first, _, last = name.partition(" ")
        user = User(username=email, email=email, first_name=first, last_name=last)
        if password is not None:
            _clean_password(password, user)
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    elif password is not None:
        raise InvalidInput("password", "this person already has an account; they keep their own password")
    membership, _ = Membership.objects.update_or_create(user=user, practice=practice, defaults={"role": role})
    link = "" if user.has_usable_password() else set_password_url(user, base or base_url())
    return StaffAccount(user=user, membership=membership, created=created, set_password_url=link)


def send_staff_email(practice: Practice, to: str, subject: str, body: str) -> None:
    """An account email (an invitation, a password reset) through the practice's email provider."""
    outbound = Outbound(
        practice_id=str(practice.pk),
        delivery_id=0,  # not a patient's delivery: nothing to track
        channel="email",
        to=to,
        sender=practice.email_sender,
        subject=subject,
        body=body,
    )
    provider_for(practice, "email").send(outbound)


def invite_staff(*, practice: Practice, email: str, role: str, invited_by: User, base: str) -> StaffAccount:
    """Create (or give a role to) a staff user and email them the link to sign in or set a password.

    An email that cannot be sent raises ``InvalidInput`` naming the email field; the account stays,
    and inviting again sends a fresh link.
    """
    account = create_staff(practice=practice, email=email, role=role, base=base)
    who = invited_by.get_full_name() or invited_by.get_username()
    if account.set_password_url:
        body = (
            f"{who} invited you to {practice.name} on Consentry as {account.membership.get_role_display()}.\n\n"
            f"Choose your password here (the link works once):\n{account.set_password_url}\n"
        )
    else:
        body = f"{who} gave you access to {practice.name} on Consentry. Sign in at {base}/\n"
    try:
        send_staff_email(practice, account.user.email, f"Your access to {practice.name}", body)
    except ProviderError as exc:
        log.warning("invitation to staff user %s not sent: %s", account.user.pk, exc)
        raise InvalidInput("email", f"the invitation could not be sent ({exc}); try again") from exc
    return account


# One reset email per user per this long, whoever asks.
PASSWORD_RESET_EVERY = timedelta(minutes=10)


@transaction.atomic
def send_password_reset(email: str, base: str) -> None:
    """Email a set-password link to an active staff user with this address; say nothing either way.

    The answer is the same for an address with no account, so the form tells no one who has one.
    """
    try:
        email = normalize_email(email)
    except InvalidInput:
        return
    membership = (
        Membership.objects.select_related("user", "practice")
        .filter(user__username=email, user__is_active=True)
        .order_by("created_at")
        .first()
    )
    if membership is None:
        return
    now = timezone.now()
    last = PasswordResetSent.objects.select_for_update().filter(user=membership.user).first()
    if last is not None and last.sent_at > now - PASSWORD_RESET_EVERY:
        log.info("password reset for staff user %s not sent: one went at %s", membership.user.pk, last.sent_at)
        return
    PasswordResetSent.objects.update_or_create(user=membership.user, defaults={"sent_at": now})
    link = set_password_url(membership.user, base)
    body = (
        "Someone asked to reset the password of your Consentry account. If it was you, choose a new "
        f"password here (the link works once):\n{link}\n\nIf it was not you, ignore this email."
    )
    try:
        send_staff_email(membership.practice, email, "Reset your Consentry password", body)
    except ProviderError as exc:
        log.warning("password reset for staff user %s not sent: %s", membership.user.pk, exc)


def _membership(practice: Practice, user_id: int) -> Membership:
    membership = Membership.objects.select_related("user").filter(practice=practice, user_id=user_id).first()
    if membership is None:
        raise InvalidInput("user", "no such staff user at this practice")
    return membership


def _keeps_an_admin(practice: Practice, without: Membership) -> bool:
    return Membership.objects.filter(practice=practice, role=Role.ADMIN).exclude(pk=without.pk).exists()


@transaction.atomic
def set_role(*, practice: Practice, user_id: int, role: str) -> Membership:
    """Change a staff user's role at the practice; the practice always keeps an admin."""
    role = _clean_role(role)
    membership = _membership(practice, user_id)
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _keeps_an_admin(practice, membership):
        raise InvalidInput("role", "the practice needs at least one admin")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_staff(*, practice: Practice, user_id: int) -> None:
    """Take a staff user off the practice (their account stays for their other practices)."""
    membership = _membership(practice, user_id)
    if membership.role == Role.ADMIN and not _keeps_an_admin(practice, membership):
        raise InvalidInput("user", "the practice needs at least one admin")
    membership.delete()
