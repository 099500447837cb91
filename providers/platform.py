"""The platform's own provider accounts: API keys, endpoints and webhook secrets from the
environment. Only the platform operator sets them; organizations use them through catalogue models
(providers.models.CatalogueEntry) and never see or redirect them."""

from dataclasses import dataclass

from django.conf import settings

from lib.egress import endpoint_origins


@dataclass(frozen=True)
class PlatformAccount:
    vendor: str  # "kie", "openai", "gemini": an adapter's `vendor`
    label: str  # "kie.ai"
    api_key: str
    base_url: str
    upload_base_url: str = ""
    webhook_secret: str = ""
    previous_webhook_secret: str = ""  # still accepted while the operator rotates

    @property
    def origins(self) -> frozenset[str]:
        """Where this account's key may be sent: its configured hosts, nowhere else."""
        return endpoint_origins(self.base_url, self.upload_base_url)


def platform_accounts() -> dict[str, PlatformAccount]:
    return {
        vendor: PlatformAccount(vendor=vendor, **account)
        for vendor, account in settings.NERSTUDIO_PLATFORM_ACCOUNTS.items()
    }


def platform_account(vendor: str | None) -> PlatformAccount | None:
    return platform_accounts().get(vendor) if vendor else None
