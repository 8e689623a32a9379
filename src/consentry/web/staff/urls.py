from django.urls import include, path

from . import accounts, audit, broadcasts, patients, send, settings

urlpatterns = [
    path("account/sign-in", accounts.sign_in, name="staff-sign-in"),
    path("account/sign-out", accounts.sign_out, name="staff-sign-out"),
    path("account/reset", accounts.reset_password, name="staff-reset"),
    path("account/set-password/<uidb64>/<token>/", accounts.set_password, name="staff-set-password"),
    path("account/password-set", accounts.password_set, name="staff-password-set"),
    path("account/practice", accounts.switch_practice, name="staff-switch-practice"),
    path("patients/", patients.patient_list, name="staff-patients"),
    path("patients/<uuid:patient_id>/", patients.patient_detail, name="staff-patient"),
    path("patients/<uuid:patient_id>/edit", patients.patient_edit, name="staff-patient-edit"),
    path("patients/<uuid:patient_id>/send", send.send_to_patient, name="staff-patient-send"),
    path("patients/<uuid:patient_id>/opt-in-email", patients.send_opt_in_email, name="staff-patient-opt-in-email"),
    path("settings/", settings.settings_page, name="staff-settings"),
    path("settings/practice", settings.save_practice, name="staff-settings-practice"),
    path("settings/connection", settings.save_connection, name="staff-settings-connection"),
    path("settings/notifications", settings.save_notifications, name="staff-settings-notifications"),
    path("settings/staff/invite", settings.invite, name="staff-settings-invite"),
    path("settings/staff/<int:user_id>/role", settings.change_role, name="staff-settings-role"),
    path("settings/staff/<int:user_id>/remove", settings.remove, name="staff-settings-remove"),
    path("settings/keys", settings.create_key, name="staff-settings-create-key"),
    path("settings/keys/<int:key_id>/revoke", settings.revoke_key, name="staff-settings-revoke-key"),
    path("broadcasts/", broadcasts.broadcast_list, name="staff-broadcasts"),
    path("broadcasts/new", broadcasts.broadcast_new, name="staff-broadcast-new"),
    path("broadcasts/<uuid:message_id>/", broadcasts.broadcast_report, name="staff-broadcast"),
    path("broadcasts/<uuid:message_id>/deliveries.csv", broadcasts.broadcast_export, name="staff-broadcast-export"),
    path("audit/", audit.audit, name="staff-audit"),
    path("audit/verify", audit.verify, name="staff-audit-verify"),
    path("audit/export.csv", audit.export, name="staff-audit-export"),
    # Each of these screens lists its own paths.
    path("", include("consentry.web.staff.inbox")),
    path("", include("consentry.web.staff.blocks")),
    path("", include("consentry.web.staff.recalls")),
    path("", include("consentry.web.staff.locations")),
    path("", include("consentry.web.staff.imports")),
]
