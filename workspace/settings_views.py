"""Organization settings (admins): the time zone, spending limits, the low-balance warning, and
deleting the organization."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from credits import limits
from orgs.access import org_admin_required
from orgs.models import Membership, OrgError
from workspace import services, tasks
from workspace.forms import MonthlyLimitForm, OrganizationSettingsForm


@org_admin_required
def organization_settings(request):
    form = OrganizationSettingsForm(request.POST or None, instance=request.org)
    if request.method == "POST" and form.is_valid():
        # The form's instance is the request's organization, already changed by validation:
        # the service compares against the stored row.
        stored = type(request.org).objects.get(pk=request.org.pk)
        services.update_organization_settings(org=stored, actor=request.user, **form.cleaned_data)
        messages.success(request, "Settings saved.")
        return redirect("workspace:settings")
    return _render(request, form, status=422 if form.is_bound else 200)


def _render(request, form, status=200):
    memberships = list(
        Membership.objects.filter(org=request.org)
        .select_related("user", "org")
        .order_by("joined_at")
    )
    usage = limits.monthly_usage_by_member(memberships)
    for membership in memberships:
        membership.usage = usage[membership.pk]
    context = {"form": form, "memberships": memberships}
    return render(request, "workspace/settings.html", context, status=status)


@require_POST
@org_admin_required
def set_monthly_limit(request, public_id):
    membership = get_object_or_404(
        Membership.objects.filter(org=request.org).select_related("user", "org"),
        public_id=public_id,
    )
    form = MonthlyLimitForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["monthly_limit"]))
        return redirect("workspace:settings")
    limit = form.cleaned_data["monthly_limit"]
    limits.set_monthly_limit(membership=membership, limit=limit, actor=request.user)
    if limit is None:
        messages.success(request, f"{membership.user} has no monthly limit.")
    else:
        messages.success(request, f"{membership.user} may spend {limits.credits(limit)} a month.")
    return redirect("workspace:settings")


@require_http_methods(["GET", "POST"])
@org_admin_required
def delete_organization(request):
    """Asks for the organization's name, then deletes it (workspace.tasks)."""
    org, error = request.org, None
    if request.method == "POST":
        try:
            tasks.delete_organization(
                org=org, actor=request.user, confirm_name=request.POST.get("confirm_name", "")
            )
        except OrgError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Deleted {org} and everything in it.")
            return redirect("workspace:onboarding")
    context = {
        "error": error,
        "members": Membership.objects.filter(org=org).count(),
        "balance": org.credits.balance,
    }
    return render(
        request, "workspace/delete_organization.html", context, status=422 if error else 200
    )
