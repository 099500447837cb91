from django.contrib.admin.apps import AdminConfig


class NerStudioAdminConfig(AdminConfig):
    default_site = "nerstudio.admin.NerStudioAdminSite"
