from django.urls import path

from library import views

app_name = "library"

urlpatterns = [
    path("library/", views.index, name="index"),
    path("library/upload/", views.upload, name="upload"),
    path("library/picker/", views.picker, name="picker"),
    path("library/<uuid:public_id>/", views.detail, name="detail"),
    path("library/<uuid:public_id>/describe/", views.describe, name="describe"),
    path("library/<uuid:public_id>/archive/", views.archive, name="archive"),
    path("library/<uuid:public_id>/delete/", views.delete, name="delete"),
    # Files, for the organization's members only; everyone else gets 404.
    path("library/<uuid:public_id>/file/", views.file, name="file"),
    path("library/<uuid:public_id>/thumbnail/", views.thumbnail, name="thumbnail"),
]
