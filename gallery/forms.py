from datetime import date

from django import forms
from django.http import Http404

from gallery.models import Collection
from gallery.search import GalleryQuery
from generation.models import GenerationImage
from orgs.models import Membership
from providers.models import Provider

# Filters that name an object: one the organization does not have is a 404, never a hint.
OBJECT_FILTERS = ("member", "model", "collection")
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)  # dates a filter may name


class GalleryFilterForm(forms.Form):
    """The gallery's filters, from the query string. Admins also choose whose images to see."""

    q = forms.CharField(
        label="Search prompts",
        required=False,
        max_length=200,
        widget=forms.SearchInput(attrs={"placeholder": "Search prompts…"}),
    )
    scope = forms.ChoiceField(
        label="Whose",
        required=False,
        choices=[("org", "Everyone's"), ("mine", "Mine")],
    )
    member = forms.ModelChoiceField(
        label="Member",
        required=False,
        queryset=Membership.objects.none(),
        to_field_name="public_id",
    )
    model = forms.ModelChoiceField(
        label="Model", required=False, queryset=Provider.objects.none(), to_field_name="public_id"
    )
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("done", "Done"), ("failed", "Failed"), ("all", "Done and failed")],
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    favourites = forms.BooleanField(label="Favourites", required=False)
    collection = forms.ModelChoiceField(
        label="Collection",
        required=False,
        queryset=Collection.objects.none(),
        to_field_name="public_id",
        empty_label="Any collection",
    )
    view = forms.ChoiceField(
        label="View",
        required=False,
        choices=[("flat", "Newest first"), ("grouped", "By generation")],
    )

    def __init__(self, data, *, membership):
        super().__init__(data)
        self.membership = membership
        org_id = membership.org_id
        self.fields["model"].queryset = Provider.objects.filter(org_id=org_id, kind="image")
        self.fields["model"].empty_label = "Any model"
        self.fields["collection"].queryset = Collection.objects.filter(org_id=org_id)
        if membership.is_admin:
            self.fields["member"].queryset = Membership.objects.filter(
                org_id=org_id
            ).select_related("user")
            self.fields["member"].label_from_instance = lambda m: str(m.user)
            self.fields["member"].empty_label = "Any member"
        else:
            del self.fields["scope"], self.fields["member"]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        for name in ("since", "until"):
            day = cleaned.get(name)
            if day and not FIRST_DAY <= day <= LAST_DAY:
                self.add_error(name, f"Pick a date between {FIRST_DAY:%Y} and {LAST_DAY:%Y}.")
        return cleaned

    def query(self) -> GalleryQuery:
        """The search to run: a 404 for a member, model or collection not in the organization;
        an invalid date is shown on the form and left out."""
        if any(f in self.errors for f in OBJECT_FILTERS if f in self.fields):
            raise Http404
        data = self.cleaned_data if self.is_bound else {}
        data = {name: value for name, value in data.items() if name not in self.errors}
        status = data.get("status") or "done"
        member, model, collection = (data.get(f) for f in OBJECT_FILTERS)
        return GalleryQuery(
            everyone=self.membership.is_admin and data.get("scope", "org") != "mine",
            user_id=member.user_id if member else None,
            provider_id=model.pk if model else None,
            status="" if status == "all" else GenerationImage.Status(status),
            since=data.get("since"),
            until=data.get("until"),
            favourites=bool(data.get("favourites")),
            collection_id=collection.pk if collection else None,
            text=(data.get("q") or "").strip(),
            grouped=data.get("view") == "grouped",
        )
