"""Providers in the admin, at two levels.

- The platform operator (superusers) edits the catalogue: adapters, model ids, endpoints, prices,
  timeouts and limits of the models the platform offers on its own keys.
- An organization admin chooses from the catalogue (platform models: enable, order, default, who
  sees them, display names) and may add own-key providers (their key, endpoint and price).

Every add, change and removal at either level is recorded in the audit log (AuditedAdmin).
"""

import copy
from typing import ClassVar

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from audit.models import SECRET_FIELDS
from audit.services import changes, record_event
from orgs.admin import OrgScopedAdmin
from providers import services
from providers.adapters.base import Adapter
from providers.adapters.types import Kind
from providers.health import Health, provider_health
from providers.models import (
    IMAGE_SETTINGS,
    KIND_LABELS,
    CatalogueEntry,
    OwnKeyProvider,
    PlatformModel,
    Provider,
    ProviderAttempt,
)
from providers.registry import ADAPTERS


class ListField(forms.CharField):
    """A JSON list edited as comma-separated text."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [part.strip() for part in (value or "").split(",") if part.strip()]


# What a catalogue model or an own-key provider is: its name, and what it calls where.
PROVIDER_FIELDS = ["name", "adapter", "kind", "model_id", "base_url"]
# The adapter's options appear in the admin form as `option_<name>` fields.
OPTION_PREFIX = "option_"


class ProviderSettingsForm(forms.ModelForm):
    """How a provider is called: the image settings, and the options of its adapter.

    The adapter's options form (`Adapter.options_form`) contributes its fields, named
    `option_<name>` (see AdapterOptionsAdmin, which makes this form's class per adapter). Their
    values become the row's `options`, which the row's clean() cleans through that same form.
    """

    option_names: ClassVar[tuple[str, ...]] = ()

    aspect_ratios = ListField(
        required=False, help_text="Comma-separated; blank: all the model supports."
    )
    quality_levels = ListField(
        required=False, help_text="Comma-separated; blank: all the model supports."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.options or {}
        for name in self.option_names:
            self.initial.setdefault(OPTION_PREFIX + name, stored.get(name))

    def clean(self):
        cleaned = super().clean()
        self.instance.options = {
            name: cleaned.get(OPTION_PREFIX + name) for name in self.option_names
        }
        return cleaned


class WebhookSecretForm(ProviderSettingsForm):
    """The provider account's webhook key, written but never shown back; a new one rotates the
    old one out after a grace period (WebhookSecrets.change_webhook_secret)."""

    new_webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="kie.ai → Settings → webhook HMAC key. Stored encrypted, never shown again; "
        "leave blank to keep the current one. After a change the previous key is still accepted "
        "for a day.",
    )
    remove_webhook_secret = forms.BooleanField(
        required=False, label="Remove the webhook secret (callbacks checked by their token only)"
    )

    def save(self, commit=True):
        instance = super().save(commit=False)
        if self.cleaned_data.get("new_webhook_secret"):
            instance.change_webhook_secret(self.cleaned_data["new_webhook_secret"])
        elif self.cleaned_data.get("remove_webhook_secret"):
            instance.change_webhook_secret("")
        if commit:
            instance.save()
        return instance


class AdapterOptionsAdmin:
    """For the ModelAdmin of provider settings: the options of the row's adapter as fields of the
    change form, in their own fieldset. Which adapter: the one in the submitted form, else the
    row's, else `?adapter=` on the add page. All of it is worked out from the request: nothing is
    kept on the (shared) admin instance."""

    # An own-key row sets the account's options (where uploads go); a catalogue model takes them
    # from the platform account (providers.platform), so its form leaves them out.
    edits_account_options: ClassVar[bool] = True

    def options_adapter(self, request, obj) -> type[Adapter] | None:
        if request.method == "POST":
            slug = request.POST.get("adapter", "")
        elif obj is not None:
            slug = obj.adapter
        else:
            slug = request.GET.get("adapter", "")
        return ADAPTERS.get(slug)

    def option_fields(self, request, obj) -> dict[str, forms.Field]:
        adapter = self.options_adapter(request, obj)
        if adapter is None:
            return {}
        form = adapter.options_form
        fields = {}
        for name, field in form.base_fields.items():
            if name in form.account_fields and not self.edits_account_options:
                continue
            field = copy.deepcopy(field)
            field.label = field.label or capfirst(name.replace("_", " "))
            fields[OPTION_PREFIX + name] = field
        return fields

    def options_fieldset(self, request, obj) -> tuple[str, dict]:
        adapter = self.options_adapter(request, obj)
        if adapter is None:
            note = "Choose the adapter, then Save and continue editing to set its options."
            return ("Options", {"fields": (), "description": note})
        fields = list(self.option_fields(request, obj))
        note = (
            "Blank: the provider's default. After changing the adapter, Save and continue "
            "editing to see the new adapter's options (those it shares with the old one are kept)."
            if fields
            else f"{adapter.label} has no options."
        )
        return (f"Options of {adapter.label}", {"fields": fields, "description": note})

    def get_form(self, request, obj=None, change=False, **kwargs):
        fields = self.option_fields(request, obj)
        names = tuple(name.removeprefix(OPTION_PREFIX) for name in fields)
        base = kwargs.get("form", self.form)
        kwargs["form"] = type(base.__name__, (base,), {**fields, "option_names": names})
        return super().get_form(request, obj, change, **kwargs)


# --- The audit log -------------------------------------------------------------------------------

# Bookkeeping, not settings; the previous webhook secret changes with the secret itself.
UNAUDITED_FIELDS = {
    "id",
    "public_id",
    "org",
    "created_at",
    "updated_at",
    "previous_webhook_secret",
    "webhook_secret_changed_at",
}


def audited_settings(obj) -> dict:
    """A catalogue model's or provider row's settings, as the audit log compares them (keys
    included: record_event writes them as "changed" only)."""
    values = {}
    for field in obj._meta.concrete_fields:
        if field.name in UNAUDITED_FIELDS:
            continue
        if field.is_relation:
            related = getattr(obj, field.name)
            values[field.name] = str(related) if related is not None else None
        else:
            values[field.name] = getattr(obj, field.attname)
    return values


def _set(values: dict) -> dict:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


class AuditedAdmin:
    """Records every add, change and removal made through this admin in the audit log: the
    settings that changed (a price too), with API keys and webhook secrets as "changed" only.
    `audit_subject` names the action: "provider.changed", "catalogue.added"…"""

    audit_subject: ClassVar[str] = "provider"

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            old = audited_settings(type(obj)._base_manager.get(pk=obj.pk)) if change else None
            super().save_model(request, obj, form, change)
            self.record(request, obj, old, audited_settings(obj))

    def delete_model(self, request, obj):
        with transaction.atomic():
            self.record(request, obj, audited_settings(obj), None)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self.record(request, obj, audited_settings(obj), None)
            super().delete_queryset(request, queryset)

    def record(self, request, obj, old: dict | None, new: dict | None) -> None:
        """One event for `obj` going from settings `old` to `new` (None: it did not exist)."""
        if old is None:
            verb, before, after = "added", None, _set(new or {})
        elif new is None:
            verb, before, after = "removed", _set(old), None
        else:
            verb, (before, after) = "changed", changes(old, new)
            if not after:
                return
        record_event(
            actor=request.user,
            action=f"{self.audit_subject}.{verb}",
            org=obj.org if self.audit_subject == "provider" else None,
            target=obj,
            before=before,
            after=after,
            secret_fields=SECRET_FIELDS,
        )


# --- The platform catalogue (superusers) ----------------------------------------------------------


@admin.register(CatalogueEntry)
class CatalogueEntryAdmin(AuditedAdmin, AdapterOptionsAdmin, admin.ModelAdmin):
    """Only superusers: Django's model permissions deny everyone else, org admins included."""

    audit_subject = "catalogue"
    form = WebhookSecretForm
    edits_account_options = False
    list_display = [
        "name",
        "kind",
        "adapter_label",
        "model_id",
        "credit_cost",
        "timeout_seconds",
        "offered",
        "organizations",
        "availability",
    ]
    list_filter = ["kind", "offered"]
    search_fields = ["name", "model_id"]
    readonly_fields = ["kind", "public_id", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        general = [*PROVIDER_FIELDS, "offered", "priority", "timeout_seconds"]
        secret = ["new_webhook_secret", "remove_webhook_secret"]
        return [
            (None, {"fields": general}),
            self.options_fieldset(request, obj),
            ("Image model", {"fields": IMAGE_SETTINGS}),
            ("Callbacks (blank: NERSTUDIO_KIE_WEBHOOK_SECRET)", {"fields": secret}),
        ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(organizations=Count("providers__org"))

    @admin.display(description="Adapter")
    def adapter_label(self, obj):
        return obj.adapter_label

    @admin.display(description="Organizations", ordering="organizations")
    def organizations(self, obj):
        return obj.organizations

    @admin.display(description="Available")
    def availability(self, obj):
        return obj.unavailable_reason() or "yes"


# --- An organization's platform models ------------------------------------------------------------


class HealthColumns:
    """Health and availability columns; health for the whole page is computed once, on the
    objects of this request (no state on the shared ModelAdmin)."""

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        health = provider_health(changelist.result_list)
        for obj in changelist.result_list:
            obj.health = health[obj.pk]
        return changelist

    @admin.display(description="Status")
    def status(self, obj):
        reason = obj.unavailable_reason()
        if reason:
            return format_html('<span class="errornote-inline">Unavailable: {}</span>', reason)
        return health_summary(getattr(obj, "health", None)) if obj.enabled else "disabled"

    @admin.display(description="Health")
    def health_detail(self, obj):
        if not obj.pk:
            return "—"
        h = provider_health([obj])[obj.pk]
        text = health_summary(h)
        if h.last_error:
            return format_html("{}<br>Last error ({}): {}", text, h.last_error_at, h.last_error)
        return text

    @admin.display(description="Available")
    def availability(self, obj):
        return obj.unavailable_reason() or "yes"


class ProviderRowAdmin(AuditedAdmin, HealthColumns, OrgScopedAdmin):
    org_admin_can_add = True
    org_admin_can_delete = True
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "model_id"]
    ordering = ["kind", "priority", "pk"]
    list_select_related = ["catalogue"]
    actions = ["test_connections", "deep_tests", "make_default"]
    change_form_template = "admin/providers/provider/change_form.html"

    def get_exclude(self, request, obj=None):
        return None if request.user.is_superuser else ["org"]

    def get_deleted_objects(self, objs, request):
        """A provider's record of calls goes with it: an organization admin may not delete
        attempts one by one (ProviderAttemptAdmin), but that must not keep them from removing a
        provider, and with it their organization's API key."""
        deleted, counts, lacking, protected = super().get_deleted_objects(objs, request)
        lacking.discard(ProviderAttempt._meta.verbose_name)
        return deleted, counts, lacking, protected

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and not change:
            obj.org = self._admin_org(request)
        super().save_model(request, obj, form, change)

    @admin.action(description="Test the connection of the selected providers (free)")
    def test_connections(self, request, queryset):
        for provider in queryset.select_related("catalogue"):
            report_connection_test(request, provider)

    @admin.action(description="Deep test: one minimal real call each (see its cost)")
    def deep_tests(self, request, queryset):
        for provider in queryset.select_related("catalogue"):
            report_connection_test(request, provider, deep=True)

    @admin.action(description="Make the selected image model the default")
    def make_default(self, request, queryset):
        if queryset.count() != 1 or queryset.first().kind != Kind.IMAGE:
            self.message_user(request, "Select exactly one image model.", messages.ERROR)
            return
        provider = queryset.first()
        if not provider.enabled:
            self.message_user(request, "Enable the model first.", messages.ERROR)
            return
        old = audited_settings(provider)
        provider.is_default = True
        provider.save()
        self.record(request, provider, old, audited_settings(provider))
        self.message_user(request, f"{provider} is now the default image model.", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_test_connection",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        provider = self.get_object(request, object_id)
        if provider is not None:
            extra_context = {**(extra_context or {}), "deep_test_cost": provider.deep_test_cost}
        return super().change_view(request, object_id, form_url, extra_context)

    def test_connection_view(self, request, object_id):
        provider = get_object_or_404(self.get_queryset(request), pk=object_id)
        if request.method == "POST":
            report_connection_test(request, provider, deep=request.POST.get("deep") == "1")
        opts = self.opts
        return redirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[provider.pk])
        )


class PlatformModelForm(forms.ModelForm):
    class Meta:
        model = PlatformModel
        fields = [
            "org",
            "catalogue",
            "name",
            "enabled",
            "priority",
            "is_default",
            "visible_to_members",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "catalogue" in self.fields:
            self.fields["catalogue"].required = True
            self.fields["catalogue"].queryset = CatalogueEntry.objects.filter(offered=True)
        self.fields["name"].required = False
        self.fields["name"].help_text = "What members see. Blank: the catalogue model's name."

    admin_org = None  # set by the admin for an organization admin's form (see get_form)

    def clean(self):
        cleaned = super().clean()
        entry = cleaned.get("catalogue") or (self.instance.catalogue_id and self.instance.catalogue)
        if entry and not cleaned.get("name"):
            cleaned["name"] = entry.name
        org = cleaned.get("org") or self.admin_org or (self.instance.org_id and self.instance.org)
        taken = Provider.objects.filter(org=org, catalogue=entry).exclude(pk=self.instance.pk)
        if entry and org and taken.exists():
            self.add_error("catalogue", f"{org} already uses {entry}.")
        return cleaned


@admin.register(PlatformModel)
class PlatformModelAdmin(ProviderRowAdmin):
    form = PlatformModelForm
    list_display = [
        "name",
        "kind",
        "catalogue",
        "enabled",
        "priority",
        "is_default",
        "visible_to_members",
        "credit_cost",
        "status",
    ]
    list_editable = ["enabled", "priority", "visible_to_members"]
    platform_fields = ["adapter_label", "kind", "model_id", "credit_cost", "timeout_seconds"]
    platform_image_fields = [
        "aspect_ratios",
        "quality_levels",
        "max_product_images",
        "max_reference_images",
    ]
    readonly_fields = [
        *platform_fields,
        *platform_image_fields,
        "availability",
        "health_detail",
        "updated_at",
    ]

    def get_fieldsets(self, request, obj=None):
        chosen = ["catalogue", "name", "enabled", "priority", "is_default", "visible_to_members"]
        if request.user.is_superuser:
            chosen.insert(0, "org")
        sets = [(None, {"fields": chosen})]
        if obj is not None:
            platform = list(self.platform_fields)
            if obj.kind == Kind.IMAGE:
                platform += self.platform_image_fields
            sets.append(("Set by the platform", {"fields": [*platform, "availability"]}))
            sets.append(("Health (last 24 hours)", {"fields": ["health_detail", "updated_at"]}))
        return sets

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a new class per call
        form.admin_org = None if request.user.is_superuser else self._admin_org(request)
        return form

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        return [*fields, "catalogue"] if obj is not None else fields

    @admin.display(description="Adapter")
    def adapter_label(self, obj):
        return obj.adapter_label


# --- An organization's own-key providers ----------------------------------------------------------


def keyed_adapter_choices():
    """Own keys are for remote services; the offline local providers come from the catalogue."""
    return [
        (
            label,
            [
                (slug, cls.label)
                for slug, cls in ADAPTERS.items()
                if cls.kind == kind and cls.vendor
            ],
        )
        for kind, label in KIND_LABELS.items()
    ]


class OwnKeyProviderForm(WebhookSecretForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again.",
    )

    class Meta:
        model = OwnKeyProvider
        fields = [
            "org",
            "name",
            "adapter",
            "model_id",
            "base_url",
            "api_key",
            "enabled",
            "priority",
            "timeout_seconds",
            "is_default",
            "visible_to_members",
            *IMAGE_SETTINGS,
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["adapter"].choices = keyed_adapter_choices()
        credit_cost = self.fields["credit_cost"]
        credit_cost.help_text = (
            "What an image costs your organization in credits; 0 is allowed with your own key."
        )
        if self.instance.pk and self.instance.api_key:
            self.fields["api_key"].help_text = (
                f"Current key: {self.instance.masked_api_key}. Stored encrypted and never shown "
                "again. Leave blank to keep it."
            )

    def clean_api_key(self):
        """Blank keeps the stored key (which the form never shows)."""
        new_key = self.cleaned_data.get("api_key")
        if not new_key and self.instance.pk:
            return Provider.objects.get(pk=self.instance.pk).api_key
        return new_key


@admin.register(OwnKeyProvider)
class OwnKeyProviderAdmin(AdapterOptionsAdmin, ProviderRowAdmin):
    form = OwnKeyProviderForm
    list_display = [
        "name",
        "kind",
        "adapter_label",
        "enabled",
        "priority",
        "is_default",
        "credit_cost",
        "key_status",
        "status",
    ]
    list_editable = ["enabled", "priority"]
    readonly_fields = ["kind", "public_id", "updated_at", "health_detail"]

    def get_fieldsets(self, request, obj=None):
        general = [*PROVIDER_FIELDS, "api_key", "enabled", "priority", "timeout_seconds"]
        if request.user.is_superuser:
            general.insert(0, "org")
        sets = [(None, {"fields": general}), self.options_fieldset(request, obj)]
        if obj is None or obj.kind == Kind.IMAGE:
            image = ["is_default", "visible_to_members", *IMAGE_SETTINGS]
            sets.append(("Image model", {"fields": image}))
        if obj is None or obj.adapter_class.vendor == "kie":
            sets.append(("Callbacks", {"fields": ["new_webhook_secret", "remove_webhook_secret"]}))
        if obj is not None:
            sets.append(("Health (last 24 hours)", {"fields": ["health_detail", "updated_at"]}))
        return sets

    @admin.display(description="Adapter")
    def adapter_label(self, obj):
        return obj.adapter_label

    @admin.display(description="API key")
    def key_status(self, obj):
        return obj.key_label()


def report_connection_test(request, provider: Provider, *, deep: bool = False) -> None:
    """Run the connection test (or the deep test) and tell the admin what it proved."""
    try:
        result = services.test_connection(provider, deep=deep)
    except services.TooManyDeepTests as refused:
        messages.warning(request, f"{provider}: deep test not run. {refused}")
        return
    test = "deep test" if deep else "connection test"
    verdict = "passed" if result.ok else "failed"
    messages.add_message(
        request,
        messages.SUCCESS if result.ok else messages.ERROR,
        f"{provider}: {test} {verdict} in {result.latency_ms} ms — {result.message}",
    )


def admin_change_url(provider: Provider) -> str:
    model = "platformmodel" if provider.catalogue_id else "ownkeyprovider"
    return reverse(f"admin:providers_{model}_change", args=[provider.pk])


def health_summary(h: Health | None) -> str:
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
