"""Uploads are judged by their content, never by their name or the browser's content type: the
form checks size and header (check_image), start_generation decodes and re-encodes (ingest_image).
A file refused at either step is named in the message."""

import hashlib
import io
import warnings

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageChops

from library.uploads import check_image, human_pixels, ingest_image
from tests.factories import image_bytes, png_header_claiming


def upload(name, data, content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def accepted(uploaded):
    """Both steps, as a request runs them: the form's checks, then the decode."""
    return ingest_image(check_image(uploaded))


def refusal(uploaded) -> str:
    with pytest.raises(ValidationError) as caught:
        accepted(uploaded)
    (message,) = caught.value.messages
    return message


def stored_bytes(image) -> bytes:
    return image.content().read()  # what storage.save() would write


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_jpeg_png_or_webp_is_accepted_with_its_bytes_hash_and_size(fmt):
    data = image_bytes(fmt, size=(24, 16))

    image = accepted(upload(f"product.{fmt.lower()}", data))

    stored = stored_bytes(image)
    assert image.format == fmt
    assert (image.width, image.height) == (24, 16)
    assert image.sha256 == hashlib.sha256(stored).hexdigest()  # the bytes that are stored
    assert image.size == len(stored)
    assert image.name == f"product.{fmt.lower()}"
    with Image.open(io.BytesIO(stored)) as again:  # re-encoded to the same format and picture
        assert (again.format, again.size, again.mode) == (fmt, (24, 16), "RGB")
        r, g, b = again.getpixel((12, 8))
        assert abs(r - 200) < 8 and abs(g - 40) < 8 and abs(b - 60) < 8


def test_a_png_is_reencoded_without_losing_a_pixel():
    source = Image.effect_noise((40, 30), 80).convert("RGB")
    out = io.BytesIO()
    source.save(out, "PNG")

    image = accepted(upload("noise.png", out.getvalue()))

    with Image.open(io.BytesIO(stored_bytes(image))) as again:
        assert again.tobytes() == source.tobytes()


def test_the_format_comes_from_the_content_not_the_name():
    image = accepted(upload("looks-like.png", image_bytes("JPEG"), "image/png"))
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
    assert refusal(upload("big.png", data)) == "big.png is larger than 10.0\N{NO-BREAK SPACE}MB."


def test_the_size_limit_applies_to_the_bytes_read_not_only_the_declared_size(settings):
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 100
    uploaded = upload("liar.png", image_bytes("PNG", size=(64, 64)))
    uploaded.size = 10  # a file object that under-reports its size
    assert refusal(uploaded) == "liar.png is larger than 100\N{NO-BREAK SPACE}bytes."


def test_an_image_with_more_pixels_than_the_limit_is_refused_from_its_header(settings):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 40_000_000
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 10**9  # PNG limited by the general limit only
    # 7000 × 7000 = 49 MP, below Pillow's own bomb threshold: our limit refuses it.
    with pytest.raises(ValidationError) as caught:
        check_image(upload("huge.png", png_header_claiming(7000, 7000)))  # the header alone
    assert caught.value.messages == ["huge.png has more than 40 megapixels."]


def test_a_png_over_what_is_decoded_at_once_is_refused_and_told_about_jpeg(settings):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 40_000_000
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 4096 * 4096
    assert refusal(upload("poster.png", png_header_claiming(5000, 4000))) == (
        "poster.png has more than 16.8 megapixels, the most for a PNG image; save it smaller or "
        "as a JPEG (up to 40 megapixels)."
    )
    assert check_image(upload("square.png", png_header_claiming(4096, 4096))).format == "PNG"


def test_a_webp_has_its_own_lower_pixel_limit(settings):
    settings.NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS = 32 * 32
    assert refusal(upload("mood.webp", image_bytes("WEBP", size=(40, 30)))) == (
        "mood.webp has more than 1,024 pixels, the most for a WebP image; save it smaller or as "
        "a JPEG (up to 40 megapixels)."
    )
    assert accepted(upload("mood.webp", image_bytes("WEBP", size=(32, 32)))).format == "WEBP"


def test_a_decompression_bomb_is_refused_as_too_many_pixels(settings):
    settings.NERSTUDIO_UPLOAD_MAX_PIXELS = 40_000_000
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
    [(40_000_000, "40 megapixels"), (4096 * 4096, "16.8 megapixels"), (5_000, "5,000 pixels")],
)
def test_pixel_limits_read_naturally(n, text):
    assert human_pixels(n) == text


@pytest.mark.parametrize(
    ("mode", "size"), [("RGB", (1000, 700)), ("RGBA", (700, 1000)), ("L", (3000, 200))]
)
def test_resizing_in_bands_gives_the_picture_a_whole_image_resize_gives(settings, mode, size):
    settings.NERSTUDIO_UPLOAD_MAX_SIDE = 256
    noise = Image.effect_noise(size, 90)
    source = (
        Image.merge(mode, [noise] * len(mode))
        if mode != "RGBA"
        else Image.merge("RGBA", [noise, noise, noise, Image.linear_gradient("L").resize(size)])
    )
    out = io.BytesIO()
    source.save(out, "PNG")

    image = accepted(upload("big.png", out.getvalue()))

    whole = source.resize((image.width, image.height), Image.Resampling.LANCZOS)
    assert max(image.width, image.height) == 256
    with Image.open(io.BytesIO(stored_bytes(image))) as banded:
        difference = ImageChops.difference(banded.convert("RGBA"), whole.convert("RGBA"))
        assert all(high <= 1 for _, high in difference.getextrema())  # rounding at most
