from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from generation.uploads import ACCEPT, CheckedUpload, check_image, human_bytes
from providers.models import Provider


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """Several image files, each given only the cheap checks of check_image (size, header format
    and dimensions; nothing is decoded: start_generation does that once everything else passed).
    Every bad file gets its own error. The form sets `max_files` and `model_name` from the
    selected model."""

    def __init__(self, *args, noun: tuple[str, str] = ("image", "images"), **kwargs):
        self.noun = noun
        self.max_files: int | None = None
        self.model_name = "This model"
        kwargs.setdefault("widget", MultipleImageInput(attrs={"multiple": True, "accept": ACCEPT}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list[CheckedUpload]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files:
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return []
        if self.max_files is not None and len(files) > self.max_files:
            raise ValidationError(self.too_many_message(len(files)), code="too_many_files")
        images, errors = [], []
        for f in files:
            try:
                images.append(check_image(f))
            except ValidationError as exc:
                errors.extend(exc.error_list)
        if errors:
            raise ValidationError(errors)
        return images

    def too_many_message(self, chosen: int) -> str:
        if not self.max_files:
            return f"{self.model_name} takes no {self.noun[1]}."
        noun = self.noun[0] if self.max_files == 1 else self.noun[1]
        return f"{self.model_name} takes at most {self.max_files} {noun}; you chose {chosen}."


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
        noun=("product photo", "product photos"),
        error_messages={"required": "Add at least one product photo."},
        help_text="The product to feature. JPEG, PNG or WebP.",
    )
    references = MultipleImageField(
        label="Reference images",
        noun=("reference image", "reference images"),
        required=False,
        help_text="Optional: mood, style or brand direction.",
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
    aspect_ratio = forms.ChoiceField(label="Aspect ratio")
    quality = forms.ChoiceField(label="Quality", required=False)

    def __init__(self, *args, image_models, default_model: Provider | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_models = tuple(image_models)
        self.initial = dict(self.initial)
        self.max_upload_bytes = settings.NERSTUDIO_UPLOAD_MAX_BYTES
        self.max_upload_label = human_bytes(self.max_upload_bytes)
        self.fields["count"] = forms.IntegerField(
            label="Number of images",
            min_value=1,
            max_value=settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION,
            initial=3,
            widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
        )
        self.fields["model"].choices = [
            (str(p.public_id), model_label(p)) for p in self.image_models
        ]
        model = self.selected_model = self._selected_model(default_model)
        if model is None:
            return
        self.initial["model"] = str(model.public_id)
        self.fields["aspect_ratio"].choices = [
            (r, aspect_ratio_label(r)) for r in model.aspect_ratios
        ]
        if self.initial.get("aspect_ratio") not in model.aspect_ratios:
            self.initial["aspect_ratio"] = model.default_aspect_ratio
        self.fields["quality"].choices = [(q, quality_label(q)) for q in model.quality_levels]
        self.fields["quality"].required = bool(model.quality_levels)
        if self.initial.get("quality") not in model.quality_levels:
            self.initial["quality"] = model.default_quality
        for name, limit in (
            ("products", model.max_product_images),
            ("references", model.max_reference_images),
        ):
            self.fields[name].max_files = limit
            self.fields[name].model_name = model.name

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

    def estimate(self, balance: int) -> "Estimate":
        """The cost of what is selected now, for the live estimate (the form need not be valid)."""
        count = _int_or_none(self["count"].value())
        maximum = settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION
        return Estimate(
            count=count or 0,
            cost=self.selected_model.credit_cost if self.selected_model else 0,
            balance=balance,
            max_count=maximum,
            valid_count=count is not None and 1 <= count <= maximum,
        )


@dataclass(frozen=True)
class Estimate:
    count: int
    cost: int  # credits per image
    balance: int
    max_count: int
    valid_count: bool = True

    @property
    def total(self) -> int:
        return self.count * self.cost

    @property
    def covered(self) -> bool:
        return self.total <= self.balance

    @property
    def can_generate(self) -> bool:
        return self.valid_count and self.covered


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
