import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import capfirst

from lib.egress import EgressRefused, check_url, origin
from orgs.models import Organization
from providers.adapters.types import Kind, ProviderConfig
from providers.chain import Outcome
from providers.fields import EncryptedTextField, mask_secret
from providers.platform import platform_account
from providers.registry import ADAPTERS, build_adapter, get_adapter_class

# How the admin names each kind and outcome. The values are defined once, in Kind and Outcome;
# keyed by plain value so that choices (and migrations) hold strings, not the enums.
KIND_LABELS = {
    Kind.IMAGE.value: "Image generation",
    Kind.LLM.value: "Prompt writer (LLM)",
    Kind.VISION.value: "Reference analysis (vision)",
}
OUTCOME_LABELS = {
    Outcome.SUCCESS.value: "Success",
    Outcome.RETRYABLE.value: "Retryable error",
    Outcome.PERMANENT.value: "Permanent error",
    Outcome.INVALID_OUTPUT.value: "Invalid output",
    Outcome.SKIPPED.value: "Skipped",
}


def adapter_choices():
    return [
        (label, [(slug, cls.label) for slug, cls in ADAPTERS.items() if cls.kind == kind])
        for kind, label in KIND_LABELS.items()
    ]


# Every call to a provider is bounded: per attempt, at least 1 and at most 120 seconds.
MIN_TIMEOUT, MAX_TIMEOUT = 1, 120
# References per generation an own-key image model may take: each is one vision call, which may
# run on the platform's key (and the upload limit, NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES, is sized
# for 4). The catalogue's models take 4.
MAX_REFERENCE_IMAGES = 4


class ProviderSettings(models.Model):
    """What a provider is and how it is called: the adapter, its model and limits, what an image
    costs. The platform operator owns these for catalogue models; an organization owns them for
    its own-key providers."""

    kind = models.CharField(max_length=10, choices=KIND_LABELS, editable=False)
    adapter = models.CharField(max_length=50, choices=adapter_choices)
    model_id = models.CharField(
        "provider model id", max_length=120, blank=True, help_text="Blank: the adapter's default."
    )
    timeout_seconds = models.FloatField(
        "timeout (s)",
        default=30,
        validators=[MinValueValidator(MIN_TIMEOUT), MaxValueValidator(MAX_TIMEOUT)],
        help_text=f"Bound on each call to this provider, {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds.",
    )
    credit_cost = models.PositiveIntegerField("credits per image", default=1)
    aspect_ratios = models.JSONField(default=list, blank=True)
    default_aspect_ratio = models.CharField(max_length=10, blank=True)
    quality_levels = models.JSONField(default=list, blank=True)
    default_quality = models.CharField(max_length=20, blank=True)
    max_product_images = models.PositiveSmallIntegerField(default=4)
    max_reference_images = models.PositiveSmallIntegerField(default=4)
    # Storage only: the admin edits the adapter's options form (Adapter.options_form), and
    # clean_settings() cleans what is stored through it.
    options = models.JSONField(
        default=dict, blank=True, editable=False, help_text="The adapter's options, cleaned."
    )

    class Meta:
        abstract = True

    @property
    def adapter_class(self):
        return get_adapter_class(self.adapter)

    @property
    def adapter_label(self):
        return self.adapter_class.label

    def full_clean(self, exclude=None, *args, **kwargs):
        """Errors about fields a form does not show (a changelist row shows two) become errors of
        the whole row: a model form would otherwise fail with "has no field named ..."."""
        try:
            super().full_clean(exclude, *args, **kwargs)
        except ValidationError as exc:
            if not hasattr(exc, "error_dict") or not exclude:
                raise
            errors: dict = {}
            for name, messages in exc.error_dict.items():
                if name in exclude and name != NON_FIELD_ERRORS:
                    label = capfirst(self._meta.get_field(name).verbose_name)
                    messages = [f"{label}: {m}" for e in messages for m in e.messages]
                    name = NON_FIELD_ERRORS
                errors.setdefault(name, []).extend(messages)
            raise ValidationError(errors) from None

    def clean_settings(self, errors: dict) -> None:
        """Check the settings against what the adapter supports; fills `errors` by field."""
        try:
            cls = get_adapter_class(self.adapter)
        except LookupError as exc:
            errors["adapter"] = str(exc)
            return
        self.kind = cls.kind
        try:
            self.options = cls.validate_options(self.options or {})
        except ValueError as exc:
            errors["options"] = str(exc)
        try:
            cls.validate_model(self.model_id)
        except ValueError as exc:
            errors["model_id"] = str(exc)
        if self.kind != Kind.IMAGE:
            return
        for field, default_field, supported, preferred in (
            ("aspect_ratios", "default_aspect_ratio", cls.aspect_ratios, cls.default_aspect_ratio),
            ("quality_levels", "default_quality", cls.qualities, cls.default_quality),
        ):
            self._clean_choices(errors, cls, field, default_field, supported, preferred)
        # Product images go to the image model; references only to the vision step.
        if cls.max_images and self.max_product_images > cls.max_images:
            errors["max_product_images"] = f"{cls.label} takes at most {cls.max_images} images."

    def _clean_choices(self, errors, cls, field, default_field, supported, preferred):
        """A subset of what the adapter supports (blank: all of it) and a default from it."""
        chosen = list(getattr(self, field) or supported)
        setattr(self, field, chosen)
        unknown = sorted(set(chosen) - set(supported))
        if unknown:
            errors[field] = (
                f"{cls.label} does not support {', '.join(unknown)}; "
                f"choose from {', '.join(supported) or 'none'}."
            )
        if not chosen:
            return
        default = getattr(self, default_field) or (preferred if preferred in chosen else chosen[0])
        setattr(self, default_field, default)
        if default not in chosen:
            noun = field.replace("_", " ")  # "aspect ratios", "quality levels"
            errors[default_field] = f"The default must be one of the allowed {noun}."


