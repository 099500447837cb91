from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WorkspaceConfig(AppConfig):
    """An organization's pages (home, dashboard, members, onboarding, invitations) and its
    founding: the app that brings orgs, credits and providers together."""

    default = True
    name = "workspace"

    def ready(self):
        from workspace import health

        health.connect_signals()  # the workers' heartbeat, for /readyz/


class NerStudioAdminConfig(admin_apps.AdminConfig):
    """The Django admin with NER Studio's own site (workspace/admin_site.py), which opens it to
    organization admins; INSTALLED_APPS names this class."""

    default = False  # "workspace" alone means WorkspaceConfig
    default_site = "workspace.admin_site.NerStudioAdminSite"
