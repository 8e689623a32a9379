"""Staff users and the practices they work at.

A staff user is a Django user (signing in with an email address); a ``Membership`` gives them
one role at one practice. A user may work at several practices, with a role at each.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from consentry.patients.models import Practice
from consentry.vocabulary import Role

ROLE_LABELS = {Role.FRONT_DESK: "Front desk", Role.ADMIN: "Admin"}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=[(role.value, label) for role, label in ROLE_LABELS.items()])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "practice"], name="one_membership_per_practice")]

    def __str__(self) -> str:
        return f"{self.user} at {self.practice}: {self.role}"


class PasswordResetSent(models.Model):
    """When a set-password email last went to a user: at most one per ``PASSWORD_RESET_EVERY``, so the
    reset form cannot be used to flood a staff member's inbox."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField()
