from allauth.account.signals import user_signed_up
from django.dispatch import receiver

from accounts.first_sign_in import ask_for_name


@receiver(user_signed_up, dispatch_uid="accounts_ask_for_name_on_first_sign_in")
def ask_for_name_on_first_sign_in(sender, request, user, **kwargs):
    """Sent before the new account's first sign-in completes (after the emailed code, or
    Google's round trip), so that sign-in already knows to ask."""
    if request is not None:
        ask_for_name(request, user)
