"""The permission matrix: every org-scoped view against admin, member, another org's admin and an
anonymous visitor."""

import pytest
from django.urls import reverse

from tests.factories import GenerationFactory, InvitationFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(org, admin_membership, member_membership):
    """One object of each kind in `org`, for URLs that take an id."""
    return {
        "membership": MembershipFactory(org=org),
        "invitation": InvitationFactory(org=org),
        "provider": org.providers.get(adapter="local-image"),
        # The admin's own generation: members see only their own, so theirs is a 404.
        "generation": GenerationFactory(org=org, user=admin_membership.user),
    }


# (url name, kwargs key, method, admin, member): expected status for each role.
# "ok" means the admin's request is served (200, or a redirect back after a POST).
VIEWS = [
    ("home", None, "get", 302, 302),
    ("workspace:dashboard", None, "get", 200, 403),
    ("workspace:members", None, "get", 200, 403),
    ("workspace:invite", None, "post", 302, 403),
    ("workspace:change-role", "membership", "post", 302, 403),
    ("workspace:remove-member", "membership", "post", 302, 403),
    ("workspace:resend-invitation", "invitation", "post", 302, 403),
    ("workspace:revoke-invitation", "invitation", "post", 302, 403),
    ("workspace:leave", None, "get", 200, 200),
    ("workspace:delete-organization", None, "get", 200, 403),
    # Only the person an invitation is addressed to may answer it: to anyone else it is a 404.
    ("workspace:accept-invitation", "invitation", "post", 404, 404),
    ("workspace:decline-invitation", "invitation", "post", 404, 404),
    ("generation:generate", None, "get", 200, 200),
    ("generation:history", None, "get", 200, 200),
    ("gallery:index", None, "get", 200, 200),
    ("generation:estimate", None, "get", 200, 200),
    ("generation:detail", "generation", "get", 200, 404),
    ("providers:index", None, "get", 200, 403),
    ("providers:test-connection", "provider", "post", 302, 403),
]

POST_DATA = {
    "workspace:invite": {"email": "new@acme.test", "role": "member"},
    "workspace:change-role": {"role": "admin"},
}


def _request(client, name, key, method, objects):
    args = [objects[key].public_id] if key else []
    url = reverse(name, args=args)
    if method == "post":
        return client.post(url, POST_DATA.get(name, {}))
    return client.get(url)


@pytest.mark.parametrize(("name", "key", "method", "admin_status", "member_status"), VIEWS)
def test_an_admin_can_use_every_org_view(
    client, admin, objects, name, key, method, admin_status, member_status
):
    client.force_login(admin)
    assert _request(client, name, key, method, objects).status_code == admin_status


@pytest.mark.parametrize(("name", "key", "method", "admin_status", "member_status"), VIEWS)
def test_a_member_is_refused_admin_views(
    client, member, objects, name, key, method, admin_status, member_status
):
    client.force_login(member)
    assert _request(client, name, key, method, objects).status_code == member_status


@pytest.mark.parametrize(("name", "key", "method", "admin_status", "member_status"), VIEWS)
def test_an_anonymous_visitor_is_sent_to_sign_in(
    client, objects, name, key, method, admin_status, member_status
):
    response = _request(client, name, key, method, objects)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(
    ("name", "key"), [(name, key) for name, key, *_ in VIEWS if key is not None]
)
def test_another_orgs_admin_gets_404_for_this_orgs_objects(client, other_admin, objects, name, key):
    client.force_login(other_admin)
    from providers.models import ProviderAttempt

    before = (objects["membership"].role, objects["invitation"].revoked_at)
    response = _request(client, name, key, "post", objects)
    assert response.status_code == 404
    objects["membership"].refresh_from_db()
    objects["invitation"].refresh_from_db()
    assert (objects["membership"].role, objects["invitation"].revoked_at) == before
    assert not ProviderAttempt.objects.exists()


def test_a_user_without_an_organization_is_sent_to_onboarding(client, django_user_model):
    user = django_user_model.objects.create_user(email="new@example.com")
    client.force_login(user)
    response = client.get(reverse("generation:generate"))
    assert response.status_code == 302
    assert response["Location"] == reverse("workspace:onboarding")


def test_the_403_page_is_friendly(member_client):
    response = member_client.get(reverse("workspace:members"))
    assert response.status_code == 403
    assert b"have access to this" in response.content


def test_the_404_page_is_friendly(admin_client):
    response = admin_client.post(
        reverse("workspace:remove-member", args=["00000000-0000-0000-0000-000000000000"])
    )
    assert response.status_code == 404
    assert b"find that" in response.content


def test_the_admin_navigation_is_shown_to_admins_only(admin_client, client, member):
    admin_page = admin_client.get(reverse("generation:generate")).content.decode()
    assert 'href="/members/"' in admin_page and 'href="/admin/"' in admin_page
    client.force_login(member)
    member_page = client.get(reverse("generation:generate")).content.decode()
    assert 'href="/gallery/"' in member_page
    assert 'href="/members/"' not in member_page and 'href="/admin/"' not in member_page


def test_home_sends_admins_to_the_dashboard_and_members_to_generate(admin_client, client, member):
    assert admin_client.get("/")["Location"] == reverse("workspace:dashboard")
    client.force_login(member)
    assert client.get("/")["Location"] == reverse("generation:generate")


def test_posts_without_a_csrf_token_are_refused(admin, org):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    response = client.post(reverse("workspace:invite"), {"email": "x@acme.test", "role": "member"})
    assert response.status_code == 403
    assert not org.invitations.exists()


def test_the_providers_page_runs_a_fixed_number_of_queries(
    admin_client, org, django_assert_max_num_queries
):
    from providers.models import ProviderAttempt

    for provider in org.providers.all():
        ProviderAttempt.objects.create(provider=provider, purpose="test", outcome="success")
    with django_assert_max_num_queries(6):
        assert admin_client.get(reverse("providers:index")).status_code == 200


def test_the_generation_page_runs_a_fixed_number_of_queries(
    admin_client, admin_membership, django_assert_max_num_queries
):
    from generation.models import GenerationImage

    generation = GenerationFactory(org=admin_membership.org, user=admin_membership.user, count=8)
    images = generation.new_images(8)
    for image in images:
        image.status, image.width, image.height = "done", 8, 8
        image.file, image.thumbnail = f"g/{image.index}.png", f"g/t{image.index}.webp"
    GenerationImage.objects.bulk_create(images)
    # session, user, membership, the generation with its products and references, its images,
    # the collections the lightbox offers
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("generation:detail", args=[generation.public_id]))
    assert response.status_code == 200
