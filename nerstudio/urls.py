from django.contrib import admin
from django.urls import include, path

from generation.consumers import GenerationConsumer
from workspace import health
from workspace import views as workspace_views

# No route serves MEDIA_ROOT: stored files go out only through access-checked views
# (gallery/media.py, library/views.py; both through lib/serving.py) and short-lived signed URLs.
urlpatterns = [
    path("", workspace_views.home, name="home"),
    path("healthz/", health.healthz, name="healthz"),  # liveness
    path("readyz/", health.readyz, name="readyz"),  # readiness (workspace/health.py)
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
    path(GenerationConsumer.route.removeprefix("/"), GenerationConsumer.as_asgi()),
]
