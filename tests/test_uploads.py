"""Uploads are checked by decoding them, never by their name or the browser's content type."""

import hashlib
import warnings

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation.uploads import human_bytes, human_pixels, validate_image
from tests.factories import image_bytes, png_header_claiming


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def refusal(uploaded) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_image(uploaded)
    (message,) = caught.value.messages
    return message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_jpeg_png_or_webp_is_accepted_with_its_bytes_hash_and_size(fmt):
    data = image_bytes(fmt, size=(24, 16))

    image = validate_image(upload(f"product.{fmt.lower()}", data))

    assert image.format == fmt
    assert (image.width, image.height) == (24, 16)
    assert image.data == data  # the original bytes are kept
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.name == f"product.{fmt.lower()}"


def test_the_format_comes_from_the_content_not_the_name():
    image = validate_image(upload("looks-like.png", image_bytes("JPEG"), "image/png"))
    assert image.format == "JPEG"


def test_a_gif_named_png_is_refused_by_its_content():
    message = refusal(upload("photo.png", image_bytes("GIF"), "image/png"))
    assert message == "photo.png is not a JPEG, PNG or WebP image."


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_refused(fmt):
    assert refusal(upload(f"photo.{fmt.lower()}", image_bytes(fmt))) == (
        f"photo.{fmt.lower()} is not a JPEG, PNG or WebP image."
    )


def test_a_text_file_with_an_image_name_is_refused():
    message = refusal(upload("notes.jpg", b"just some text, honestly", "image/jpeg"))
    assert message == "notes.jpg is not a JPEG, PNG or WebP image."


def test_an_empty_file_is_refused():
    assert refusal(upload("empty.png", b"")) == "empty.png is not a JPEG, PNG or WebP image."


def test_a_file_over_the_size_limit_is_refused_before_it_is_decoded(settings):
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)  # not even an image: size comes first
    assert refusal(upload("big.png", data)) == "big.png is larger than 10 MB."


def test_the_size_limit_applies_to_the_bytes_read_not_only_the_declared_size(settings):
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 100
    uploaded = upload("liar.png", image_bytes("PNG", size=(64, 64)))
    uploaded.size = 10  # a file object that under-reports its size
    assert refusal(uploaded) == "liar.png is larger than 100 bytes."


def test_an_image_with_more_pixels_than_the_limit_is_refused_from_its_header(settings):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 40_000_000
    # 7000 × 7000 = 49 MP, below Pillow's own bomb threshold: our limit refuses it.
    assert refusal(upload("huge.png", png_header_claiming(7000, 7000))) == (
        "huge.png has more than 40 megapixels."
    )


def test_a_decompression_bomb_is_refused_as_too_many_pixels():
    bomb = png_header_claiming(100_000, 100_000)  # 10 gigapixels: Pillow raises on open
    assert refusal(upload("bomb.png", bomb)) == "bomb.png has more than 40 megapixels."


def test_pillows_bomb_warning_counts_as_too_many_pixels_too(settings, monkeypatch):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 10**12  # ours set too high: Pillow's threshold holds
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    header = png_header_claiming(40, 40)  # 1600 pixels: over Pillow's warning threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert refusal(upload("bomb.png", header)) == "bomb.png has more than 1,000 pixels."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert refusal(upload("bomb.png", header)) == "bomb.png has more than 1,000 pixels."


def test_a_lowered_pixel_limit_is_named_in_pixels(settings):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 100
    assert refusal(upload("small.webp", image_bytes("WEBP", size=(20, 20)))) == (
        "small.webp has more than 100 pixels."
    )


def test_a_truncated_image_is_refused_as_damaged():
    data = image_bytes("PNG", size=(64, 64))
    message = refusal(upload("cut.png", data[: len(data) // 2]))
    assert message == "cut.png could not be read: the file is damaged or incomplete."


def test_a_png_with_a_corrupted_chunk_is_refused_as_damaged():
    data = bytearray(image_bytes("PNG", size=(64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 10 : idat + 20] = b"\xff" * 10  # break the compressed pixels and their CRC
    message = refusal(upload("broken.png", bytes(data)))
    assert message == "broken.png could not be read: the file is damaged or incomplete."


def test_a_truncated_jpeg_is_refused_as_damaged():
    data = image_bytes("JPEG", size=(64, 64), colour=(10, 120, 240))
    message = refusal(upload("cut.jpg", data[: len(data) // 2], "image/jpeg"))
    assert message == "cut.jpg could not be read: the file is damaged or incomplete."


def test_a_path_in_the_name_is_not_echoed():
    assert refusal(upload("../../etc/photo.gif", image_bytes("GIF"))) == (
        "photo.gif is not a JPEG, PNG or WebP image."
    )


@pytest.mark.parametrize(
    ("n", "text"),
    [(10 * 1024 * 1024, "10 MB"), (1536 * 1024, "1.5 MB"), (2048, "2 KB"), (100, "100 bytes")],
)
def test_byte_limits_read_naturally(n, text):
    assert human_bytes(n) == text


@pytest.mark.parametrize(("n", "text"), [(40_000_000, "40 megapixels"), (5_000, "5,000 pixels")])
def test_pixel_limits_read_naturally(n, text):
    assert human_pixels(n) == text
