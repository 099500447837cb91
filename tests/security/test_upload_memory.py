"""Uploads within fixed memory (issue 7): request bodies are capped before they are read, the form
only reads headers, images are decoded one at a time and only once everything else passed, and
what is stored is a re-encoded copy without metadata. bench/upload_memory.py measures the result
against a real server."""

import asyncio
import hashlib
import io
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from PIL import Image, ImageFile

from credits import services as credits
from generation.models import Generation
from lib.http_limits import CALLBACK_PREFIX, LIBRARY_UPLOAD_PATH, UPLOAD_PATH, RequestBodyLimit
from library import uploads
from library.models import SourceImage
from library.uploads import check_image, ingest_image
from tests import generate_form
from tests.factories import image_bytes, photo_with_metadata, png_header_claiming
from tests.generate_form import stored_files, upload

GENERATE = reverse("generation:generate")

pytestmark = pytest.mark.usefixtures("generate_page")


def form_data(model, **overrides) -> dict:
    """One small photo, one image: the cheapest generation there is."""
    photo = upload("product.png", image_bytes("PNG", size=(64, 48)))
    return generate_form.form_data(model, **{"products": [photo], "count": 1, **overrides})


@pytest.fixture
def decodes(monkeypatch):
    """Every pixel decode in this process, as the size decoded: a spy on Pillow's ImageFile.load,
    which still does the real work (a load() with no tiles left to decode is not a decode)."""
    sizes = []
    real_load = ImageFile.ImageFile.load

    def load(self):
        if self.tile:
            sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


# --- Request bodies are capped before anything reads them (lib/http_limits.py) ------------------


class Exchange:
    """One HTTP request driven straight through an ASGI app: the body is offered in chunks, and
    what the app asked for and answered is recorded."""

    def __init__(self, path, *, headers=(), chunks=(), method="POST"):
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.chunks = list(chunks)
        self.receives = 0  # how many times the app asked for body
        self.sent = []

    async def receive(self):
        self.receives += 1
        if self.receives > len(self.chunks):
            await asyncio.sleep(3600)  # a client that never sends the rest
        more = self.receives < len(self.chunks)
        return {"type": "http.request", "body": self.chunks[self.receives - 1], "more_body": more}

    async def send(self, message):
        self.sent.append(message)

    async def run(self, app):
        await asyncio.wait_for(app(self.scope, self.receive, self.send), timeout=10)
        return self

    @property
    def status(self):
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def headers(self):
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return {k.decode(): v.decode() for k, v in start["headers"]}

    @property
    def body(self):
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def echo_app(scope, receive, send):
    """Stands in for Django: reads the whole body, answers 200 with its length."""
    received = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(received)).encode()})


def length(n: int):
    return (b"content-length", str(n).encode())


MULTIPART = (b"content-type", b"multipart/form-data; boundary=b0undary")


@pytest.mark.asyncio
async def test_a_body_over_the_cap_is_refused_before_it_is_read(settings):
    from nerstudio.asgi import application  # the application the servers run

    settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES = 81 * 1024 * 1024
    exchange = Exchange(GENERATE, headers=[length(50 * 1024**3), MULTIPART], chunks=[b"x" * 65536])

    await exchange.run(application)

    assert exchange.status == 413
    assert exchange.receives == 0  # not a byte of the 50 GB was asked for
    assert exchange.headers["connection"] == "close"
    assert exchange.headers["content-type"].startswith("text/html")
    assert "Your photos add up to more than 81.0\N{NO-BREAK SPACE}MB".encode() in exchange.body
    assert "up to 10.0\N{NO-BREAK SPACE}MB each".encode() in exchange.body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "content_type", "setting"),
    [
        (UPLOAD_PATH, MULTIPART, "NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES"),
        (LIBRARY_UPLOAD_PATH, MULTIPART, "NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES"),
        (UPLOAD_PATH, (b"content-type", b"text/plain"), "NERSTUDIO_MAX_REQUEST_BYTES"),
        (
            f"{CALLBACK_PREFIX}images/{uuid.uuid4()}/token/",
            (b"content-type", b"application/json"),
            "NERSTUDIO_CALLBACK_MAX_REQUEST_BYTES",
        ),
        ("/accounts/login/", MULTIPART, "NERSTUDIO_MAX_REQUEST_BYTES"),
    ],
)
async def test_each_route_has_its_cap_and_a_body_at_the_cap_gets_through(
    settings, path, content_type, setting
):
    settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES = 3 * 1024 * 1024  # small, for a quick test
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 8 * 1024 * 1024  # no single-part limit in the way
    cap = getattr(settings, setting)
    app = RequestBodyLimit(echo_app)

    over = await Exchange(path, headers=[length(cap + 1), content_type], chunks=[b"x"]).run(app)
    at = await Exchange(path, headers=[length(cap), content_type], chunks=[b"x" * cap]).run(app)

    assert (over.status, over.receives) == (413, 0)
    assert (at.status, at.body) == (200, str(cap).encode())


