"""What happens between signing in and the first page: the one-time name question, and a page
another app asks to show instead of the usual landing page.

Both live in the session because sign-in spans several requests (the code page, Google's
round trip) and the user may not exist yet when the flow starts.
"""

from django.http import HttpRequest

ASK_NAME_SESSION_KEY = "accounts.ask_name"
AFTER_SIGN_IN_SESSION_KEY = "accounts.after_sign_in"


def ask_for_name(request: HttpRequest, user) -> None:
    """A new account is asked for its display name once, even when Google already gave one."""
    request.session[ASK_NAME_SESSION_KEY] = str(user.pk)


def needs_name(request: HttpRequest, user) -> bool:
    """True until the user has a display name, and once more after signing up (to confirm the
    name Google gave)."""
    return not user.name or request.session.get(ASK_NAME_SESSION_KEY) == str(user.pk)


def name_given(request: HttpRequest) -> None:
    request.session.pop(ASK_NAME_SESSION_KEY, None)


def show_after_sign_in(request: HttpRequest, url: str) -> None:
    """Land on `url` instead of the usual page once this sign-in completes (e.g. an invitation
    that could not be accepted, with the reason)."""
    request.session[AFTER_SIGN_IN_SESSION_KEY] = url


def pop_after_sign_in(request: HttpRequest) -> str | None:
    return request.session.pop(AFTER_SIGN_IN_SESSION_KEY, None)
