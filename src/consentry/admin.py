"""The Django admin at /admin/, for the deployment's operators (superusers) only.

Practice staff never need it: they work in the staff app. The consent ledger is read-only here
as everywhere (the database refuses changes too); accounts and practices can be looked after.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from consentry.accounts.models import Membership
from consentry.consent.models import ConsentEvent
from consentry.patients.models import Practice


class OperatorsAdminSite(admin.AdminSite):
    site_header = "Consentry operators"
    site_title = "Consentry operators"

    def has_permission(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


admin_site = OperatorsAdminSite(name="admin")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(User, site=admin_site)
class StaffUserAdmin(UserAdmin):
    inlines = [MembershipInline]


@admin.register(Practice, site=admin_site)
class PracticeAdmin(admin.ModelAdmin):
    list_display = ("name", "texting_number", "timezone", "created_at")
    search_fields = ("name", "texting_number")
    exclude = ("twilio_auth_token",)  # write-only: set through the settings page or the API


@admin.register(ConsentEvent, site=admin_site)
class ConsentEventAdmin(admin.ModelAdmin):
    """The ledger, to read: nothing can be added, changed or deleted."""

    list_display = ("seq", "practice", "subject", "address", "state", "source", "actor", "created_at")
    list_filter = ("subject", "source")
    search_fields = ("address", "actor")
    ordering = ("-created_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
