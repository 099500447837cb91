from django import forms
from django.core.exceptions import ValidationError

from library import services
from library.uploads import ACCEPT, CheckedUpload, check_image


class LibrarySearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.SearchInput(attrs={"placeholder": "Name, tag or description…"}),
    )
    tag = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    archived = forms.BooleanField(label="Show archived", required=False)


class DescribeImageForm(forms.Form):
    """An admin's name and tags for a library image."""

    name = forms.CharField(label="Name", required=False, max_length=120)
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=500,
        help_text="Separated by commas, e.g. “summer, bottle, hero”.",
    )

    def clean_tags(self) -> list[str]:
        try:
            return services.parse_tags(self.cleaned_data["tags"])
        except services.LibraryError as exc:
            raise forms.ValidationError(str(exc)) from None


MAX_FILES = 16  # per field and request: more than any image model takes (kie.ai: 14)


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """Several image files, each given only the cheap checks of check_image (size, header format
    and dimensions; nothing is decoded before everything else about the request passed). Every
    bad file gets its own error. `accepted` keeps the files that passed, even when another did
    not, so a form that comes back with errors can keep them."""

    def __init__(self, *args, max_files: int = MAX_FILES, **kwargs):
        kwargs.setdefault("widget", MultipleImageInput(attrs={"multiple": True, "accept": ACCEPT}))
        super().__init__(*args, **kwargs)
        self.max_files = max_files
        self.accepted: list[CheckedUpload] = []

    def clean(self, data, initial=None) -> list[CheckedUpload]:
        self.accepted = []
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if not files:
            if self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return []
        if len(files) > self.max_files:  # none is looked at
            raise ValidationError(
                "Choose at most %(most)d images at a time; you chose %(chosen)d.",
                code="too_many_files",
                params={"most": self.max_files, "chosen": len(files)},
            )
        images, errors = [], []
        for f in files:
            try:
                images.append(check_image(f))
            except ValidationError as exc:
                errors.extend(exc.error_list)
        self.accepted = images
        if errors:
            raise ValidationError(errors)
        return images


class LibraryUploadForm(forms.Form):
    images = MultipleImageField(
        label="Add images",
        error_messages={"required": "Choose at least one image."},
        help_text="Product photos or brand references. JPEG, PNG or WebP, up to 16 at a time.",
    )
