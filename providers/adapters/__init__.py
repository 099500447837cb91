"""Framework-free adapters for the AI providers (image jobs, LLM prompt variants, vision).

Django code builds a `base.ProviderConfig` from a provider row, looks the class up in
`registry.ADAPTERS` by slug and calls it; `providers.chain` adds fallback and cooldown.
"""
