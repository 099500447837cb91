from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


class UserAddForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["email", "name"]

    def save(self, commit=True):
        self.instance.set_unusable_password()  # sign-in is SSO
        return super().save(commit)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """Platform-wide users: superusers only (Django's permission checks deny everyone else)."""

    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "name", "avatar_url", "password"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_form = UserAddForm
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "name"]})]
    readonly_fields = ["last_login", "date_joined"]
    filter_horizontal = ["groups"]
