"""The remote AI providers' adapters (image jobs, LLM prompt variants, vision), framework-light.

Django code builds a `types.ProviderConfig` from a provider row, looks the class up in
`providers.registry.ADAPTERS` by slug and calls it; `providers.chain` adds fallback and cooldown.
Each adapter declares its options as a small Django form (options.py); nothing here touches
models or settings at import.
"""
