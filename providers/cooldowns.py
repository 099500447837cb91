"""The process-wide cooldowns of the fallback chains (providers.chain.Cooldowns), kept in the
Django cache: shared by every process when the cache is Redis."""

from collections.abc import Hashable

from django.core.cache import cache

from providers.chain import Cooldowns, CooldownState


class CacheCooldownStore:
    """A chain.CooldownStore in the Django cache."""

    ttl = 3600

    def _key(self, provider_id: Hashable) -> str:
        return f"nerstudio:provider-cooldown:{provider_id}"

    def get(self, provider_id: Hashable) -> CooldownState | None:
        return cache.get(self._key(provider_id))

    def set(self, provider_id: Hashable, state: CooldownState) -> None:
        cache.set(self._key(provider_id), state, self.ttl)

    def delete(self, provider_id: Hashable) -> None:
        cache.delete(self._key(provider_id))


cooldowns = Cooldowns(CacheCooldownStore())
