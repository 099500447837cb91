from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from orgs.admin import OrgScopedAdmin
from providers import services
from providers.models import Provider, ProviderAttempt


class ListField(forms.CharField):
    """A JSON list edited as comma-separated text."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [part.strip() for part in (value or "").split(",") if part.strip()]


class ProviderAdminForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave blank to keep the current key.",
    )
    clear_api_key = forms.BooleanField(
        required=False, label="Remove the stored key (use the platform key from the environment)"
    )
    aspect_ratios = ListField(
        required=False, help_text="Comma-separated; blank: all the model supports."
    )
    quality_levels = ListField(
        required=False, help_text="Comma-separated; blank: all the model supports."
    )

    class Meta:
        model = Provider
        fields = [
            "org", "name", "adapter", "model_id", "base_url", "api_key", "enabled", "priority",
            "timeout_seconds", "options", "is_default", "credit_cost", "aspect_ratios",
            "default_aspect_ratio", "quality_levels", "default_quality", "max_product_images",
            "max_reference_images",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.api_key if self.instance.pk else ""
        if stored:
            self.fields["api_key"].help_text = (
                f"Current key: {self.instance.masked_api_key}. Stored encrypted and never shown "
                "again. Leave blank to keep it."
            )
        elif "api_key" in self.fields:
            platform = self.instance.pk and self.instance.platform_key()
            self.fields["api_key"].help_text = (
                "No key stored: the platform key from the environment is used."
                if platform
                else "No key stored and no platform key set: calls will be refused."
            )

    def _post_clean(self):
        new_key = self.cleaned_data.get("api_key")
        if self.cleaned_data.get("clear_api_key"):
            self.cleaned_data["api_key"] = ""
        elif not new_key and self.instance.pk:
            self.cleaned_data["api_key"] = Provider.objects.get(pk=self.instance.pk).api_key
        super()._post_clean()


@admin.register(Provider)
class ProviderAdmin(OrgScopedAdmin):
    form = ProviderAdminForm
    org_admin_can_add = True
    org_admin_can_delete = True
    list_display = [
        "name", "kind", "adapter_label", "enabled", "priority", "is_default", "credit_cost",
        "key_status", "health",
    ]  # fmt: skip
    list_editable = ["enabled", "priority"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "model_id"]
    ordering = ["kind", "priority", "pk"]
    actions = ["test_connections", "make_default"]
    readonly_fields = ["kind", "public_id", "updated_at", "health_detail"]
    change_form_template = "admin/providers/provider/change_form.html"

    def get_fieldsets(self, request, obj=None):
        general = ["name", "adapter", "kind", "model_id", "base_url", "api_key", "clear_api_key",
                   "enabled", "priority", "timeout_seconds", "options"]  # fmt: skip
        if request.user.is_superuser:
            general.insert(0, "org")
        image = ["is_default", "credit_cost", "aspect_ratios", "default_aspect_ratio",
                 "quality_levels", "default_quality", "max_product_images",
                 "max_reference_images"]  # fmt: skip
        sets = [(None, {"fields": general})]
        if obj is None or obj.kind == "image":
            sets.append(("Image model", {"fields": image}))
        if obj is not None:
            sets.append(("Health (last 24 hours)", {"fields": ["health_detail", "updated_at"]}))
        return sets

    def get_exclude(self, request, obj=None):
        return None if request.user.is_superuser else ["org"]

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and not change:
            obj.org = self._admin_org(request)
        super().save_model(request, obj, form, change)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        self._health = services.provider_health(changelist.result_list)
        return changelist

    @admin.display(description="Adapter")
    def adapter_label(self, obj):
        return obj.adapter_label

    @admin.display(description="API key")
    def key_status(self, obj):
        if obj.api_key:
            return obj.masked_api_key
        return "platform key" if obj.platform_key() else ("—" if obj.has_key else "missing")

    @admin.display(description="Health")
    def health(self, obj):
        return health_summary(getattr(self, "_health", {}).get(obj.pk))

    @admin.display(description="Health")
    def health_detail(self, obj):
        if not obj.pk:
            return "—"
        h = services.provider_health([obj])[obj.pk]
        text = health_summary(h)
        if h.last_error:
            return format_html("{}<br>Last error ({}): {}", text, h.last_error_at, h.last_error)
        return text

    @admin.action(description="Test the connection of the selected providers")
    def test_connections(self, request, queryset):
        for provider in queryset:
            services.test_connection_with_message(request, provider)

    @admin.action(description="Make the selected image model the default")
    def make_default(self, request, queryset):
        if queryset.count() != 1 or queryset.first().kind != "image":
            self.message_user(request, "Select exactly one image model.", messages.ERROR)
            return
        provider = queryset.first()
        if not provider.enabled:
            self.message_user(request, "Enable the model first.", messages.ERROR)
            return
        provider.is_default = True
        provider.save()
        self.message_user(request, f"{provider} is now the default image model.", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="providers_provider_test_connection",
            ),
            *super().get_urls(),
        ]

    def test_connection_view(self, request, object_id):
        provider = get_object_or_404(self.get_queryset(request), pk=object_id)
        if request.method == "POST":
            services.test_connection_with_message(request, provider)
        return redirect(reverse("admin:providers_provider_change", args=[provider.pk]))


def health_summary(h) -> str:
    if h is None or not h.calls:
        text = "no calls yet"
    else:
        text = f"{h.success_rate:.0%} of {h.calls}"
        if h.p50_ms is not None:
            text += f" · p50 {h.p50_ms} ms · p95 {h.p95_ms} ms"
    if h is not None and h.cooldown_seconds:
        text += f" · cooling down {h.cooldown_seconds:.0f} s"
    return text


@admin.register(ProviderAttempt)
class ProviderAttemptAdmin(OrgScopedAdmin):
    org_field = "provider__org"
    list_display = ["created_at", "provider", "purpose", "outcome", "latency_ms", "error"]
    list_filter = ["outcome", "purpose"]
    list_select_related = ["provider"]
    readonly_fields = ["provider", "purpose", "outcome", "latency_ms", "error", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False  # a record of what happened
