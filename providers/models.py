import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q

from orgs.models import Organization
from providers.adapters.base import ProviderConfig
from providers.adapters.registry import ADAPTERS, KINDS, build_adapter, get_adapter_class
from providers.fields import EncryptedTextField, mask_secret


class Kind(models.TextChoices):
    IMAGE = "image", "Image generation"
    LLM = "llm", "Prompt writer (LLM)"
    VISION = "vision", "Reference analysis (vision)"


assert tuple(Kind.values) == KINDS


def adapter_choices():
    return [
        (
            Kind(kind).label,
            [(slug, cls.label) for slug, cls in ADAPTERS.items() if cls.kind == kind],
        )
        for kind in KINDS
    ]


class ProviderQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def enabled(self):
        return self.filter(enabled=True)

    def of_kind(self, kind):
        return self.filter(kind=kind)


class Provider(models.Model):
    """One configured AI service of an organization: an adapter from the registry plus the
    admin's settings for it."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="providers")
    kind = models.CharField(max_length=10, choices=Kind.choices, editable=False)
    adapter = models.CharField(max_length=50, choices=adapter_choices)
    name = models.CharField("display name", max_length=80)
    model_id = models.CharField(
        "provider model id", max_length=120, blank=True, help_text="Blank: the adapter's default."
    )
    base_url = models.URLField(
        max_length=300, blank=True,
        help_text="Blank: the provider's public API. Set it for proxies or regional endpoints.",
    )  # fmt: skip
    api_key = EncryptedTextField(
        "API key", blank=True,
        help_text="Stored encrypted. Blank: use the platform key from the environment.",
    )  # fmt: skip
    priority = models.PositiveSmallIntegerField(
        default=10, help_text="Lower runs first (fallback order for prompt writers and vision)."
    )
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.FloatField(
        "timeout (s)", default=30, help_text="Bound on each call to this provider."
    )
    is_default = models.BooleanField(
        "default image model", default=False, help_text="Preselected on the Generate page."
    )
    credit_cost = models.PositiveIntegerField("credits per image", default=1)
    aspect_ratios = models.JSONField(default=list, blank=True)
    default_aspect_ratio = models.CharField(max_length=10, blank=True)
    quality_levels = models.JSONField(default=list, blank=True)
    default_quality = models.CharField(max_length=20, blank=True)
    max_product_images = models.PositiveSmallIntegerField(default=4)
    max_reference_images = models.PositiveSmallIntegerField(default=4)
    options = models.JSONField(default=dict, blank=True, help_text="Adapter-specific settings.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "priority", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=Q(is_default=True), name="provider_one_default_per_org"
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(kind="image"), name="provider_default_is_image"
            ),
            models.CheckConstraint(condition=Q(timeout_seconds__gt=0), name="provider_timeout_pos"),
        ]

    def __str__(self):
        return self.name

    @property
    def adapter_class(self):
        return get_adapter_class(self.adapter)

    @property
    def adapter_label(self):
        return self.adapter_class.label

    @property
    def masked_api_key(self):
        return mask_secret(self.api_key)

    def platform_key(self) -> str:
        env_name = self.adapter_class.platform_key_env
        return settings.NERSTUDIO_PLATFORM_KEYS.get(env_name, "") if env_name else ""

    @property
    def has_key(self) -> bool:
        return bool(self.api_key or self.platform_key() or not self.adapter_class.platform_key_env)

    def config(self) -> ProviderConfig:
        return ProviderConfig(
            base_url=self.base_url,
            api_key=self.api_key or self.platform_key(),
            model=self.model_id,
            timeout=self.timeout_seconds,
            options=self.options,
        )

    def build(self, **kwargs):
        return build_adapter(self.adapter, self.config(), **kwargs)

    def clean(self):
        try:
            cls = get_adapter_class(self.adapter)
        except LookupError as exc:
            raise ValidationError({"adapter": str(exc)}) from None
        self.kind = cls.kind
        errors = {}
        try:
            self.options = cls.validate_options(self.options or {})
        except ValueError as exc:
            errors["options"] = str(exc)
        if self.kind == Kind.IMAGE:
            self._clean_image_settings(cls, errors)
        elif self.is_default:
            errors["is_default"] = "Only an image model can be the default image model."
        if self.is_default and not self.enabled:
            errors["is_default"] = "The default image model must be enabled."
        if errors:
            raise ValidationError(errors)

    def _clean_image_settings(self, cls, errors):
        self._clean_choices(
            errors, cls, "aspect_ratios", "default_aspect_ratio", cls.aspect_ratios,
            cls.default_aspect_ratio, "aspect ratios",
        )  # fmt: skip
        self._clean_choices(
            errors, cls, "quality_levels", "default_quality", cls.qualities, cls.default_quality,
            "quality levels",
        )  # fmt: skip
        # Product images go to the image model; references only to the vision step.
        if cls.max_images and self.max_product_images > cls.max_images:
            errors["max_product_images"] = f"{cls.label} takes at most {cls.max_images} images."

    def _clean_choices(self, errors, cls, field, default_field, supported, preferred, noun):
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
            errors[default_field] = f"The default must be one of the allowed {noun}."

    def validate_constraints(self, exclude=None):
        # save() moves the default flag atomically and clean() checks it is an image model.
        super().validate_constraints(exclude=set(exclude or ()) | {"is_default"})

    @transaction.atomic
    def save(self, *args, **kwargs):
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


def bump_config_version(org_id: int) -> None:
    """Tell every process that this org's provider configuration changed (see registry)."""
    Organization.objects.filter(pk=org_id).update(config_version=F("config_version") + 1)


class Outcome(models.TextChoices):
    """The outcomes `providers.chain` reports."""

    SUCCESS = "success", "Success"
    RETRYABLE = "retryable", "Retryable error"
    PERMANENT = "permanent", "Permanent error"
    INVALID_OUTPUT = "invalid_output", "Invalid output"
    SKIPPED = "skipped", "Skipped"


class ProviderAttempt(models.Model):
    """Every call to a provider: lineage for generations and the source of provider health."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="attempts")
    generation = models.ForeignKey(
        "generation.Generation", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="provider_attempts",
    )  # fmt: skip
    purpose = models.CharField(max_length=20)  # "variants", "vision", "image", "test"
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["provider", "-created_at"])]

    def __str__(self):
        return f"{self.provider} {self.outcome} {self.latency_ms} ms"
