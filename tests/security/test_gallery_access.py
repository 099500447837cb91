"""Who may open or change what in the gallery, the brand library and Again: one table over every
view and download, for six kinds of visitor.

The owning member is Max. He made the generated image (and its generation), the collection and
uploaded the library image. Nora is another member of the same organization; Ada is its admin;
Rita is the admin of another organization. Generated images are their maker's (and the admins');
the brand library and collections are the whole organization's, but only admins describe, archive
or delete library images and only a collection's maker or an admin renames or deletes it.

Pages (orgs.access.org_member_required) send anonymous visitors to sign-in and people without an
organization to onboarding; file URLs (org_member_or_404) answer 404 to both, so a URL reveals
nothing. Another organization's objects are 404 everywhere.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from credits import services as credits
from gallery import urls as gallery_urls
from gallery.models import Collection, CollectionItem, Favourite
from generation.models import Generation, GenerationImage
from library import urls as library_urls
from library.models import SourceImage
from tests.factories import (
    MembershipFactory,
    UserFactory,
    finished_image,
    image_bytes,
    stored_source_image,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("generate_page")]

ACTORS = ("anonymous", "no org", "other org", "other member", "owner", "admin")
LOGIN, ONBOARDING = "sign-in", "onboarding"

# What each visitor gets, in the order of ACTORS. A number is the status; a 302 that is not to
# sign-in or onboarding is the view's own redirect after it did its work.
# fmt: off
MATRIX = [
    # view                          method  anon    no org      other org  other member owner  admin
    ("gallery:index",               "GET",  LOGIN,  ONBOARDING, 200,       200,         200,   200),
    ("gallery:image",               "GET",  LOGIN,  ONBOARDING, 404,       404,         200,   200),
    ("gallery:favourite",           "POST", LOGIN,  ONBOARDING, 404,       404,         302,   302),
    ("gallery:reuse",               "GET",  LOGIN,  ONBOARDING, 404,       404,         302,   302),
    ("gallery:vary",                "GET",  LOGIN,  ONBOARDING, 404,       404,         302,   302),
    ("gallery:collections",         "GET",  LOGIN,  ONBOARDING, 200,       200,         200,   200),
    ("gallery:create-collection",   "POST", LOGIN,  ONBOARDING, 404,       404,         302,   302),
    ("gallery:rename-collection",   "POST", LOGIN,  ONBOARDING, 404,       403,         302,   302),
    ("gallery:delete-collection",   "POST", LOGIN,  ONBOARDING, 404,       403,         302,   302),
    ("gallery:collect",             "POST", LOGIN,  ONBOARDING, 404,       404,         302,   302),
    ("gallery:image-file",          "GET",  404,    404,        404,       404,         200,   200),
    ("gallery:image-thumbnail",     "GET",  404,    404,        404,       404,         200,   200),
    ("gallery:download-images",     "POST", 404,    404,        404,       404,         200,   200),
    ("gallery:download-generation", "GET",  404,    404,        404,       404,         200,   200),
    # Admins only; another organization's admin gets their own (none: sent back to Settings).
    ("gallery:download-organization", "GET", LOGIN, ONBOARDING, 302,       403,         403,   200),
    ("library:index",               "GET",  LOGIN,  ONBOARDING, 200,       200,         200,   200),
    ("library:upload",              "POST", LOGIN,  ONBOARDING, 302,       302,         302,   302),
    ("library:picker",              "GET",  LOGIN,  ONBOARDING, 200,       200,         200,   200),
    ("library:detail",              "GET",  LOGIN,  ONBOARDING, 404,       200,         200,   200),
    ("library:describe",            "POST", LOGIN,  ONBOARDING, 404,       403,         403,   302),
    ("library:archive",             "POST", LOGIN,  ONBOARDING, 404,       403,         403,   302),
    ("library:delete",              "POST", LOGIN,  ONBOARDING, 404,       403,         403,   302),
    ("library:file",                "GET",  404,    404,        404,       200,         200,   200),
    ("library:thumbnail",           "GET",  404,    404,        404,       200,         200,   200),
    ("generation:again",            "GET",  LOGIN,  ONBOARDING, 404,       404,         200,   200),
    ("generation:again",            "POST", LOGIN,  ONBOARDING, 404,       404,         302,   302),
]
# fmt: on

# Which of Max's objects each URL names (none: the view has no object in its URL).
TARGETS = {
    "gallery:image": "image",
    "gallery:favourite": "image",
    "gallery:reuse": "image",
    "gallery:vary": "image",
    "gallery:rename-collection": "collection",
    "gallery:delete-collection": "collection",
    "gallery:image-file": "image",
    "gallery:image-thumbnail": "image",
    "gallery:download-generation": "generation",
    "library:detail": "source",
    "library:describe": "source",
    "library:archive": "source",
    "library:delete": "source",
    "library:file": "source",
    "library:thumbnail": "source",
    "generation:again": "generation",
}

# What a POST sends, and how to tell that it changed something. A change must happen exactly when
# someone of the organization is let through; refused requests change nothing, anywhere.
POSTED: dict[str, Callable] = {
    "gallery:favourite": lambda w: {},
    "gallery:create-collection": lambda w: {"name": "Fresh board", "images": [w.image.public_id]},
    "gallery:rename-collection": lambda w: {"name": "Renamed board"},
    "gallery:delete-collection": lambda w: {},
    "gallery:collect": lambda w: {
        "collection": w.collection.public_id,
        "images": [w.image.public_id],
    },
    "gallery:download-images": lambda w: {"images": [w.image.public_id]},
    "library:upload": lambda w: {"images": [fresh_upload()]},
    "library:describe": lambda w: {"name": "Hero bottle", "tags": "summer, hero"},
    "library:archive": lambda w: {},
    "library:delete": lambda w: {},
    "generation:again": lambda w: {},
}
CHANGED: dict[str, Callable] = {
    "gallery:favourite": lambda w: Favourite.objects.filter(image=w.image).exists(),
    "gallery:create-collection": lambda w: Collection.objects.filter(name="Fresh board").exists(),
    "gallery:rename-collection": lambda w: Collection.objects.filter(name="Renamed board").exists(),
    "gallery:delete-collection": lambda w: (
        not Collection.objects.filter(pk=w.collection.pk).exists()
    ),
    "gallery:collect": lambda w: CollectionItem.objects.filter(image=w.image).exists(),
    "gallery:download-images": lambda w: False,  # a download changes nothing (READ_ONLY)
    "library:upload": lambda w: SourceImage.objects.filter(
        org=w.org, original_name="fresh.png"
    ).exists(),
    "library:describe": lambda w: SourceImage.objects.filter(
        pk=w.source.pk, name="Hero bottle"
    ).exists(),
    "library:archive": lambda w: SourceImage.objects.filter(
        pk=w.source.pk, archived_at__isnull=False
    ).exists(),
    "library:delete": lambda w: SourceImage.objects.filter(
        pk=w.source.pk, deleted_at__isnull=False
    ).exists(),
    "generation:again": lambda w: (
        Generation.objects.count() > 1 or credits.balance_of(w.org) != 100
    ),
}

READ_ONLY = {"gallery:download-images"}  # POSTed (a list of ids), yet changes nothing


@dataclass
class World:
    org: object
    image: GenerationImage  # Max's
    generation: Generation  # its generation
    collection: Collection  # Max's board
    source: SourceImage  # uploaded by Max to the brand library
    clients: dict[str, Client]


def fresh_upload():
    return SimpleUploadedFile(
        "fresh.png", image_bytes("PNG", (20, 20), (9, 99, 199)), content_type="image/png"
    )


def _client(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def world(org, admin, member_membership, other_admin) -> World:
    max_ = member_membership.user
    credits.top_up(org=org, amount=100)
    local = org.providers.get(adapter="local-image")
    source = stored_source_image(org, uploaded_by=max_)
    image = finished_image(member_membership, prompt="Max's mug on linen", products=[source])
    Generation.objects.filter(pk=image.generation_id).update(
        provider=local, provider_name=local.name, quality=local.default_quality
    )
    image.refresh_from_db()
    collection = Collection.objects.create(org=org, name="Spring launch board", created_by=max_)
    clients = {
        "anonymous": _client(),
        "no org": _client(UserFactory()),
        "other org": _client(other_admin),
        "other member": _client(MembershipFactory(org=org).user),
        "owner": _client(max_),
        "admin": _client(admin),
    }
    return World(org, image, image.generation, collection, source, clients)


def url_of(world: World, view: str) -> str:
    target = TARGETS.get(view)
    return reverse(view, args=[getattr(world, target).public_id] if target else [])


def send(client: Client, world: World, view: str, method: str):
    url = url_of(world, view)
    if method == "GET":
        return client.get(url, {"role": "products"} if view == "library:picker" else None)
    return client.post(url, POSTED[view](world))


def assert_answer(response, expected):
    location = response.get("Location", "")
    if expected == LOGIN:
        assert response.status_code == 302
        assert location.startswith(reverse("account_login"))
    elif expected == ONBOARDING:
        assert response.status_code == 302
        assert location == reverse("workspace:onboarding")
    else:
        assert response.status_code == expected
        if expected == 302:  # the view's own redirect, not the access layer's
            assert not location.startswith(reverse("account_login"))
            assert location != reverse("workspace:onboarding")
        if expected == 404:
            assert not location  # never a hint that signing in would help
    if response.streaming:
        body = b"".join(response.streaming_content)
        assert body  # a file or zip that is served is served whole
        response.close()


def _cases():
    for view, method, *answers in MATRIX:
        for actor, expected in zip(ACTORS, answers, strict=True):
            yield pytest.param(view, method, actor, expected, id=f"{method} {view} {actor}")


def test_the_matrix_covers_every_gallery_and_library_view_once_per_method():
    named = {f"gallery:{p.name}" for p in gallery_urls.urlpatterns}
    named |= {f"library:{p.name}" for p in library_urls.urlpatterns}
    named -= {"gallery:signed-file"}  # no session: its token is the permission (test_media_access)
    assert named | {"generation:again"} == {view for view, *_ in MATRIX}
    rows = [(view, method) for view, method, *_ in MATRIX]
    assert len(rows) == len(set(rows))
    assert all(len(answers) == len(ACTORS) for _, _, *answers in MATRIX)
    assert {view for view, method in rows if method == "POST"} == set(POSTED) == set(CHANGED)


@pytest.mark.parametrize(("view", "method", "actor", "expected"), _cases())
def test_who_may_open_or_change_what(world, view, method, actor, expected):
    response = send(world.clients[actor], world, view, method)

    assert_answer(response, expected)
    if method == "POST":
        let_through = expected in (200, 302) and actor != "other org" and view not in READ_ONLY
        assert CHANGED[view](world) is let_through


# --- Pages everyone signed in opens show only what each may see ----------------------------------

# (page, what Max's object shows there, who must not see it)
SHARED_PAGES = [
    ("gallery:index", "image", "other org"),
    ("gallery:index", "image", "other member"),
    ("gallery:collections", "collection", "other org"),
    ("library:index", "source", "other org"),
    ("library:picker", "source", "other org"),
]


def shown(world: World, what: str) -> str:
    obj = getattr(world, what)
    return obj.name if what == "collection" else str(obj.public_id)


@pytest.mark.parametrize(("view", "what", "actor"), SHARED_PAGES)
def test_pages_every_member_opens_show_nothing_they_may_not_see(world, view, what, actor):
    owners_page = send(world.clients["owner"], world, view, "GET").content.decode()
    assert shown(world, what) in owners_page  # it is on the page, for who may see it

    page = send(world.clients[actor], world, view, "GET")

    assert page.status_code == 200
    assert shown(world, what) not in page.content.decode()


# --- Methods and CSRF -----------------------------------------------------------------------------

CHANGING = [(view, method) for view, method, *_ in MATRIX if method == "POST"]
# Again answers GET with its confirmation page (in the matrix); every other POST is POST only.
POST_ONLY = [view for view, _ in CHANGING if view != "generation:again"]
FILES = ["gallery:image-file", "gallery:image-thumbnail", "gallery:download-generation"]
FILES += ["library:file", "library:thumbnail"]


@pytest.mark.parametrize("view", POST_ONLY)
def test_state_changing_views_refuse_get(world, view):
    response = world.clients["admin"].get(url_of(world, view))

    assert response.status_code == 405
    assert CHANGED[view](world) is False


@pytest.mark.parametrize("view", FILES)
def test_file_urls_refuse_post(world, view):
    response = world.clients["admin"].post(url_of(world, view))
    assert response.status_code == 405


def test_again_refuses_other_methods(world):
    response = world.clients["owner"].put(url_of(world, "generation:again"))
    assert response.status_code == 405
    assert Generation.objects.count() == 1


@pytest.mark.parametrize(("view", "method"), CHANGING, ids=[v for v, _ in CHANGING])
def test_state_changing_views_require_the_csrf_token(world, admin, view, method):
    client = _client(admin, enforce_csrf_checks=True)

    response = client.post(url_of(world, view), POSTED[view](world))

    assert response.status_code == 403
    assert CHANGED[view](world) is False
