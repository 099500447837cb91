"""Generations in the admin: read-only, like the credits they spent (credits/admin.py)."""

from django.contrib import admin

from credits.admin import ReadOnlyAdmin
from generation.models import Generation


@admin.register(Generation)
class GenerationAdmin(ReadOnlyAdmin):
    list_display = ["short_prompt", "user", "provider_name", "count", "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["prompt"]

    @admin.display(description="Prompt", ordering="prompt")
    def short_prompt(self, obj):
        return obj.prompt if len(obj.prompt) <= 60 else obj.prompt[:59] + "…"
