from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from credits.limits import MonthlyUsage
from generation import rules
from library.forms import MultipleImageField
from library.models import SourceImage
from providers.models import Provider

ROLES = ("products", "references")


def model_label(provider: Provider) -> str:
    unit = "credit" if provider.credit_cost == 1 else "credits"
    return f"{provider.name} — {provider.credit_cost} {unit}/image"


def aspect_ratio_label(ratio: str) -> str:
    try:
        width, height = (int(x) for x in ratio.split(":"))
    except ValueError:
        return "Auto (match the product photo)" if ratio == "auto" else ratio
    shape = "square" if width == height else "landscape" if width > height else "portrait"
    return f"{ratio} {shape}"


def quality_label(level: str) -> str:
    return level.capitalize() if level[:1].isalpha() else level  # "standard" → "Standard"; "2K"


class GenerateForm(forms.Form):
    """The Generate page. Choices come from the organization's enabled image models; the aspect
    ratio, quality and file limits follow the selected model (the submitted one when bound)."""

    products = MultipleImageField(
        label="Product photos",
        required=False,  # or from the library: at least one either way (clean)
        help_text="The product to feature. JPEG, PNG or WebP.",
    )
    references = MultipleImageField(
        label="Reference images",
        required=False,
        help_text="Optional: mood, style or brand direction.",
    )
    # Images already in the brand library, by public id: picked on the page or reused.
    library_products = forms.ModelMultipleChoiceField(
        queryset=SourceImage.objects.none(), to_field_name="public_id", required=False
    )
    library_references = forms.ModelMultipleChoiceField(
        queryset=SourceImage.objects.none(), to_field_name="public_id", required=False
    )
    prompt = forms.CharField(
        max_length=2000,
        error_messages={"required": "Write a prompt: what should the images show?"},
        widget=forms.Textarea(
            attrs={"rows": 5, "placeholder": "A bottle on wet slate at dusk, soft rim light…"}
        ),
        help_text="Creative direction. Each image gets its own variant of it.",
    )
    model = forms.ChoiceField(
        label="Image model",
        error_messages={"invalid_choice": "Choose one of your organization's image models."},
    )
    # Offered as choices; whether the model offers the value is a rule (generation/rules.py).
    aspect_ratio = forms.CharField(label="Aspect ratio", widget=forms.Select)
    quality = forms.CharField(label="Quality", required=False, widget=forms.Select)

    def __init__(self, *args, org, image_models, default_model: Provider | None, **kwargs):
        super().__init__(*args, **kwargs)
        for role in ROLES:
            self.fields[role].noun = rules.FILE_NOUNS[role]
            self.fields[f"library_{role}"].queryset = SourceImage.objects.for_org(org).in_library()
            self.fields[f"library_{role}"].error_messages["invalid_choice"] = (
                "One of the chosen library images is no longer in the library."
            )
        self.image_models = tuple(image_models)
        self.initial = dict(self.initial)
        self.max_upload_bytes = settings.NERSTUDIO_UPLOAD_MAX_BYTES
        maximum = settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION
        self.fields["count"] = forms.IntegerField(
            label="Number of images",
            initial=3,
            widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": 1, "max": maximum}),
        )
        self.fields["model"].choices = [
            (str(p.public_id), model_label(p)) for p in self.image_models
        ]
        model = self.selected_model = self._selected_model(default_model)
        if model is None:
            return
        self.initial["model"] = str(model.public_id)
        self.fields["aspect_ratio"].widget.choices = [
            (r, aspect_ratio_label(r)) for r in model.aspect_ratios
        ]
        if self.initial.get("aspect_ratio") not in model.aspect_ratios:
            self.initial["aspect_ratio"] = model.default_aspect_ratio
        self.fields["quality"].widget.choices = [
            (q, quality_label(q)) for q in model.quality_levels
        ]
        self.fields["quality"].required = bool(model.quality_levels)
        if self.initial.get("quality") not in model.quality_levels:
            self.initial["quality"] = model.default_quality

    def _selected_model(self, default_model: Provider | None) -> Provider | None:
        by_id = {str(p.public_id): p for p in self.image_models}
        wanted = self.data.get(self.add_prefix("model")) if self.is_bound else None
        wanted = str(wanted or self.initial.get("model") or "")
        if wanted in by_id:
            return by_id[wanted]
        if default_model is not None and str(default_model.public_id) in by_id:
            return by_id[str(default_model.public_id)]
        return self.image_models[0] if self.image_models else None

    def clean_model(self) -> Provider:
        """The chosen model as it is now, not as the per-process registry cached it: a model
        disabled or repriced a moment ago must not be charged at its old state."""
        chosen = next(
            p for p in self.image_models if str(p.public_id) == self.cleaned_data["model"]
        )
        current = (
            Provider.objects.enabled()
            .select_related("catalogue")
            .filter(pk=chosen.pk, org_id=chosen.org_id)
            .first()
        )
        if current is None or not current.is_runnable:
            raise ValidationError(self.fields["model"].error_messages["invalid_choice"])
        return current

    def clean(self):
        cleaned = super().clean()
        model = self.selected_model
        for role in ROLES:
            if role in self.errors or f"library_{role}" in self.errors or model is None:
                continue
            if error := rules.files_error(model, role, len(self.sources(role))):
                self.add_error(role, error)
        return cleaned

    def sources(self, role: str) -> list:
        """The role's uploads (checked, not decoded) and library images, in that order."""
        data = self.cleaned_data
        return [*data.get(role, []), *data.get(f"library_{role}", [])]

    def clean_count(self) -> int:
        count = self.cleaned_data["count"]
        if error := rules.count_error(count):
            raise error
        return count

    def clean_aspect_ratio(self) -> str:
        return self._clean_option("aspect_ratio")

    def clean_quality(self) -> str:
        return self._clean_option("quality")

    def _clean_option(self, name: str) -> str:
        """One of the aspect ratios or quality levels the selected model offers (its choices)."""
        value = self.cleaned_data[name]
        model = self.selected_model
        if model is not None:
            offered = model.aspect_ratios if name == "aspect_ratio" else model.quality_levels
            if error := rules.option_error(offered, value):
                raise error
        return value

    def estimate(self, balance: int, usage: MonthlyUsage | None = None) -> "Estimate":
        """The cost of what is selected now, for the live estimate (the form need not be valid);
        `usage` is the member's month against their limit, if they have one."""
        count = _int_or_none(self["count"].value())
        maximum = settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION
        return Estimate(
            count=count or 0,
            cost=self.selected_model.credit_cost if self.selected_model else 0,
            balance=balance,
            max_count=maximum,
            valid_count=count is not None and rules.count_error(count) is None,
            usage=usage,
        )


@dataclass(frozen=True)
class Estimate:
    count: int
    cost: int  # credits per image
    balance: int
    max_count: int
    valid_count: bool = True
    usage: MonthlyUsage | None = None

    @property
    def total(self) -> int:
        return self.count * self.cost

    @property
    def covered(self) -> bool:
        return self.total <= self.balance

    @property
    def within_limit(self) -> bool:
        return self.usage is None or self.usage.left is None or self.total <= self.usage.left

    @property
    def can_generate(self) -> bool:
        return self.valid_count and self.covered and self.within_limit


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
