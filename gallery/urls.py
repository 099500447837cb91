from django.urls import path

from gallery import media, views

app_name = "gallery"

urlpatterns = [
    path("gallery/", views.index, name="index"),
    # Stored files, for members only (gallery/media.py); outsiders get 404.
    path("images/<uuid:public_id>/", media.image_file, name="image-file"),
    path("images/<uuid:public_id>/thumbnail/", media.image_thumbnail, name="image-thumbnail"),
    path(
        "generations/<uuid:public_id>/sources/<str:sha256>/",
        media.source_file,
        name="source-file",
    ),
    # Short-lived signed URLs for providers and the local provider (no session).
    path("files/<str:token>/", media.signed_file, name="signed-file"),
]
