"""Account services: changes to a user's own profile."""

from accounts.models import User


def set_display_name(*, user: User, name: str) -> User:
    user.name = name.strip()[: User._meta.get_field("name").max_length]
    user.save(update_fields=["name"])
    return user
