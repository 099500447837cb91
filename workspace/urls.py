from django.urls import path

from workspace import settings_views, views

app_name = "workspace"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/export/ledger.csv", views.export_ledger, name="export-ledger"),
    path("dashboard/export/usage.csv", views.export_usage, name="export-usage"),
    path("credits/request/", views.request_credits, name="request-credits"),
    path(
        "credits/requests/<uuid:public_id>/withdraw/",
        views.withdraw_credit_request,
        name="withdraw-credit-request",
    ),
    path("settings/", settings_views.organization_settings, name="settings"),
    path(
        "settings/limits/<uuid:public_id>/",
        settings_views.set_monthly_limit,
        name="set-monthly-limit",
    ),
    path("settings/delete/", settings_views.delete_organization, name="delete-organization"),
    path("welcome/", views.onboarding, name="onboarding"),
    path(
        "welcome/invitations/<uuid:public_id>/accept/",
        views.accept_invitation,
        name="accept-invitation",
    ),
    path(
        "welcome/invitations/<uuid:public_id>/decline/",
        views.decline_invitation,
        name="decline-invitation",
    ),
    path("leave/", views.leave_organization, name="leave"),
    path("invite/<str:token>/", views.invitation, name="invitation"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.invite, name="invite"),
    path("members/<uuid:public_id>/role/", views.change_role, name="change-role"),
    path("members/<uuid:public_id>/remove/", views.remove_member, name="remove-member"),
    path("invitations/<uuid:public_id>/resend/", views.resend_invitation, name="resend-invitation"),
    path("invitations/<uuid:public_id>/revoke/", views.revoke_invitation, name="revoke-invitation"),
]
