from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organization"

    def ready(self):
        from orgs import signals  # noqa: F401
