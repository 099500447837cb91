from django.contrib.admin.apps import AdminConfig


class NerStudioAdminConfig(AdminConfig):
    """The Django admin with NER Studio's own site (lib/admin_site.py); INSTALLED_APPS names
    this class. Kept apart from the site: an app config module may not import models."""

    default_site = "lib.admin_site.NerStudioAdminSite"
