from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "consentry.conversations"
    label = "conversations"