def test_the_caps_match_the_routes_they_are_meant_for(settings):
    assert reverse("generation:generate") == UPLOAD_PATH
    assert reverse("library:upload") == LIBRARY_UPLOAD_PATH
    assert reverse("generation:callback", args=[uuid.uuid4(), "t"]).startswith(CALLBACK_PREFIX)
    assert settings.NERSTUDIO_CALLBACK_MAX_REQUEST_BYTES == 256 * 1024
    # Every other route is held to what Django itself accepts of a non-file body.
    assert settings.NERSTUDIO_MAX_REQUEST_BYTES == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # The upload cap fits 8 files at the per-file limit, the most a default model takes.
    assert settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES > 8 * settings.NERSTUDIO_UPLOAD_MAX_BYTES
    # File parts (and ASGI bodies) go to disk beyond a small threshold.
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 256 * 1024


@pytest.mark.asyncio
async def test_a_chunked_body_is_cut_off_at_the_cap(settings, caplog):
    from nerstudio.asgi import application

    settings.NERSTUDIO_CALLBACK_MAX_REQUEST_BYTES = 256 * 1024
    path = reverse("generation:callback", args=[uuid.uuid4(), "s3cret-callback-token"])
    exchange = Exchange(path, chunks=[b"{" * 65536] * 100)  # 6.4 MB, no Content-Length

    await exchange.run(application)

    assert exchange.status == 413
    assert exchange.receives == 5  # 4 × 64 KB is at the cap; the fifth chunk passes it
    assert "A callback body may be at most 256.0\N{NO-BREAK SPACE}KB.".encode() in exchange.body
    assert [m["type"] for m in exchange.sent] == ["http.response.start", "http.response.body"]
    assert "body cut off after 327680 bytes" in caplog.text
    assert "s3cret-callback-token" not in caplog.text  # the refusal is logged, the token is not


@pytest.mark.asyncio
async def test_one_file_part_over_the_per_file_limit_is_cut_off_while_it_streams(settings):
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 256 * 1024
    settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES = 8 * 256 * 1024 + 1024 * 1024
    boundary = b"----nerstudio-test"
    body = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nA mug\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="products"; '
        b'filename="big.png"\r\nContent-Type: image/png\r\n\r\n'
        # One 1 MB part: within the total cap, over the per-file limit. The boundary string inside
        # it (not at a line start) must not pass for the end of the part.
         + (b"\0" * 65536 + b"--" + boundary) * 16 + b"\r\n--" + boundary + b"--\r\n"
    )
    chunks = [body[i : i + 32768] for i in range(0, len(body), 32768)]
    content_type = (b"content-type", b"multipart/form-data; boundary=" + boundary)
    exchange = Exchange(UPLOAD_PATH, headers=[length(len(body)), content_type], chunks=chunks)

    await exchange.run(RequestBodyLimit(echo_app))

    assert exchange.status == 413
    assert "One of the photos is larger than 256.0\N{NO-BREAK SPACE}KB".encode() in exchange.body
    assert exchange.receives <= (256 + 16) // 32 + 2  # cut off at the limit, not at the end
    assert exchange.receives < len(chunks)


@pytest.mark.asyncio
async def test_several_files_each_within_the_limit_get_through(settings):
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 64 * 1024
    boundary = b"b0undary"
    part = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="products"; '
        b'filename="p.png"\r\n\r\n' + b"\1" * (60 * 1024) + b"\r\n"
    )
    body = part * 6 + b"--" + boundary + b"--\r\n"  # 360 KB in all, each part under 64 KB
    chunks = [body[i : i + 5000] for i in range(0, len(body), 5000)]  # boundaries split too
    content_type = (b"content-type", b"multipart/form-data; boundary=" + boundary)
    exchange = Exchange(UPLOAD_PATH, headers=[content_type], chunks=chunks)

    await exchange.run(RequestBodyLimit(echo_app))

    assert (exchange.status, exchange.body) == (200, str(len(body)).encode())


