"""Credits in the admin.

The balance is a cache of the ledger's sum, so no one edits it or a ledger row here: credits move
only through credits.services, each movement appending a ledger entry with the acting user.
Credits are the platform's currency: top-ups and adjustments are for platform operators
(superusers) only. Organization admins are tenants; they see their balance and ledger, and ask for
credits with a top-up request from the dashboard, which operators approve or decline here.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from credits import services
from credits.models import CreditAccount, LedgerEntry, TopUpRequest
from orgs.admin import OrgScopedAdmin, ReadOnly


class TopUpForm(forms.Form):
    amount = forms.IntegerField(
        min_value=1,
        max_value=services.MAX_MOVEMENT,
        help_text="Credits to add to the organization's pool.",
    )
    note = forms.CharField(
        max_length=200, required=False, help_text="Shown in the ledger, e.g. an invoice number."
    )


class AdjustmentForm(forms.Form):
    delta = forms.IntegerField(
        label="Change",
        min_value=-services.MAX_MOVEMENT,
        max_value=services.MAX_MOVEMENT,
        help_text="Positive adds credits, negative removes them. The balance cannot go below zero.",
    )
    note = forms.CharField(max_length=200, help_text="Why: kept in the ledger for good.")

    def clean_delta(self):
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError("An adjustment must change the balance.")
        return delta


class ReadOnlyAdmin(ReadOnly, OrgScopedAdmin):
    """Viewable by superusers and the organization's admins; changed by no one."""


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    """Organization admins view their own account; only operators top up or adjust it."""

    list_display = ["org", "balance", "updated_at", "ledger_link"]
    operator_list_display = [*list_display, "pending_requests", "top_up_link"]
    list_select_related = ["org"]
    search_fields = ["org__name"]
    fields = ["org", "balance", "updated_at"]
    change_form_template = "admin/credits/creditaccount/change_form.html"
    change_list_template = "admin/credits/creditaccount/change_list.html"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/top-up/",
                self.admin_site.admin_view(self.top_up_view),
                name="credits_creditaccount_top_up",
            ),
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="credits_creditaccount_adjust",
            ),
            *super().get_urls(),
        ]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if services.is_operator(request.user):
            pending = Q(org__top_up_requests__status=TopUpRequest.Status.PENDING)
            qs = qs.annotate(pending_count=Count("org__top_up_requests", filter=pending))
        return qs

    def get_list_display(self, request):
        if services.is_operator(request.user):
            return self.operator_list_display
        return self.list_display

    @admin.display(description="Ledger")
    def ledger_link(self, obj):
        return format_html('<a href="{}">Ledger</a>', ledger_url(obj))

    @admin.display(description="Pending requests", ordering="pending_count")
    def pending_requests(self, obj):
        if not obj.pending_count:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', requests_url(org_id=obj.org_id), obj.pending_count
        )

    @admin.display(description="Top up")
    def top_up_link(self, obj):
        url = reverse("admin:credits_creditaccount_top_up", args=[obj.pk])
        return format_html('<a href="{}">Top up credits</a>', url)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), **operator_context(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), **operator_context(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _operator_account(self, request, object_id) -> CreditAccount:
        """The account, for a platform operator. Other organizations' accounts are 404 to an
        organization admin (get_queryset scopes them away, as in the rest of the admin); their own
        is 403: credits are the platform's to give."""
        account = get_object_or_404(self.get_queryset(request).select_related("org"), pk=object_id)
        if not services.is_operator(request.user):
            raise PermissionDenied("Only the platform can add credits. Request them instead.")
        return account

    def top_up_view(self, request, object_id):
        account = self._operator_account(request, object_id)
        form = TopUpForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            entry = services.top_up(
                org=account.org, amount=data["amount"], actor=request.user, note=data["note"]
            )
            added = f"Added {entry.amount} credit{pluralize(entry.amount)} to {account.org}."
            return self._moved(request, account, entry, added)
        return self._render_form(request, account, form, "Top up credits", "Add credits")

    def adjust_view(self, request, object_id):
        account = self._operator_account(request, object_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = services.adjust(
                    org=account.org, delta=data["delta"], actor=request.user, note=data["note"]
                )
            except services.InsufficientCredits as exc:
                form.add_error("delta", f"The balance is {exc.available}; it cannot go below zero.")
            else:
                delta = entry.delta
                adjusted = f"Adjusted {account.org} by {delta:+d} credit{pluralize(abs(delta))}."
                return self._moved(request, account, entry, adjusted)
        return self._render_form(request, account, form, "Adjust the balance", "Record adjustment")

    def _moved(self, request, account: CreditAccount, entry: LedgerEntry, what: str):
        """Say what moved and the new balance, on the account's ledger."""
        self.message_user(request, f"{what} New balance: {entry.balance_after}.", messages.SUCCESS)
        return redirect(ledger_url(account))

    def _render_form(self, request, account, form, title, submit_label):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"{title}: {account.org}",
            "form": form,
            "submit_label": submit_label,
            "balance": services.balance_of(account.org),
        }
        return TemplateResponse(request, "admin/credits/creditaccount/credit_form.html", context)


def operator_context(request) -> dict:
    """What the credit pages show a platform operator only: the money tools and open requests."""
    if not services.is_operator(request.user):
        return {"is_operator": False}
    return {
        "is_operator": True,
        "pending_top_up_requests": TopUpRequest.objects.pending().count(),
        "top_up_requests_url": requests_url(),
    }


def requests_url(*, org_id=None) -> str:
    """The top-up request list: pending ones (its default), optionally for one organization."""
    url = reverse("admin:credits_topuprequest_changelist")
    return f"{url}?org__id__exact={org_id}" if org_id else url


PLATFORM_ACTOR = "NER Studio"


def _tenant_column(name: str) -> str:
    return "by" if name == "actor" else name


def ledger_url(account: CreditAccount) -> str:
    """The ledger changelist narrowed to the account's organization (org admins see only theirs
    anyway)."""
    return reverse("admin:credits_ledgerentry_changelist") + f"?org__id__exact={account.org_id}"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """Append-only: not even a superuser adds, edits or deletes an entry here."""

    fields = [
        "org",
        "kind",
        "delta",
        "amount",
        "balance_after",
        "actor",
        "generation",
        "image",
        "provider",
        "note",
        "created_at",
    ]
    # The list shows the same columns, the date first, without the image.
    list_display = [
        "created_at",
        "kind",
        "explained",
        *(name for name in fields if name not in ("image", "created_at", "kind")),
    ]
    list_select_related = ["org", "actor", "generation", "provider"]
    search_fields = ["note"]

    readonly_fields = ["by"]

    def get_list_display(self, request):
        if request.user.is_superuser:
            return self.list_display
        return [_tenant_column(name) for name in self.list_display if name != "org"]

    def get_fields(self, request, obj=None):
        if request.user.is_superuser:
            return self.fields
        return [_tenant_column(name) for name in self.fields]

    @admin.display(description="What happened")
    def explained(self, obj):
        return obj.explanation

    @admin.display(description="Actor")
    def by(self, obj):
        """An operator's movement reads as the platform's to a tenant, without the operator's
        account."""
        if obj.actor is not None and obj.actor.is_superuser:
            return PLATFORM_ACTOR
        return obj.actor or "-"

    def get_list_filter(self, request):
        # The organization filter would list every organization's name: superusers only.
        return ["kind", "org"] if request.user.is_superuser else ["kind"]


class TopUpRequestStatusFilter(admin.SimpleListFilter):
    """Pending requests unless another status is chosen, so the operator's to-do list is the
    default view; "All" is an explicit choice rather than the absence of a filter."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*TopUpRequest.Status.choices, ("all", "All")]

    def _value(self):
        return self.value() or TopUpRequest.Status.PENDING

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": self._value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self._value()
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(TopUpRequest)
class TopUpRequestAdmin(admin.ModelAdmin):
    """Platform operators (superusers) only; organization admins do not see it at all. Approving
    and declining go through credits.services, which decides each request once."""

    list_display = [
        "reference",
        "org",
        "amount",
        "note",
        "requested_by",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
        "ledger_entry",
    ]
    list_display_links = ["reference"]
    list_filter = [TopUpRequestStatusFilter, "org"]
    list_select_related = ["org", "requested_by", "decided_by", "ledger_entry"]
    search_fields = ["org__name", "note", "requested_by__email"]
    fields = [
        "reference",
        "org",
        "amount",
        "note",
        "requested_by",
        "created_at",
        "status",
        "decided_by",
        "decided_at",
        "ledger_entry",
        "balance",
    ]
    readonly_fields = fields
    actions = ["approve", "decline"]

    def has_module_permission(self, request):
        return services.is_operator(request.user)

    def has_view_permission(self, request, obj=None):
        return services.is_operator(request.user)

    def has_decide_permission(self, request):
        return services.is_operator(request.user)

    def has_add_permission(self, request):
        return False  # organization admins request from their dashboard

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Current balance")
    def balance(self, obj):
        return services.balance_of(obj.org)

    @admin.action(
        description="Approve selected requests (adds the credits)", permissions=["decide"]
    )
    def approve(self, request, queryset):
        self._decide_each(request, queryset, services.approve_top_up_request, approved)

    @admin.action(description="Decline selected requests", permissions=["decide"])
    def decline(self, request, queryset):
        self._decide_each(request, queryset, services.decline_top_up_request, declined)

    def _decide_each(self, request, queryset, decide, outcome):
        """Decide every chosen request through the service (`decide`) and report each `outcome`.
        A row picked from the pending list that another operator decided meanwhile is filtered out
        of `queryset`, so the ticked ids are added back: the service then says who was first."""
        ticked = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        ids = set(queryset.values_list("pk", flat=True))
        ids |= set(self.get_queryset(request).filter(pk__in=ticked).values_list("pk", flat=True))
        for top_up_request in self.get_queryset(request).filter(pk__in=ids).order_by("pk"):
            try:
                decided = decide(top_up_request=top_up_request, operator=request.user)
            except services.TopUpRequestError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, outcome(decided), messages.SUCCESS)


def approved(top_up_request: TopUpRequest) -> str:
    return (
        f"Approved request {top_up_request.reference}: added {top_up_request.amount} "
        f"credit{pluralize(top_up_request.amount)} to "
        f"{top_up_request.org}. New balance: {top_up_request.ledger_entry.balance_after}."
    )


def declined(top_up_request: TopUpRequest) -> str:
    return (
        f"Declined request {top_up_request.reference} ({top_up_request.amount} "
        f"credit{pluralize(top_up_request.amount)} for "
        f"{top_up_request.org}). No credits moved."
    )