class WebhookSecrets(models.Model):
    """The key a provider account signs its callbacks with (kie.ai's webhook HMAC), set by
    whoever owns the account: the operator on a catalogue model (blank: the environment's
    platform default), the organization on an own-key provider. Stored encrypted; after a change
    the previous secret is still accepted for NERSTUDIO_WEBHOOK_SECRET_GRACE_SECONDS."""

    webhook_secret = EncryptedTextField(
        "webhook secret",
        blank=True,
        help_text="kie.ai → Settings → webhook HMAC key. Stored encrypted and never shown again. "
        "When set, callbacks must carry a fresh signature made with it.",
    )
    previous_webhook_secret = EncryptedTextField(blank=True, editable=False)
    webhook_secret_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def change_webhook_secret(self, new: str) -> None:
        """Use `new` from now on; the current one stays valid for the grace period."""
        if new == self.webhook_secret:
            return
        self.previous_webhook_secret = self.webhook_secret
        self.webhook_secret = new
        self.webhook_secret_changed_at = timezone.now()

    def own_webhook_secrets(self) -> list[str]:
        """The secrets a callback may be signed with: the current one, and the previous one while
        its grace period lasts."""
        secrets = [self.webhook_secret] if self.webhook_secret else []
        changed = self.webhook_secret_changed_at
        grace = timedelta(seconds=settings.NERSTUDIO_WEBHOOK_SECRET_GRACE_SECONDS)
        if self.previous_webhook_secret and changed and timezone.now() - changed < grace:
            secrets.append(self.previous_webhook_secret)
        return secrets


# How an image model is offered: its price, choices and limits.
IMAGE_SETTINGS = (
    "credit_cost",
    "aspect_ratios",
    "default_aspect_ratio",
    "quality_levels",
    "default_quality",
    "max_product_images",
    "max_reference_images",
)
# The settings an organization's catalogue row takes from its catalogue entry, always.
CATALOGUE_FIELDS = ("kind", "adapter", "model_id", "timeout_seconds", *IMAGE_SETTINGS, "options")


