from django import forms


class DisplayNameForm(forms.Form):
    display_name = forms.CharField(
        max_length=150,  # accounts.User.name
        label="Your name",
        error_messages={"required": "Tell your team what to call you."},
        help_text="Shown to your team on members, history and the gallery.",
        widget=forms.TextInput(
            attrs={"autocomplete": "name", "placeholder": "First and last name", "autofocus": True}
        ),
    )

    def clean_display_name(self):
        return " ".join(self.cleaned_data["display_name"].split())  # no stray inner spaces
