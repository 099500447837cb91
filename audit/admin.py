"""The whole audit log, for platform operators (superusers) only, and read-only: no one adds,
changes or deletes an event here (the model refuses it too). Organization admins read their own
organization's events on the Audit log page (audit.views)."""

from django.contrib import admin
from django.utils.html import format_html_join

from audit.models import AuditEvent
from orgs.admin import ReadOnly


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "org", "target_label", "changes"]
    list_filter = ["action", "org"]
    search_fields = ["actor_label", "target_label"]
    list_select_related = ["org"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "org",
        "actor",
        "actor_label",
        "actor_is_operator",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "changes",
        "before",
        "after",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # An event outlives its organization and actor (no database constraint): a missing one
        # reads as empty rather than failing the page.
        return super().get_queryset(request).select_related("org", "actor")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    @admin.display(description="Change")
    def changes(self, obj):
        return format_html_join("", "{}<br>", ((line,) for line in obj.change_lines)) or "—"
