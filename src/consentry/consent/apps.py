from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consentry.consent"
    label = "consent"
