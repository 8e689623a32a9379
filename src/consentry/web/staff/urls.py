from django.urls import path

from . import accounts

urlpatterns = [
    path("account/sign-in", accounts.sign_in, name="staff-sign-in"),
    path("account/sign-out", accounts.sign_out, name="staff-sign-out"),
    path("account/reset", accounts.reset_password, name="staff-reset"),
    path("account/set-password/<uidb64>/<token>/", accounts.set_password, name="staff-set-password"),
    path("account/password-set", accounts.password_set, name="staff-password-set"),
    path("account/practice", accounts.switch_practice, name="staff-switch-practice"),
]