class CatalogueEntry(WebhookSecrets, ProviderSettings):
    """A model the platform offers on its own keys (providers.platform): set by the platform
    operator, chosen from by organizations. Its price is what an image costs every organization
    that uses it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(
        max_length=80, help_text="What organizations see until they rename it for their members."
    )
    base_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="Blank: the platform's endpoint for this vendor (NERSTUDIO_*_BASE_URL). A path "
        "on the same host is allowed; another host is not (the platform key goes only there).",
    )
    offered = models.BooleanField(
        default=True, help_text="Organizations may use it. Unticking withdraws it everywhere."
    )
    priority = models.PositiveSmallIntegerField(
        default=10, help_text="Default order for new organizations (lower runs first)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "priority", "pk"]
        verbose_name = "catalogue model"
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=MIN_TIMEOUT, timeout_seconds__lte=MAX_TIMEOUT),
                name="catalogue_timeout_bounded",
            ),
            models.CheckConstraint(condition=Q(credit_cost__gte=1), name="catalogue_cost_positive"),
        ]

    def __str__(self):
        return self.name

    @property
    def account(self):
        return platform_account(self.adapter_class.vendor)

    def webhook_secrets(self) -> list[str]:
        """Its own secrets, or the platform's default from the environment."""
        if own := self.own_webhook_secrets():
            return own
        if (account := self.account) is None:
            return []
        return [s for s in (account.webhook_secret, account.previous_webhook_secret) if s]

    def unavailable_reason(self) -> str:
        if not self.offered:
            return "The platform no longer offers this model."
        vendor = self.adapter_class.vendor
        account = self.account
        if vendor and not (account and account.api_key):
            label = account.label if account else vendor
            return f"The platform has no {label} key configured yet."
        return ""

    def clean(self):
        errors: dict = {}
        self.clean_settings(errors)
        if self.credit_cost < 1:
            errors["credit_cost"] = "Catalogue models cost at least 1 credit per image."
        if self.base_url and "adapter" not in errors:
            account = self.account
            try:
                check_url(self.base_url, base=True)
                if account is None:
                    raise EgressRefused(f"{self.adapter_label} has no platform endpoint.")
                if origin(self.base_url) not in account.origins:
                    raise EgressRefused(
                        f"The {account.label} platform key is only sent to "
                        f"{account.base_url}; set NERSTUDIO_{account.vendor.upper()}_BASE_URL "
                        "to use another host."
                    )
            except EgressRefused as exc:
                errors["base_url"] = str(exc)
        if errors:
            raise ValidationError(errors)

    @transaction.atomic
    def save(self, *args, **kwargs):
        self.kind = self.adapter_class.kind
        super().save(*args, **kwargs)
        # Organizations' rows follow the catalogue at once: a new price applies to the next
        # generation everywhere.
        rows = Provider.objects.filter(catalogue=self)
        rows.update(**{name: getattr(self, name) for name in CATALOGUE_FIELDS})
        Organization.objects.filter(pk__in=rows.values("org_id")).update(
            config_version=F("config_version") + 1
        )


class ProviderQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def enabled(self):
        return self.filter(enabled=True)

    def of_kind(self, kind):
        return self.filter(kind=kind)


