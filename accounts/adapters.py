"""allauth adapters: fill the profile from Google and send users to onboarding."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        """Local (non-Google) accounts only exist for the development sign-in."""
        return settings.NERSTUDIO_DEV_SIGNIN


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        extra = sociallogin.account.extra_data or {}
        user.name = (data.get("name") or extra.get("name") or "").strip()[:150]
        user.avatar_url = (extra.get("picture") or "")[:500]
        return user
