from django.urls import path

from gallery import media, views

app_name = "gallery"

urlpatterns = [
    path("gallery/", views.index, name="index"),
    path("images/<uuid:public_id>/", views.image_detail, name="image"),
    path("images/<uuid:public_id>/favourite/", views.favourite, name="favourite"),
    path("images/<uuid:public_id>/reuse/", views.reuse, name="reuse"),
    path("images/<uuid:public_id>/vary/", views.reuse, name="vary"),
    path("collections/", views.collections, name="collections"),
    path("collections/new/", views.create_collection, name="create-collection"),
    path("collections/images/", views.collect, name="collect"),
    path("collections/<uuid:public_id>/rename/", views.rename_collection, name="rename-collection"),
    path("collections/<uuid:public_id>/delete/", views.delete_collection, name="delete-collection"),
    # Files, for who may see them only (gallery/media.py); everyone else gets 404.
    path("images/<uuid:public_id>/file/", media.image_file, name="image-file"),
    path("images/<uuid:public_id>/thumbnail/", media.image_thumbnail, name="image-thumbnail"),
    path("images/download/", media.selection_zip, name="download-images"),
    path("images/download/all/", media.organization_zip, name="download-organization"),
    path(
        "generations/<uuid:public_id>/download/", media.generation_zip, name="download-generation"
    ),
    # Short-lived signed URLs for providers and the local provider (no session).
    path("files/<str:token>/", media.signed_file, name="signed-file"),
]
