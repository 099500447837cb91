from urllib.parse import urlencode

from django import forms

from audit.models import GROUPS, PLATFORM

OPERATORS = "platform"  # the actor filter's value for every operator action (emails have an @)


class AuditFilterForm(forms.Form):
    """The organization's audit page: which kind of action, and by whom. The people offered are
    those who appear in the log (former members too); operators are offered as one, "NER
    Studio"."""

    group = forms.ChoiceField(label="Show", required=False)
    actor = forms.ChoiceField(label="By", required=False)

    def __init__(self, data, *, events):
        super().__init__(data)
        self.fields["group"].choices = [
            ("", "Everything"),
            *((key, label) for key, (label, _) in GROUPS.items() if key != "catalogue"),
        ]
        seen = set(events.order_by().values_list("actor_label", "actor_is_operator").distinct())
        people = sorted(label for label, operator in seen if not operator)
        platform = [(OPERATORS, PLATFORM)] if any(operator for _, operator in seen) else []
        self.fields["actor"].choices = [
            ("", "Anyone"),
            *((label, label) for label in people),
            *platform,
        ]

    def filter(self, events):
        """`events` narrowed to the chosen group and actor; all of them when nothing valid was
        chosen."""
        if not self.is_valid():
            return events
        group, actor = self.cleaned_data["group"], self.cleaned_data["actor"]
        if group:
            events = events.in_group(group)
        if actor == OPERATORS:
            events = events.filter(actor_is_operator=True)
        elif actor:
            events = events.filter(actor_label=actor, actor_is_operator=False)
        return events

    def query(self) -> str:
        """The chosen filters as a query string, for the page links."""
        if not self.is_valid():
            return ""
        return urlencode({k: v for k, v in self.cleaned_data.items() if v})
