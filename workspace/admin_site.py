"""The Django admin, opened to organization admins.

Superusers see everything. An organization admin (no staff flag needed) may sign in and sees only
the models whose ModelAdmin mixes in `OrgScopedAdmin`, filtered to their own organization; platform
models (users, groups, sessions, social apps…) stay hidden because Django's own permission checks
deny them.

Sign-in is Google SSO, so the admin has no login form and no password pages of its own: visitors
are sent to the one sign-in page, and signed-in users who may not use the admin get a 403 (sending
them to sign in again would loop, since the sign-in page sends signed-in users back).
"""

from functools import wraps

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from orgs.access import get_membership


class NerStudioAdminSite(admin.AdminSite):
    site_header = "NER Studio administration"
    site_title = "NER Studio admin"
    index_title = "Organization settings"

    def has_permission(self, request):
        user = request.user
        if not user.is_active or not user.is_authenticated:
            return False
        if user.is_superuser or user.is_staff:
            return True
        membership = get_membership(request)
        return membership is not None and membership.is_admin

    def admin_view(self, view, cacheable=False):
        wrapped = super().admin_view(view, cacheable)

        @wraps(wrapped)
        def inner(request, *args, **kwargs):
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied("Only organization admins can use the admin.")
            return wrapped(request, *args, **kwargs)

        return inner

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            next_url = reverse("admin:index", current_app=self.name)
        if request.user.is_authenticated:
            if not self.has_permission(request):
                raise PermissionDenied("Only organization admins can use the admin.")
            return HttpResponseRedirect(next_url)
        return redirect_to_login(next_url, reverse("account_login"))

    def password_change(self, request, extra_context=None):
        raise Http404("Sign-in is through Google: there are no passwords to change.")

    def password_change_done(self, request, extra_context=None):
        raise Http404("Sign-in is through Google: there are no passwords to change.")
