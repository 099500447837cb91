"""Organization services: every change to orgs, memberships and invitations goes through here."""

import math

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from lib import ratelimit
from lib.tokens import hash_token
from orgs.events import announce
from orgs.models import Invitation, Membership, Organization, OrgError


def verified_emails(user) -> set[str]:
    """The emails a provider (Google) or a sign-in code has proven the user owns, lower-cased."""
    return {
        e.lower()
        for e in EmailAddress.objects.filter(user=user, verified=True).values_list(
            "email", flat=True
        )
    }


# The invitation link a visitor opened, kept across sign-up or sign-in (the emailed code, Google's
# round trip) so that exactly that invitation is accepted when the sign-in completes.
INVITATION_SESSION_KEY = "orgs.invitation_token"

# Invitation emails, new and re-sent, one organization may send per hour (lib.ratelimit).
INVITATION_EMAILS_PER_HOUR = 20


def _memberships_of_email(email: str):
    """Memberships of the account that `email` signs in to: its own address or a verified one."""
    return Membership.objects.filter(
        Q(user__email__iexact=email)
        | Q(user__emailaddress__email__iexact=email, user__emailaddress__verified=True)
    )


def invite_member(*, org: Organization, email: str, role: str, invited_by) -> Invitation:
    """Invite `email`, or re-send the open invitation that already exists for it.

    Someone who belongs to another organization is invited like anyone else: refusing them
    would tell any tenant which addresses use NER Studio. They read at acceptance that they must
    leave their organization first (an account belongs to one)."""
    email = email.strip()
    if _memberships_of_email(email).filter(org=org).exists():
        raise OrgError(f"{email} is already a member of {org}.")
    with transaction.atomic():
        # Lock the organization so concurrent invitations count the pending ones in turn.
        list(Organization.objects.select_for_update().filter(pk=org.pk).values_list("pk"))
        invitation = (
            Invitation.objects.for_org(org).for_email(email).open().select_for_update().first()
        ) or Invitation(org=org, email=email)
        if invitation.pk:  # inviting the address again re-sends its open invitation
            invitation.ensure_resendable()
        elif Invitation.objects.for_org(org).pending().count() >= Invitation.MAX_PENDING_PER_ORG:
            raise OrgError(
                f"{org} already has {Invitation.MAX_PENDING_PER_ORG} pending invitations, the "
                "most allowed. Revoke the ones no longer needed before inviting more people."
            )
        _count_invitation_email(org)
        before = {"role": invitation.role} if invitation.pk else None  # re-sending an open one
        invitation.role = role
        invitation.invited_by = invited_by
        token = invitation.new_token()
        try:
            with transaction.atomic():
                invitation.save()
        except IntegrityError as exc:  # a concurrent invite of the same email won the race
            raise OrgError(f"{email} was invited a moment ago.") from exc
        announce(
            actor=invited_by,
            action="invitation.resent" if before else "invitation.sent",
            org=org,
            target=invitation,
            before=before,
            after={"role": role},
        )
    _send_invitation_email(invitation, token)
    return invitation


def resend_invitation(*, invitation: Invitation, invited_by) -> Invitation:
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().select_related("org").get(pk=invitation.pk)
        )
        if invitation.status not in (Invitation.Status.PENDING, Invitation.Status.EXPIRED):
            raise OrgError("Only open invitations can be re-sent.")
        invitation.ensure_resendable()
        _count_invitation_email(invitation.org)
        invitation.invited_by = invited_by
        token = invitation.new_token()
        invitation.save(update_fields=["token_hash", "sent_at", "expires_at", "invited_by"])
        announce(
            actor=invited_by, action="invitation.resent", org=invitation.org, target=invitation
        )
    _send_invitation_email(invitation, token)
    return invitation


@transaction.atomic
def revoke_invitation(*, invitation: Invitation, actor) -> None:
    updated = Invitation.objects.open().filter(pk=invitation.pk).update(revoked_at=timezone.now())
    if not updated:
        raise OrgError("This invitation was already used, declined or revoked.")
    announce(actor=actor, action="invitation.revoked", org=invitation.org, target=invitation)


