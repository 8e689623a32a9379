from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "consentry.providers"
    label = "providers"
