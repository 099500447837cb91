import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect

from orgs import services
from orgs.access import get_membership
from orgs.events import announce
from orgs.models import Invitation, Membership, Organization, OrgError


class ReadOnly:
    """A ModelAdmin mixin: rows are viewed, never added, changed or deleted here."""

    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OrgScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin that organization admins may use, limited to their own organization's rows.

    Superusers keep Django's normal behaviour. `org_field` is the lookup from the model to its
    organization.
    """

    org_field = "org"
    org_admin_can_add = False
    org_admin_can_delete = False

    def _admin_org(self, request):
        membership = get_membership(request)
        return membership.org if membership and membership.is_admin else None

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        org = self._admin_org(request)
        return qs.filter(**{self.org_field: org.pk}) if org else qs.none()

    def _allowed(self, request, obj=None):
        org = self._admin_org(request)
        if org is None:
            return False
        return obj is None or self._org_id_of(obj) == org.pk

    def _org_id_of(self, obj) -> int | None:
        """The organization an object belongs to, following `org_field` without a query where
        the last step is a foreign key (the changelist asks once per editable row)."""
        *path, last = self.org_field.split("__")
        for name in path:
            obj = getattr(obj, name)
        return obj.pk if last == "pk" else getattr(obj, f"{last}_id")

    def _scoped_choices(self, db_field, request):
        """For an org admin, a foreign key may only point at their own organization's rows: the
        organization itself, another org-scoped model's rows, or the organization's members."""
        if request.user.is_superuser:
            return None
        org = self._admin_org(request)
        related = db_field.remote_field.model
        if related is get_user_model():
            return related.objects.filter(membership__org=org) if org else related.objects.none()
        try:
            related_admin = self.admin_site.get_model_admin(related)
        except NotRegistered:
            return None
        if isinstance(related_admin, OrgScopedAdmin):
            return related_admin.get_queryset(request)
        return None

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        queryset = self._scoped_choices(db_field, request)
        if queryset is not None:
            kwargs.setdefault("queryset", queryset)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        queryset = self._scoped_choices(db_field, request)
        if queryset is not None:
            kwargs.setdefault("queryset", queryset)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_superuser or self._admin_org(request) is not None

    def changelist_view(self, request, extra_context=None):
        """A list-editable save naming a row outside the admin's list (another organization's,
        or one that does not exist) changes nothing and says so."""
        if request.method == "POST" and self.list_editable and "_save" in request.POST:
            posted = {v for k, v in request.POST.items() if re.fullmatch(r"form-\d+-id", k)}
            known = {str(pk) for pk in self.get_queryset(request).values_list("pk", flat=True)}
            if posted - known:
                self.message_user(
                    request,
                    "The list changed or names rows that are not yours; nothing was saved. "
                    "Here is the current list.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self._allowed(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) or self._allowed(request, obj)

    def has_add_permission(self, request):
        if request.user.is_superuser:
            return super().has_add_permission(request)
        return self.org_admin_can_add and self._allowed(request)

    def has_delete_permission(self, request, obj=None):
        if request.user.is_superuser:
            return super().has_delete_permission(request, obj)
        return self.org_admin_can_delete and self._allowed(request, obj)


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "pk"
    list_display = ["name", "slug", "public_id", "created_at", "deleted_at"]
    search_fields = ["name", "slug"]
    # Limits, warnings and the time zone are changed on the Organization settings page, which
    # records each change in the audit log. "Deleted at": removed in the background since.
    fields = ["name", "slug", "public_id", "created_at", "deleted_at"]
    readonly_fields = ["slug", "public_id", "created_at", "deleted_at"]

    def has_delete_permission(self, request, obj=None):
        """Nobody here: an organization is deleted with its files and an audit event by
        workspace.services.delete_organization (an admin's Settings page, the operators'
        delete_organization command), never by a bare cascade."""
        return False

    def save_model(self, request, obj, form, change):
        """A rename here is recorded as the settings page records it (org.settings_changed), in
        the admin's transaction: for an organization admin, and for an operator (who reads as
        NER Studio in the organization's log)."""
        super().save_model(request, obj, form, change)
        if change and "name" in form.changed_data:
            announce(
                actor=request.user,
                action="org.settings_changed",
                org=obj,
                target=obj,
                before={"name": form.initial["name"]},
                after={"name": obj.name},
            )


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        if self.instance.pk and role != Membership.Role.ADMIN:
            try:
                self.instance.ensure_not_last_admin()  # the admin view runs in a transaction
            except OrgError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return role


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    form = MembershipAdminForm
    org_admin_can_delete = True
    list_display = ["user", "user_email", "role", "org", "joined_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "user__name"]
    list_select_related = ["user", "org"]
    readonly_fields = ["user", "org", "joined_at"]
    fields = ["user", "org", "role", "joined_at"]
    actions = None  # removal goes through the last-admin rule one member at a time

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    def has_add_permission(self, request):
        return False  # people join through invitations

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_admin and obj.org.memberships.admins().count() == 1:
            return False  # the last admin stays
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        services.change_role(membership=obj, role=obj.role, actor=request.user)

    def delete_model(self, request, obj):
        services.remove_member(membership=obj, actor=request.user)


@admin.register(Invitation)
class InvitationAdmin(OrgScopedAdmin):
    list_display = ["email", "role", "status_label", "org", "invited_by", "sent_at", "expires_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    list_select_related = ["org", "invited_by"]
    readonly_fields = [
        "org",
        "email",
        "role",
        "invited_by",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "declined_at",
        "revoked_at",
    ]
    fields = readonly_fields
    actions = ["resend", "revoke"]

    @admin.display(description="Status")
    def status_label(self, obj):
        return obj.get_status_display()

    def has_add_permission(self, request):
        return False  # invitations are sent from the Members page, which emails the link

    @admin.action(description="Re-send selected invitations")
    def resend(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda inv: services.resend_invitation(invitation=inv, invited_by=request.user),
            "re-sent",
        )

    @admin.action(description="Revoke selected invitations")
    def revoke(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda inv: services.revoke_invitation(invitation=inv, actor=request.user),
            "revoked",
        )

    def _each(self, request, queryset, action, verb):
        done = 0
        for invitation in queryset:
            try:
                action(invitation)
                done += 1
            except OrgError as exc:
                self.message_user(request, f"{invitation.email}: {exc}", messages.WARNING)
        if done:
            self.message_user(request, f"{done} invitation(s) {verb}.", messages.SUCCESS)