def _count_invitation_email(org: Organization) -> None:
    """Count one invitation email against the organization's hourly allowance, or raise OrgError
    once it is spent."""
    limit = INVITATION_EMAILS_PER_HOUR
    if wait := ratelimit.hit(f"invitation-emails:{org.pk}", limit=limit, window=3600):
        minutes = math.ceil(wait / 60)
        raise OrgError(
            f"Your organization has sent {limit} invitation emails this hour, the most allowed. "
            f"You can send more in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def invitation_url(token: str) -> str:
    return settings.NERSTUDIO_PUBLIC_URL + reverse("workspace:invitation", args=[token])


def _send_invitation_email(invitation: Invitation, token: str) -> None:
    """The platform mails on a tenant's behalf, so the subject is fixed and the body names the
    organization only as a quoted name, on one line, beside the inviter's (verified) address
    rather than their self-chosen display name."""
    context = {
        "invitation": invitation,
        "org_name": " ".join(invitation.org.name.split()),
        "inviter_email": invitation.invited_by.email if invitation.invited_by else "",
        "url": invitation_url(token),
    }
    send_mail(
        subject="You're invited to NER Studio",
        message=render_to_string("orgs/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def find_invitation(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("org", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def check_invitation_open(invitation: Invitation) -> None:
    status = invitation.status
    if status == Invitation.Status.ACCEPTED:
        raise OrgError("This invitation has already been used.")
    if status == Invitation.Status.DECLINED:
        raise OrgError("You declined this invitation. Ask an admin to send a new one if you like.")
    if status == Invitation.Status.REVOKED:
        raise OrgError("This invitation was revoked by an admin of the organization.")
    if status == Invitation.Status.EXPIRED:
        raise OrgError("This invitation has expired. Ask an admin to send you a new one.")


def check_invitation_for(invitation: Invitation, user) -> None:
    """Raise OrgError with the reason `user` cannot accept `invitation`."""
    check_invitation_open(invitation)
    membership = Membership.objects.filter(user=user).select_related("org").first()
    if membership:
        if membership.org_id == invitation.org_id:
            raise OrgError(f"You are already a member of {membership.org}.")
        raise OrgError(
            f"You already belong to {membership.org}. An account belongs to one organization: "
            f"leave it first to join {invitation.org}."
        )
    _check_addressed_to(invitation, user)


def _check_addressed_to(invitation: Invitation, user) -> None:
    if invitation.email.lower() not in verified_emails(user):
        raise OrgError(
            f"This invitation was sent to {invitation.email}, but you are signed in as "
            f"{user.email}. Sign out and sign in with {invitation.email} to accept it."
        )


def invitations_for(user):
    """The pending invitations to the user's verified emails: what the welcome page offers to
    accept or decline."""
    return (
        Invitation.objects.pending()
        .for_any_email(verified_emails(user))
        .select_related("org", "invited_by")
        .order_by("-sent_at")
    )


def accept_invitation(*, invitation: Invitation, user) -> Membership:
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        check_invitation_for(invitation, user)
        try:
            with transaction.atomic():
                membership = Membership.objects.create(
                    org_id=invitation.org_id,
                    user=user,
                    role=invitation.role,
                    monthly_limit=invitation.org.default_monthly_limit,
                )
        except IntegrityError as exc:
            raise OrgError("You already belong to an organization.") from exc
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        announce(
            actor=user,
            action="invitation.accepted",
            org=invitation.org,
            target=invitation,
            after={"role": invitation.role},
        )
    return membership


def join_invited_organization(*, user, token: str | None = None) -> Membership | None:
    """On sign-in, join the invitation whose link this browser opened (`token`), and only that
    one: any tenant can invite any address, so an invitation nobody opened never joins anyone
    (the welcome page offers those to accept or decline). Raises OrgError with the reason when
    the opened invitation cannot be accepted."""
    invitation = find_invitation(token) if token else None
    if invitation is None or invitation.accepted_by_id == user.pk:
        return None
    return accept_invitation(invitation=invitation, user=user)  # or OrgError: why not


def decline_invitation(*, invitation: Invitation, user) -> Invitation:
    """The invited person says no: the invitation closes, and its organization's audit log says
    so."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().select_related("org").get(pk=invitation.pk)
        )
        check_invitation_open(invitation)
        _check_addressed_to(invitation, user)
        invitation.declined_at = timezone.now()
        invitation.save(update_fields=["declined_at"])
        announce(actor=user, action="invitation.declined", org=invitation.org, target=invitation)
    return invitation


@transaction.atomic
def change_role(*, membership: Membership, role: str, actor) -> Membership:
    if role not in Membership.Role.values:
        raise OrgError("Unknown role.")
    if role != Membership.Role.ADMIN:
        membership.ensure_not_last_admin()
    old = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).get()
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.refresh_from_db()
    if old != role:
        announce(
            actor=actor,
            action="member.role_changed",
            org=membership.org,
            target=membership,
            before={"role": old},
            after={"role": role},
        )
    return membership


@transaction.atomic
def leave_organization(*, membership: Membership) -> None:
    """A member leaves their organization; the last admin cannot (as they cannot be removed)."""
    membership.ensure_not_last_admin()
    announce(
        actor=membership.user,
        action="member.left",
        org=membership.org,
        target=membership.org,
        before={"role": membership.role},
    )
    membership.delete()


@transaction.atomic
def remove_member(*, membership: Membership, actor) -> None:
    membership.ensure_not_last_admin()
    announce(
        actor=actor,
        action="member.removed",
        org=membership.org,
        target=membership,
        before={"role": membership.role},
    )
    membership.delete()
