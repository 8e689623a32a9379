from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "consentry.events"
    label = "events"
