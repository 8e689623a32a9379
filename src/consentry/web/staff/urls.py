from django.urls import include, path

from . import accounts, patients, send

urlpatterns = [
    path("account/sign-in", accounts.sign_in, name="staff-sign-in"),
    path("account/sign-out", accounts.sign_out, name="staff-sign-out"),
    path("account/reset", accounts.reset_password, name="staff-reset"),
    path("account/set-password/<uidb64>/<token>/", accounts.set_password, name="staff-set-password"),
    path("account/password-set", accounts.password_set, name="staff-password-set"),
    path("account/practice", accounts.switch_practice, name="staff-switch-practice"),
    path("patients/", patients.patient_list, name="staff-patients"),
    path("patients/<uuid:patient_id>/", patients.patient_detail, name="staff-patient"),
    path("patients/<uuid:patient_id>/send", send.send_to_patient, name="staff-patient-send"),
    path("patients/<uuid:patient_id>/opt-in-email", patients.send_opt_in_email, name="staff-patient-opt-in-email"),
    # Each of these screens lists its own paths.
    path("", include("consentry.web.staff.inbox")),
    path("", include("consentry.web.staff.blocks")),
    path("", include("consentry.web.staff.recalls")),
]