# --- The form reads headers only; decoding waits for everything else ------------------------------


@pytest.mark.django_db
def test_pixel_dimensions_are_checked_from_the_header_without_decoding(
    admin_client, org, local_model, settings, decodes
):
    credits.top_up(org=org, amount=50)
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 4096 * 4096
    # A header claiming 8000 × 5000 with no pixel data behind it: only the header can refuse it.
    bomb = upload("bomb.png", png_header_claiming(8000, 5000))

    response = admin_client.post(GENERATE, form_data(local_model, products=[bomb]))

    assert response.status_code == 422
    assert "bomb.png has more than 16.8 megapixels" in response.content.decode()
    assert decodes == []
    assert not Generation.objects.exists()


@pytest.mark.django_db
def test_a_form_with_errors_keeps_its_photos_decoding_each_once_and_charging_nothing(
    admin_client, org, local_model, settings, decodes
):
    """Browsers forget chosen files: the photos go to the brand library (decoded once each, on
    the process's one decoder thread) and come back picked."""
    credits.top_up(org=org, amount=50)
    photos = [
        upload(f"p{i}.png", image_bytes("PNG", size=(900, 700), colour=(i * 80, 40, 60)))
        for i in range(3)
    ]

    response = admin_client.post(GENERATE, form_data(local_model, products=photos, prompt="  "))

    html = response.content.decode()
    assert response.status_code == 422
    assert "Write a prompt: what should the images show?" in html
    assert decodes == [(900, 700)] * 3
    kept = SourceImage.objects.all()
    assert sorted(s.original_name for s in kept) == ["p0.png", "p1.png", "p2.png"]
    for source in kept:
        assert f'name="library_products" value="{source.public_id}" checked' in html
    assert not Generation.objects.exists() and credits.balance_of(org) == 50


@pytest.mark.django_db
def test_a_generation_the_credits_do_not_cover_keeps_its_photo_and_charges_nothing(
    admin_client, org, local_model, settings, decodes
):
    needed = 3 * local_model.credit_cost
    credits.top_up(org=org, amount=needed - 1)

    response = admin_client.post(GENERATE, form_data(local_model, count=3))

    assert response.status_code == 422
    assert f"This needs {needed} credits but your organization has {needed - 1} credits." in (
        response.content.decode()
    )
    assert len(decodes) == 1  # only to keep the photo, after the credit check refused
    assert SourceImage.objects.count() == 1
    assert not Generation.objects.exists() and credits.balance_of(org) == needed - 1


@pytest.mark.django_db
def test_a_valid_request_decodes_each_image_once(admin_client, org, local_model, decodes):
    credits.top_up(org=org, amount=50)
    photos = [upload(f"p{i}.png", image_bytes("PNG", size=(30 + i, 20))) for i in range(3)]

    response = admin_client.post(GENERATE, form_data(local_model, products=photos))

    assert response.status_code == 302
    assert sorted(decodes) == [(30, 20), (31, 20), (32, 20)]


# --- Decoding: bounded, one at a time, and re-encoded --------------------------------------------


@pytest.mark.django_db
def test_uploads_are_reencoded_without_exif_and_trailing_bytes(
    admin_client, org, local_model, settings
):
    credits.top_up(org=org, amount=50)
    trailing = b"PK\x03\x04 a zip archive riding along after the image" * 20
    data = photo_with_metadata((60, 40), orientation=6, trailing=trailing)
    photo = upload("IMG_0001.jpg", data, "image/jpeg")

    response = admin_client.post(GENERATE, form_data(local_model, products=[photo]))

    assert response.status_code == 302
    source = SourceImage.objects.get()
    stored = (Path(settings.MEDIA_ROOT) / source.file.name).read_bytes()
    assert source.sha256 == hashlib.sha256(stored).hexdigest() != hashlib.sha256(data).hexdigest()
    assert source.file.name.endswith(f"/{source.sha256}.jpeg")
    assert stored.endswith(b"\xff\xd9")  # ends at the end-of-image marker
    assert b"zip archive" not in stored
    assert b"Exif" not in stored and b"Phone Camera" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        assert not image.getexif()  # no orientation, no GPS, nothing
        assert image.size == (40, 60) == (source.width, source.height)  # turned upright
        top, bottom = image.getpixel((20, 5)), image.getpixel((20, 55))
    assert top[0] > 150 and top[2] < 100  # the red half, stored sideways, is on top
    assert bottom[2] > 150 and bottom[0] < 100
    assert source.size == len(stored)


