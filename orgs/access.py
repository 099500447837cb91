"""The one access layer for org-scoped views.

`org_member_required` resolves the signed-in user's organization (anonymous users go to sign-in,
users without one go to onboarding) and sets `request.org` and `request.membership`.
`org_admin_required` also answers 403 to members. `org_member_or_404` is for file URLs: outsiders
(anonymous visitors, users without an organization) get 404, so a URL reveals nothing about what
exists. Objects are always fetched through `request.org`, so another organization's objects are
404.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect

from orgs.models import Membership


def get_membership(request) -> Membership | None:
    """The user's membership, looked up once per request."""
    if not request.user.is_authenticated:
        return None
    if not hasattr(request, "_membership"):
        membership = Membership.objects.select_related("org").filter(user=request.user).first()
        if membership is not None:
            membership.user = request.user  # the same row: not read again through the membership
        request._membership = membership
    return request._membership


def org_member_required(view=None, *, admin=False):
    def decorator(view_func):
        @wraps(view_func)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = get_membership(request)
            if membership is None:
                return redirect("workspace:onboarding")
            if admin and not membership.is_admin:
                raise PermissionDenied("Only organization admins can do this.")
            request.membership = membership
            request.org = membership.org
            return view_func(request, *args, **kwargs)

        return wrapper

    return decorator(view) if view else decorator


def org_admin_required(view):
    return org_member_required(view, admin=True)


def org_member_or_404(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = get_membership(request)
        if membership is None:
            raise Http404
        request.membership = membership
        request.org = membership.org
        return view(request, *args, **kwargs)

    return wrapper
