from django.apps import AppConfig


class LibraryConfig(AppConfig):
    """The brand library: the organization's product and reference images, each kept once by
    content hash with its vision description; uploads enter through library/uploads.py."""

    name = "library"