def test_large_jpegs_are_decoded_at_reduced_scale(settings, decodes):
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 1_000_000
    data = image_bytes("JPEG", size=(3000, 2000))  # 6 MP

    image = ingest_image(check_image(upload("camera.jpg", data, "image/jpeg")))

    # 1/2 scale would still be 1.5 MP: libjpeg decoded at 1/4, never at full size.
    assert decodes == [(750, 500)]
    assert (image.width, image.height) == (750, 500)


def test_pngs_and_webps_are_refused_by_the_header_above_their_decode_limits(settings, decodes):
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 500 * 500
    settings.NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS = 300 * 300
    for name, data in [
        ("wide.png", image_bytes("PNG", size=(600, 500))),
        ("wide.webp", image_bytes("WEBP", size=(400, 300))),
    ]:
        with pytest.raises(ValidationError, match=f"{name} has more than"):
            check_image(upload(name, data))
    assert decodes == []


def test_stored_images_are_no_larger_than_the_long_side_limit_and_keep_transparency(settings):
    settings.NERSTUDIO_UPLOAD_MAX_SIDE = 300
    cutout = Image.new("RGBA", (900, 450), (0, 0, 0, 0))
    cutout.paste((200, 40, 60, 255), (300, 0, 600, 450))
    out = io.BytesIO()
    cutout.save(out, "PNG")

    image = ingest_image(check_image(upload("cutout.png", out.getvalue())))

    assert (image.width, image.height) == (300, 150)
    with Image.open(image.content()) as stored:
        assert (stored.mode, stored.size) == ("RGBA", (300, 150))
        assert stored.getpixel((10, 75))[3] == 0  # still transparent
        assert stored.getpixel((150, 75)) == (200, 40, 60, 255)


def test_decodes_never_run_in_parallel(decodes, monkeypatch):
    active, most = [0], [0]
    guard = threading.Lock()
    spy = ImageFile.ImageFile.load  # the counting spy from `decodes`

    def slow_load(self):
        if not self.tile:  # already decoded
            return spy(self)
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)  # long enough for a second thread to arrive if it could
        try:
            return spy(self)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_load)
    checked = [check_image(upload(f"p{i}.png", image_bytes("PNG", (50 + i, 40)))) for i in range(6)]
    results = [None] * 6
    start = threading.Barrier(6)

    def run(i):
        start.wait()
        results[i] = ingest_image(checked[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(decodes) == 6
    assert most[0] == 1
    assert [r.width for r in results] == [50, 51, 52, 53, 54, 55]


def test_a_request_waits_for_the_decoder_only_so_long_and_says_so(monkeypatch):
    monkeypatch.setattr(uploads, "DECODE_WAIT_SECONDS", 0.05)
    checked = check_image(upload("late.png", image_bytes("PNG")))
    release = threading.Event()
    uploads._worker("decoder").submit(release.wait, 10)  # another request's long decode

    try:
        with pytest.raises(ValidationError) as caught:
            ingest_image(checked)
    finally:
        release.set()

    assert caught.value.messages == [
        "The server is busy reading other uploads; late.png was not read. Try again in a minute."
    ]
    assert ingest_image(checked).width == 24  # once the decoder is free, it is read


@pytest.mark.django_db
def test_a_photo_that_only_fails_when_decoded_is_named_and_nothing_but_the_good_one_is_kept(
    admin_client, org, local_model, settings
):
    credits.top_up(org=org, amount=50)
    whole = image_bytes("PNG", size=(64, 64))
    good = upload("good.png", image_bytes("PNG", size=(20, 20)))
    cut = upload("cut.png", whole[: len(whole) // 2])  # the header is intact

    response = admin_client.post(GENERATE, form_data(local_model, products=[good, cut]))

    assert response.status_code == 422
    assert "cut.png could not be read: the file is damaged or incomplete." in (
        response.content.decode()
    )
    kept = SourceImage.objects.get()  # good.png, in the library: Generate offers it again
    assert kept.original_name == "good.png"
    assert sorted(p.name for p in stored_files(settings)) == sorted(
        [f"{kept.sha256}.png", f"{kept.sha256}.webp"]
    )
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 50
