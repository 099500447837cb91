"""A write that raced the deletion of the person's organization.

Deleting an organization (workspace.services.delete_organization) locks its row and its credit
account. A request that was already past its access check then either finds the organization
deleted (a generation's start checks, under the credit account's lock: OrganizationGone) or fails
on a foreign key once its rows are removed. The person is told what happened and sent to the
welcome page, where they can found or join another, instead of an error page."""

from django.contrib import messages
from django.db import IntegrityError
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django_htmx.http import HttpResponseClientRedirect

from orgs.models import Organization, OrganizationGone


class OrganizationGoneMiddleware(MiddlewareMixin):
    def process_exception(self, request, exception):
        membership = getattr(request, "_membership", None)  # set by orgs.access
        if not isinstance(exception, OrganizationGone | IntegrityError) or membership is None:
            return None
        if not Organization.is_gone(membership.org_id):
            return None  # a real error: left to the error page and the logs
        messages.error(
            request, f"{membership.org.name} was deleted by an admin; what you sent was not saved."
        )
        url = reverse("workspace:onboarding")
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
