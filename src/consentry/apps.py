from django.apps import AppConfig


class ConsentryConfig(AppConfig):
    name = "consentry"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
