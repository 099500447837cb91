from django.apps import AppConfig


class CreditsConfig(AppConfig):
    """Each organization's credit pool: the account, its append-only ledger, top-ups, top-up
    requests and usage. Credits move only through credits/services.py."""

    name = "credits"