class Provider(WebhookSecrets, ProviderSettings):
    """One AI service an organization uses: either a model from the platform catalogue (the
    platform's key, price and limits; the organization picks name, order, default and who sees
    it) or an own-key provider (the organization's key, endpoint and price)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="providers")
    catalogue = models.ForeignKey(
        CatalogueEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="providers",
        verbose_name="catalogue model",
        help_text="The platform's model this row uses; blank for an own-key provider.",
    )
    name = models.CharField("display name", max_length=80)
    base_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="Own-key providers only. Blank: the provider's public API. Set it for proxies "
        "or regional endpoints (https, public addresses only).",
    )
    api_key = EncryptedTextField(
        "API key", blank=True, help_text="Own-key providers only. Stored encrypted."
    )
    priority = models.PositiveSmallIntegerField(
        default=10, help_text="Lower runs first (fallback order for prompt writers and vision)."
    )
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        "default image model", default=False, help_text="Preselected on the Generate page."
    )
    visible_to_members = models.BooleanField(
        "members may use it",
        default=True,
        help_text="Image models only: untick to keep a model to admins (for trying it out).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "priority", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=Q(is_default=True), name="provider_one_default_per_org"
            ),
            models.UniqueConstraint(
                fields=["org", "catalogue"],
                name="provider_catalogue_model_once_per_org",
                violation_error_message="This catalogue model is already in use here.",
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(kind="image"), name="provider_default_is_image"
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gte=MIN_TIMEOUT, timeout_seconds__lte=MAX_TIMEOUT),
                name="provider_timeout_bounded",
            ),
            # A catalogue row carries neither a key nor an endpoint of its own (the platform's
            # are used) and costs what the catalogue says, never less than 1.
            models.CheckConstraint(
                condition=Q(catalogue__isnull=True)
                | Q(api_key="", base_url="", webhook_secret="", credit_cost__gte=1),
                name="provider_catalogue_row_platform_owned",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_own_key(self) -> bool:
        return self.catalogue_id is None

    @property
    def uses_platform_key(self) -> bool:
        """A catalogue model of a remote service: its calls are made on (and paid by) the
        platform's account. The offline local models use no key."""
        return self.catalogue_id is not None and self.adapter_class.vendor is not None

    @property
    def masked_api_key(self):
        return mask_secret(self.api_key)

    def unavailable_reason(self) -> str:
        """Why members cannot use this provider now; empty when it can run."""
        if self.catalogue_id:
            return self.catalogue.unavailable_reason()
        if self.adapter_class.vendor and not self.api_key:
            return "No API key: add the organization's key."
        return ""

    @property
    def is_runnable(self) -> bool:
        return not self.unavailable_reason()

    @property
    def deep_test_cost(self) -> str:
        return self.adapter_class.deep_test_cost

    def webhook_secrets(self) -> list[str]:
        """The secrets its callbacks may be signed with: the catalogue's (or the platform's) for a
        catalogue row, the organization's own for an own-key provider."""
        return self.catalogue.webhook_secrets() if self.catalogue_id else self.own_webhook_secrets()

    def key_label(self) -> str:
        """What admins see about the key: never more than its last four characters."""
        if self.catalogue_id:
            account = self.catalogue.account
            return f"platform ({account.label})" if account else "not needed"
        return self.masked_api_key or "missing"

    def config(self) -> ProviderConfig:
        if self.catalogue_id:
            # The platform's account: its key goes only to its configured endpoint.
            account = self.catalogue.account
            return ProviderConfig(
                base_url=self.catalogue.base_url or (account.base_url if account else ""),
                api_key=account.api_key if account else "",
                upload_base_url=account.upload_base_url if account else "",
                model=self.model_id,
                timeout=self.timeout_seconds,
                options=self.options,
            )
        return ProviderConfig(
            base_url=self.base_url,
            api_key=self.api_key,
            # A gateway that fronts kie.ai serves its uploads too; blank: kie's public host.
            upload_base_url=(self.options or {}).get("upload_base_url") or self.base_url,
            model=self.model_id,
            timeout=self.timeout_seconds,
            options=self.options,
        )

    def build(self):
        return build_adapter(self.adapter, self.config())

    def apply_catalogue(self) -> None:
        """A catalogue row takes the operator's settings and carries no key or endpoint."""
        entry = self.catalogue
        for name in CATALOGUE_FIELDS:
            setattr(self, name, getattr(entry, name))
        self.api_key = ""
        self.base_url = ""
        self.webhook_secret = self.previous_webhook_secret = ""

    def full_clean(self, *args, **kwargs):
        if self.catalogue_id:
            self.apply_catalogue()  # before the fields are checked: they are the catalogue's
        super().full_clean(*args, **kwargs)

    def clean(self):
        errors: dict = {}
        if not self.catalogue_id:
            self._clean_own_key(errors)
        if self.is_default and self.kind != Kind.IMAGE:
            errors["is_default"] = "Only an image model can be the default image model."
        elif self.is_default and not self.enabled:
            # On `enabled`: that is the field the changelist offers next to the list.
            errors["enabled"] = (
                "The default image model must stay enabled; make another model the default first."
            )
        if errors:
            raise ValidationError(errors)

    def _clean_own_key(self, errors: dict) -> None:
        self.clean_settings(errors)
        if "adapter" in errors:
            return
        if self.adapter_class.vendor is None:
            errors["adapter"] = (
                "The offline local providers come from the platform catalogue; add them from there."
            )
        elif not self.api_key:
            errors["api_key"] = "An own-key provider needs the organization's API key."
        if self.kind == Kind.IMAGE and self.max_reference_images > MAX_REFERENCE_IMAGES:
            errors["max_reference_images"] = (
                f"An image model takes at most {MAX_REFERENCE_IMAGES} reference images (each is "
                "described by a vision model)."
            )
        if self.base_url:
            try:
                check_url(self.base_url, base=True)
            except EgressRefused as exc:
                errors["base_url"] = str(exc)

    def validate_constraints(self, exclude=None):
        # save() moves the default flag atomically and clean() checks it is an image model.
        super().validate_constraints(exclude=set(exclude or ()) | {"is_default"})

    @transaction.atomic
    def save(self, *args, **kwargs):
        if self.catalogue_id:
            self.apply_catalogue()
        self.kind = self.adapter_class.kind
        if self.is_default:
            Provider.objects.filter(org_id=self.org_id, is_default=True).exclude(pk=self.pk).update(
                is_default=False
            )
        super().save(*args, **kwargs)
        bump_config_version(self.org_id)

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            bump_config_version(self.org_id)
        return result


