"""The Django admin, opened to organization admins.

Superusers see everything. An organization admin (no staff flag needed) may sign in and sees only
the models whose ModelAdmin mixes in `OrgScopedAdmin`, filtered to their own organization; platform
models (users, groups, sessions, social apps…) stay hidden because Django's own permission checks
deny them.
"""

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

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

    def login(self, request, extra_context=None):
        """Sign-in is Google SSO: send the admin's login page to the one sign-in page."""
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect_to_login(next_url, reverse("account_login"))

