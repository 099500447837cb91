"""allauth adapters: fill the profile from Google, keep allauth's routine messages quiet, and
route the first sign-in through the name question."""

from urllib.parse import urlencode

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import first_sign_in

# The product says what happened in its own words (e.g. "Welcome to Demo Studio"); allauth's
# "Successfully signed in as …" beside it would be a second message for one event, and the
# code pages already say where the code went.
QUIET_MESSAGES = {
    "account/messages/logged_in.txt",
    "account/messages/email_confirmed.txt",
    "account/messages/login_code_sent.txt",
    "account/messages/email_confirmation_sent.txt",
}


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "unknown_email": "No account uses this email yet. Create one with it below.",
    }

    def is_open_for_signup(self, request):
        """Local (non-Google) accounts only exist for the development sign-in."""
        return settings.NERSTUDIO_DEV_SIGNIN

    def add_message(self, request, level, message_template=None, *args, **kwargs):
        if message_template in QUIET_MESSAGES:
            return
        super().add_message(request, level, message_template, *args, **kwargs)

    def post_login(self, request, user, **kwargs):
        response = super().post_login(request, user, **kwargs)
        if not isinstance(response, HttpResponseRedirect):
            return response
        url = first_sign_in.pop_after_sign_in(request) or response.url
        if first_sign_in.needs_name(request, user):
            url = f"{reverse('workspace:onboarding')}?{urlencode({'next': url})}"
        response["Location"] = url
        return response


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        extra = sociallogin.account.extra_data or {}
        user.name = (data.get("name") or extra.get("name") or "").strip()[:150]
        user.avatar_url = (extra.get("picture") or "")[:500]
        return user
