from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "consentry.messaging"
    label = "messaging"

    def ready(self):
        from . import email_events

        email_events.connect()
