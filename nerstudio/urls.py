from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from generation.consumers import GenerationConsumer
from workspace import views as workspace_views


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


# No route serves MEDIA_ROOT: stored files go out only through access-checked views
# (gallery/media.py, library/views.py; both through lib/serving.py) and short-lived signed URLs.
urlpatterns = [
    path("", workspace_views.home, name="home"),
    path("healthz/", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("workspace.urls")),
    path("", include("generation.urls")),
    path("", include("gallery.urls")),
    path("", include("library.urls")),
    path("", include("providers.urls")),
    path("", include("audit.urls")),
]

# Websocket routes (nerstudio/asgi.py): each app that pushes live updates adds its consumer here.
websocket_urlpatterns = [
    path("ws/generations/<uuid:public_id>/", GenerationConsumer.as_asgi()),
]
