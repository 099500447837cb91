"""Organization services: every change to orgs, memberships and invitations goes through here."""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

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


def _memberships_of_email(email: str):
    """Memberships of the account that `email` signs in to: its own address or a verified one."""
    return Membership.objects.filter(
        Q(user__email__iexact=email)
        | Q(user__emailaddress__email__iexact=email, user__emailaddress__verified=True)
    )


def invite_member(*, org: Organization, email: str, role: str, invited_by) -> Invitation:
    """Invite `email`, or re-send the open invitation that already exists for it. An account
    belongs to one organization, so someone who already belongs to another is refused here,
    not at the end of their sign-up (without naming that organization)."""
    email = email.strip()
    membership = _memberships_of_email(email).first()
    if membership and membership.org_id == org.pk:
        raise OrgError(f"{email} is already a member of {org}.")
    if membership:
        raise OrgError(
            f"{email} already belongs to another organization on NER Studio, and an account "
            f"belongs to one organization. They can join {org} once they have left it."
        )
    with transaction.atomic():
        invitation = (
            Invitation.objects.for_org(org).for_email(email).open().select_for_update().first()
        ) or Invitation(org=org, email=email)
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
    if invitation.accepted_at or invitation.revoked_at:
        raise OrgError("Only open invitations can be re-sent.")
    invitation.invited_by = invited_by
    token = invitation.new_token()
    with transaction.atomic():
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
        raise OrgError("This invitation was already used or revoked.")
    announce(actor=actor, action="invitation.revoked", org=invitation.org, target=invitation)


def invitation_url(token: str) -> str:
    return settings.NERSTUDIO_PUBLIC_URL + reverse("workspace:invitation", args=[token])


def _send_invitation_email(invitation: Invitation, token: str) -> None:
    context = {
        "invitation": invitation,
        "inviter": invitation.invited_by,
        "url": invitation_url(token),
    }
    send_mail(
        subject=f"You're invited to {invitation.org} on NER Studio",
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
            f"You already belong to {membership.org}. An account belongs to one organization."
        )
    if invitation.email.lower() not in verified_emails(user):
        raise OrgError(
            f"This invitation was sent to {invitation.email}, but you are signed in as "
            f"{user.email}. Sign out and sign in with {invitation.email} to accept it."
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
    """On sign-in, a user without an organization joins the invitation whose link they opened
    (`token`), else the newest pending invitation for one of their verified emails. Raises
    OrgError with the reason when the opened invitation cannot be accepted."""
    has_membership = Membership.objects.filter(user=user).exists()
    invitation = find_invitation(token) if token else None
    if invitation and invitation.accepted_by_id != user.pk:
        return accept_invitation(invitation=invitation, user=user)  # or OrgError: why not
    if has_membership:
        return None
    emails = verified_emails(user)
    if not emails:
        return None
    for_any_email = Q()
    for email in emails:
        for_any_email |= Q(email__iexact=email)
    for invitation in Invitation.objects.pending().filter(for_any_email).order_by("-sent_at"):
        try:
            return accept_invitation(invitation=invitation, user=user)
        except OrgError:
            continue
    return None


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
