"""Search text taken straight from a query string (pages without a form for it)."""


def search_text(value: str | None, limit: int) -> str:
    """`value` without NUL characters (PostgreSQL refuses them in a text parameter: a 500),
    trimmed and cut to `limit` characters."""
    return (value or "").replace("\x00", "").strip()[:limit].strip()
