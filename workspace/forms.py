from django import forms

from credits.models import TopUpRequest
from orgs.models import Membership, Organization


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name"]
        labels = {"name": "Organization name"}
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "Acme Creative", "autofocus": True})
        }

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name


class InviteForm(forms.Form):
    email = forms.EmailField(
        max_length=254,  # what the database column holds
        widget=forms.EmailInput(attrs={"placeholder": "name@company.com"}),
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class TopUpRequestForm(forms.Form):
    amount = forms.IntegerField(
        min_value=TopUpRequest.MIN_AMOUNT,
        max_value=TopUpRequest.MAX_AMOUNT,
        label="Credits",
        widget=forms.NumberInput(attrs={"placeholder": "1000"}),
    )
    note = forms.CharField(
        max_length=200,
        required=False,
        label="Note for the platform",
        widget=forms.TextInput(attrs={"placeholder": "e.g. purchase order 2026-17"}),
    )


class OrganizationSettingsForm(forms.ModelForm):
    """What an admin sets for the whole organization."""

    class Meta:
        model = Organization
        fields = ["name", "time_zone", "default_monthly_limit", "low_balance_threshold"]
        labels = {
            "name": "Organization name",
            "default_monthly_limit": "Monthly limit for new members (credits)",
            "low_balance_threshold": "Warn admins below (credits)",
        }
        widgets = {
            "default_monthly_limit": forms.NumberInput(attrs={"placeholder": "No limit"}),
            "low_balance_threshold": forms.NumberInput(attrs={"placeholder": "No warning"}),
        }

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give your organization a name.")
        return name


class MonthlyLimitForm(forms.Form):
    monthly_limit = forms.IntegerField(
        min_value=0,
        max_value=10_000_000,
        required=False,
        label="Monthly limit (credits)",
        widget=forms.NumberInput(attrs={"placeholder": "No limit"}),
    )
