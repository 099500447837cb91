from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts import first_sign_in
from accounts.forms import DisplayNameForm
from accounts.models import User
from accounts.services import set_display_name
from credits import exports
from credits import limits as credit_limits
from credits import services as credit_services
from credits.models import CreditAccount, TopUpRequest
from credits.usage import Period, Usage, period_days, recent_movements, usage_summary
from lib.streaming import on_its_own_thread
from orgs import services
from orgs.access import get_membership, org_admin_required, org_member_required
from orgs.models import Invitation, Membership, OrgError
from workspace import services as workspace_services
from workspace.forms import InviteForm, OrganizationForm, RoleForm, TopUpRequestForm


@org_member_required
def home(request):
    if request.membership.is_admin:
        return redirect("workspace:dashboard")
    return redirect("generation:generate")


@org_admin_required
def dashboard(request):
    return _render_dashboard(request, TopUpRequestForm())


def _render_dashboard(request, top_up_form, status=200, export_form=None):
    """The dashboard for `?days=` (7, 30 or 90; anything else is 30) in the organization's days."""
    org = request.org
    days = period_days(request.GET.get("days"))
    usage = Usage(org, Period.last_days(org, days))
    export_form = export_form or exports.ExportForm(org=org, days=days)
    counts = org.memberships.aggregate(
        members=Count("pk"), admins=Count("pk", filter=Q(role=Membership.Role.ADMIN))
    )
    context = {
        "account": CreditAccount.objects.filter(org=org).first() or CreditAccount(org=org),
        "ledger_lines": recent_movements(org),
        "top_up_form": top_up_form,
        "top_up_requests": TopUpRequest.objects.for_org(org).select_related("requested_by")[:5],
        "usage": usage,
        "days": days,
        "period_choices": [7, 30, 90],
        "export_form": export_form,
        "member_count": counts["members"],
        "admin_count": counts["admins"],
        "pending_invitations": org.invitations.pending().count(),
        "recent_members": org.memberships.select_related("user").order_by("-joined_at")[:5],
    }
    return render(request, "workspace/dashboard.html", context, status=status)


@require_safe
@org_admin_required
def export_ledger(request):
    """The ledger of `since`..`until` (the dashboard's period by default) as CSV."""
    return _export(request, "ledger", exports.ledger_rows)


@require_safe
@org_admin_required
def export_usage(request):
    """Usage per member, per model and per day of `since`..`until` as one CSV."""
    return _export(request, "usage", exports.usage_rows)


def _export(request, what, rows):
    form = exports.ExportForm(
        request.GET, org=request.org, days=period_days(request.GET.get("days"))
    )
    if not form.is_valid():
        return _render_dashboard(request, TopUpRequestForm(), status=400, export_form=form)
    chunks = exports.csv_chunks(rows(request.org, form.period))
    response = StreamingHttpResponse(
        on_its_own_thread(chunks) if isinstance(request, ASGIRequest) else chunks,
        content_type="text/csv; charset=utf-8",
    )
    name = exports.filename(request.org, what, form.period)
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@org_admin_required
def request_credits(request):
    """Ask the platform for credits: organization admins never add credits themselves."""
    form = TopUpRequestForm(request.POST)
    if form.is_valid():
        try:
            top_up_request = credit_services.request_top_up(
                org=request.org, user=request.user, **form.cleaned_data
            )
        except credit_services.TopUpRequestError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Requested {credit_limits.credits(top_up_request.amount)}. The platform will "
                "review it; its status is shown below.",
            )
            return redirect("workspace:dashboard")
    return _render_dashboard(request, form, status=422)


@require_POST
@org_admin_required
def withdraw_credit_request(request, public_id):
    top_up_request = get_object_or_404(
        TopUpRequest.objects.for_org(request.org), public_id=public_id
    )
    try:
        credit_services.withdraw_top_up_request(top_up_request=top_up_request, user=request.user)
    except credit_services.TopUpRequestError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"Withdrew the request for {credit_limits.credits(top_up_request.amount)}.",
        )
    return redirect("workspace:dashboard")


@login_required
def onboarding(request):
    """The first sign-in step: the user's display name, asked once (prefilled when Google gave
    one), and, without an organization, the pending invitations to their verified emails (to
    accept or decline) beside a new organization to name and administer."""
    membership = get_membership(request)
    ask_name = first_sign_in.needs_name(request, request.user)
    if membership and not ask_name:
        return redirect("home")
    data = request.POST if request.method == "POST" else None
    name_form = DisplayNameForm(data, initial={"display_name": request.user.name})
    org_form = None if membership else OrganizationForm(data)
    asked = [f for f in (name_form if ask_name else None, org_form) if f is not None]
    next_url = _safe_next(request)
    if data is not None and all([f.is_valid() for f in asked]):  # every form shows its errors
        if ask_name:
            set_display_name(user=request.user, name=name_form.cleaned_data["display_name"])
            first_sign_in.name_given(request)
        if membership:
            messages.success(
                request,
                f"Welcome to {membership.org}, {request.user.get_short_name()}! You joined as "
                f"{membership.get_role_display().lower()}.",
            )
            return redirect(next_url or "home")
        try:
            org = workspace_services.create_organization(
                user=request.user, name=org_form.cleaned_data["name"]
            )
        except OrgError as exc:
            messages.error(request, str(exc))
            return redirect("home")
        messages.success(request, f"{org} is ready. Invite your team from Members.")
        return redirect("home")
    context = {
        "name_form": name_form if ask_name else None,
        "form": org_form,
        "joined": membership,
        "invitations": [] if membership else list(services.invitations_for(request.user)),
        "next": next_url,
    }
    return render(request, "workspace/onboarding.html", context)


