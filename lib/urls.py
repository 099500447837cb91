"""Reversing a URL that takes one UUID, for pages that link every item of a list several times.

`reverse()` resolves the URLconf afresh on every call (about 0.15 ms); the gallery's page made
some 200 of them, a fifth of its CPU (gallery: `{% url_for %}`). Here each URL name is reversed
once per script prefix, with a placeholder UUID that is then replaced: the same string
`reverse()` returns.
"""

import functools
import uuid

from django.urls import get_script_prefix, reverse

_PLACEHOLDER = "00000000-0000-4000-8000-00000000abcd"


@functools.cache
def _template(name: str, prefix: str) -> str:
    url = reverse(name, args=[uuid.UUID(_PLACEHOLDER)])
    assert url.count(_PLACEHOLDER) == 1, name
    return url


def uuid_url(name: str, value: uuid.UUID | str) -> str:
    """`reverse(name, args=[value])` for a URL whose one argument is a UUID."""
    value = value if isinstance(value, uuid.UUID) else uuid.UUID(value)  # nothing else gets in
    return _template(name, get_script_prefix()).replace(_PLACEHOLDER, str(value))
