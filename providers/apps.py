from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"

    def ready(self):
        from providers import signals  # noqa: F401
        from providers.adapters.registry import ADAPTERS
        from providers.local_service import LocalImageService

        # The local image provider needs storage and background tasks, which only exist here.
        ADAPTERS[LocalImageService.slug] = LocalImageService
