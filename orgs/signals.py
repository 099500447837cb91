from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.urls import reverse

from accounts import first_sign_in
from orgs.models import OrgError
from orgs.services import INVITATION_SESSION_KEY, join_invited_organization


@receiver(user_logged_in, dispatch_uid="orgs_join_invited_organization")
def join_invited_organization_on_sign_in(sender, request, user, **kwargs):
    """Join the invitation whose link this browser opened before signing in (or up), and no
    other: other pending invitations wait on the welcome page for the person to accept or
    decline. Exactly one message says so: here, or on the name question when sign-in asks it
    first."""
    token = request.session.pop(INVITATION_SESSION_KEY, None) if request is not None else None
    try:
        membership = join_invited_organization(user=user, token=token)
    except OrgError:  # the invitation page says why, and offers to sign out
        first_sign_in.show_after_sign_in(request, reverse("workspace:invitation", args=[token]))
        return
    if membership and request is not None and not first_sign_in.needs_name(request, user):
        messages.success(
            request,
            f"Welcome! You joined {membership.org} as {membership.get_role_display().lower()}.",
            fail_silently=True,  # sign-ins without the messages middleware (e.g. the test client)
        )
