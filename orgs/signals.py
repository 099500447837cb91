from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from orgs.services import join_invited_organization


@receiver(user_logged_in, dispatch_uid="orgs_join_invited_organization")
def join_invited_organization_on_sign_in(sender, request, user, **kwargs):
    membership = join_invited_organization(user=user)
    if membership and request is not None:
        messages.success(
            request,
            f"Welcome! You joined {membership.org} as {membership.get_role_display().lower()}.",
            fail_silently=True,  # sign-ins without the messages middleware (e.g. the test client)
        )
