from django.apps import AppConfig


class KeywordsConfig(AppConfig):
    name = "consentry.keywords"
    label = "keywords"
