from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "consentry.patients"
    label = "patients"