class PlatformModelManager(models.Manager.from_queryset(ProviderQuerySet)):
    def get_queryset(self):
        return super().get_queryset().filter(catalogue__isnull=False)


class OwnKeyManager(models.Manager.from_queryset(ProviderQuerySet)):
    def get_queryset(self):
        return super().get_queryset().filter(catalogue__isnull=True)


class PlatformModel(Provider):
    """An organization's use of a catalogue model (the admin's view of those rows)."""

    objects = PlatformModelManager()

    class Meta:
        proxy = True
        verbose_name = "platform model"

    def clean(self):
        if not self.catalogue_id:
            raise ValidationError({"catalogue": "Choose a model from the platform catalogue."})
        super().clean()


class OwnKeyProvider(Provider):
    """An organization's own-key provider (the admin's view of those rows)."""

    objects = OwnKeyManager()

    class Meta:
        proxy = True
        verbose_name = "own-key provider"


def bump_config_version(org_id: int) -> None:
    """Tell every process that this org's provider configuration changed (see registry)."""
    Organization.objects.filter(pk=org_id).update(config_version=F("config_version") + 1)


class ProviderAttempt(models.Model):
    """Every call to a provider: lineage for generations and the source of provider health."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="attempts")
    # The generation the call served (lineage), by id: providers know nothing of generations.
    generation_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    purpose = models.CharField(max_length=20)  # "variants", "vision", "image", "test"
    outcome = models.CharField(max_length=16, choices=OUTCOME_LABELS)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # the provider's or gateway's own text, for admins
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["provider", "-created_at"])]

    def __str__(self):
        return f"{self.provider} {self.outcome} {self.latency_ms} ms"
