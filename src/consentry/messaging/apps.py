from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "consentry.messaging"
    label = "messaging"
