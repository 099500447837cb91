"""Credits and generations in the admin.

The balance is a cache of the ledger's sum, so no one edits it or a ledger row here: credits move
only through generation.credits — a top-up (organization admins for their own organization,
superusers for any) or an adjustment (superusers only) — each of which appends a ledger entry with
the acting user.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from generation import credits
from generation.models import CreditAccount, Generation, LedgerEntry
from orgs.admin import OrgScopedAdmin

MAX_MOVEMENT = 1_000_000_000  # a typo guard, far above any real purchase


class TopUpForm(forms.Form):
    amount = forms.IntegerField(
        min_value=1, max_value=MAX_MOVEMENT, help_text="Credits to add to the organization's pool."
    )
    note = forms.CharField(
        max_length=200, required=False, help_text="Shown in the ledger, e.g. an invoice number."
    )


class AdjustmentForm(forms.Form):
    delta = forms.IntegerField(
        label="Change",
        min_value=-MAX_MOVEMENT,
        max_value=MAX_MOVEMENT,
        help_text="Positive adds credits, negative removes them. The balance cannot go below zero.",
    )
    note = forms.CharField(max_length=200, help_text="Why: kept in the ledger for good.")

    def clean_delta(self):
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError("An adjustment must change the balance.")
        return delta


class ReadOnlyAdmin(OrgScopedAdmin):
    """Viewable by superusers and the organization's admins; changed by no one."""

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ["org", "balance", "updated_at", "ledger_link", "top_up_link"]
    list_select_related = ["org"]
    search_fields = ["org__name"]
    fields = ["org", "balance", "updated_at"]
    change_form_template = "admin/generation/creditaccount/change_form.html"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/top-up/",
                self.admin_site.admin_view(self.top_up_view),
                name="generation_creditaccount_top_up",
            ),
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="generation_creditaccount_adjust",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Ledger")
    def ledger_link(self, obj):
        return format_html('<a href="{}">Ledger</a>', ledger_url(obj))

    @admin.display(description="Top up")
    def top_up_link(self, obj):
        url = reverse("admin:generation_creditaccount_top_up", args=[obj.pk])
        return format_html('<a href="{}">Top up credits</a>', url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_adjust": request.user.is_superuser}
        return super().change_view(request, object_id, form_url, extra_context)

    def _account(self, request, object_id) -> CreditAccount:
        """The account if the user may move its credits; other organizations' accounts are 404
        (get_queryset scopes them away), exactly as in the rest of the admin."""
        return get_object_or_404(self.get_queryset(request).select_related("org"), pk=object_id)

    def top_up_view(self, request, object_id):
        account = self._account(request, object_id)
        form = TopUpForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            entry = credits.top_up(
                org=account.org, amount=data["amount"], actor=request.user, note=data["note"]
            )
            self.message_user(
                request,
                f"Added {entry.amount} credits to {account.org}. "
                f"New balance: {entry.balance_after}.",
                messages.SUCCESS,
            )
            return redirect(ledger_url(account))
        return self._render_form(request, account, form, "Top up credits", "Add credits")

    def adjust_view(self, request, object_id):
        if not request.user.is_superuser:
            raise PermissionDenied("Only platform staff can adjust balances.")
        account = self._account(request, object_id)
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                entry = credits.adjust(
                    org=account.org, delta=data["delta"], actor=request.user, note=data["note"]
                )
            except credits.InsufficientCredits as exc:
                form.add_error("delta", f"The balance is {exc.available}; it cannot go below zero.")
            else:
                self.message_user(
                    request,
                    f"Adjusted {account.org} by {entry.delta:+d} credits. "
                    f"New balance: {entry.balance_after}.",
                    messages.SUCCESS,
                )
                return redirect(ledger_url(account))
        return self._render_form(request, account, form, "Adjust the balance", "Record adjustment")

    def _render_form(self, request, account, form, title, submit_label):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": account,
            "title": f"{title}: {account.org}",
            "form": form,
            "submit_label": submit_label,
            "balance": credits.balance_of(account.org),
        }
        return TemplateResponse(request, "admin/generation/creditaccount/credit_form.html", context)


def ledger_url(account: CreditAccount) -> str:
    """The ledger changelist narrowed to the account's organization (org admins see only theirs
    anyway)."""
    return reverse("admin:generation_ledgerentry_changelist") + f"?org__id__exact={account.org_id}"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """Append-only: not even a superuser adds, edits or deletes an entry here."""

    list_display = [
        "created_at", "org", "kind", "delta", "amount", "balance_after", "actor", "generation",
        "provider", "note",
    ]  # fmt: skip
    list_select_related = ["org", "actor", "generation", "provider"]
    search_fields = ["note"]
    fields = [
        "org", "kind", "delta", "amount", "balance_after", "actor", "generation", "image",
        "provider", "note", "created_at",
    ]  # fmt: skip

    def get_list_display(self, request):
        if request.user.is_superuser:
            return self.list_display
        return [name for name in self.list_display if name != "org"]

    def get_list_filter(self, request):
        # The organization filter would list every organization's name: superusers only.
        return ["kind", "org"] if request.user.is_superuser else ["kind"]


@admin.register(Generation)
class GenerationAdmin(ReadOnlyAdmin):
    list_display = ["short_prompt", "user", "provider_name", "count", "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["prompt"]

    @admin.display(description="Prompt", ordering="prompt")
    def short_prompt(self, obj):
        return obj.prompt if len(obj.prompt) <= 60 else obj.prompt[:59] + "…"