@require_POST
@login_required
def accept_invitation(request, public_id):
    """Accept one of the invitations the welcome page offers (to the user's verified emails)."""
    invitation = get_object_or_404(services.invitations_for(request.user), public_id=public_id)
    try:
        membership = services.accept_invitation(invitation=invitation, user=request.user)
    except OrgError as exc:
        messages.error(request, str(exc))
        return redirect("workspace:onboarding")
    if first_sign_in.needs_name(request, request.user):
        return redirect("workspace:onboarding")  # the name question, then the welcome
    messages.success(request, f"Welcome to {membership.org}!")
    return redirect("home")


@require_POST
@login_required
def decline_invitation(request, public_id):
    invitation = get_object_or_404(services.invitations_for(request.user), public_id=public_id)
    try:
        services.decline_invitation(invitation=invitation, user=request.user)
    except OrgError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"You declined the invitation to {invitation.org}.")
    return redirect("workspace:onboarding")


@require_http_methods(["GET", "POST"])
@org_member_required
def leave_organization(request):
    """Asks to confirm, then leaves; `next` (e.g. the invitation that asked for it) follows."""
    membership = request.membership
    if request.method == "POST":
        try:
            services.leave_organization(membership=membership)
        except OrgError as exc:
            messages.error(request, str(exc))
            return redirect("workspace:leave")
        messages.success(request, f"You left {membership.org}.")
        return redirect(_safe_next(request) or "workspace:onboarding")
    context = {
        "last_admin": membership.LAST_ADMIN_ERROR if membership.is_last_admin() else None,
        "next": _safe_next(request),
    }
    return render(request, "workspace/leave.html", context)


def _safe_next(request) -> str | None:
    url = request.POST.get("next") or request.GET.get("next")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def invitation(request, token):
    """The link in an invitation email. A visitor without an account creates one right here
    (development sign-in code or Google) and someone with one signs in; the token waits in the
    session and the sign-in accepts exactly this invitation. Signed-in users accept with a
    button, or read why they cannot."""
    invitation = services.find_invitation(token)
    if invitation is None:
        return render(request, "workspace/invitation.html", {"invalid": True}, status=404)
    if request.user.is_authenticated and invitation.accepted_by_id == request.user.pk:
        return redirect("home")  # joined already, e.g. while signing up from this link
    problem = None
    try:
        if not request.user.is_authenticated:
            services.check_invitation_open(invitation)
            request.session[services.INVITATION_SESSION_KEY] = token
        else:
            services.check_invitation_for(invitation, request.user)
            if request.method == "POST":
                membership = services.accept_invitation(invitation=invitation, user=request.user)
                messages.success(request, f"Welcome to {membership.org}!")
                return redirect("home")
    except OrgError as exc:
        problem = str(exc)
    status = 200 if problem is None else 410 if not invitation.is_pending else 403
    context = {
        "invitation": invitation,
        "problem": problem,
        "has_account": not request.user.is_authenticated
        and User.objects.filter(email__iexact=invitation.email).exists(),
    }
    return render(request, "workspace/invitation.html", context, status=status)


@org_admin_required
def members(request):
    return _render_members(request, InviteForm())


def _render_members(request, invite_form, status=200):
    org = request.org
    usage = {row["actor_id"]: row for row in usage_summary(org).by_member}
    memberships = list(Membership.objects.for_org(org).select_related("user").order_by("joined_at"))
    for membership in memberships:
        membership.usage = usage.get(membership.user_id)
    context = {
        "memberships": memberships,
        "invitations": Invitation.objects.for_org(org)
        .open()
        .select_related("invited_by")
        .order_by("-sent_at"),
        "invite_form": invite_form,
        "roles": Membership.Role.choices,
    }
    return render(request, "workspace/members.html", context, status=status)


@require_http_methods(["GET", "POST"])
@org_admin_required
def invite(request):
    """A refused invitation is shown in place with what was typed; the address bar reads
    Members (HX-Replace-Url for the boosted form), and this URL answers a GET (a reload, a
    bookmark) with the Members page."""
    if request.method == "GET":
        return redirect("workspace:members")
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.invite_member(
                org=request.org, invited_by=request.user, **form.cleaned_data
            )
        except OrgError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("workspace:members")
    response = _render_members(request, form, status=422)
    response["HX-Replace-Url"] = reverse("workspace:members")
    return response


@require_POST
@org_admin_required
def change_role(request, public_id):
    membership = get_object_or_404(Membership.objects.for_org(request.org), public_id=public_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("workspace:members")
    try:
        membership = services.change_role(
            membership=membership, role=form.cleaned_data["role"], actor=request.user
        )
    except OrgError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{membership.user} is now {membership.get_role_display().lower()}."
        )
    return redirect("workspace:members")


@require_POST
@org_admin_required
def remove_member(request, public_id):
    membership = get_object_or_404(
        Membership.objects.for_org(request.org).select_related("user"), public_id=public_id
    )
    try:
        services.remove_member(membership=membership, actor=request.user)
    except OrgError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user} was removed from {request.org}.")
    return redirect("workspace:members")


@require_POST
@org_admin_required
def resend_invitation(request, public_id):
    invitation = get_object_or_404(Invitation.objects.for_org(request.org), public_id=public_id)
    try:
        services.resend_invitation(invitation=invitation, invited_by=request.user)
    except OrgError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invitation re-sent to {invitation.email}.")
    return redirect("workspace:members")


@require_POST
@org_admin_required
def revoke_invitation(request, public_id):
    invitation = get_object_or_404(Invitation.objects.for_org(request.org), public_id=public_id)
    try:
        services.revoke_invitation(invitation=invitation, actor=request.user)
    except OrgError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("workspace:members")
