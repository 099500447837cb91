"""Provider API keys encrypted at rest with rotatable Fernet keys from the environment."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    """The first key encrypts; every key decrypts, so a new key can be prepended to rotate."""
    return _fernet(tuple(settings.NERSTUDIO_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never fall back to returning ciphertext as if it were a key.
        raise ImproperlyConfigured(
            "A stored provider API key cannot be decrypted: NERSTUDIO_ENCRYPTION_KEYS no longer "
            "contains the key it was encrypted with."
        ) from None


class EncryptedTextField(models.TextField):
    """Plain text in Python, Fernet ciphertext in the database; empty stays empty."""

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


def mask_secret(value: str) -> str:
    """What admins see of a stored key: never more than its last four characters."""
    if not value:
        return ""
    return "••••••••" + (value[-4:] if len(value) >= 12 else "")
