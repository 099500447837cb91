"""Offline providers: a real Pillow render, a real Pillow analysis, deterministic variants."""

import io

import pytest
from PIL import Image, ImageDraw

from providers.adapters.answers import LIGHTS, SETTINGS, SHOTS
from providers.adapters.errors import GenerationFailed, PermanentError
from providers.adapters.types import ImageJobRequest, ProviderConfig, VariantsRequest
from providers.local.image import LocalImageAdapter
from providers.local.llm import LocalLLMAdapter
from providers.local.render import render_image, size_for
from providers.local.vision import LocalVisionAdapter, analyse_image

from .conftest import png_bytes


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


# --- Image --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [("1:1", 1.0), ("16:9", 16 / 9), ("9:16", 9 / 16), ("4:5", 0.8), ("21:9", 21 / 9)],
)
def test_it_renders_a_png_of_the_requested_aspect(ratio, expected):
    image = open_png(render_image("Linen shirt", [png_bytes()], ["#f4e9dc"], ratio, seed=1))

    assert max(image.size) == 768
    assert image.width / image.height == pytest.approx(expected, rel=0.02)


def test_auto_and_unknown_ratios_render_square():
    assert size_for("auto") == (768, 768)
    assert size_for("nonsense") == (768, 768)
    assert size_for("3:2", max_side=512) == (512, 344)


def test_it_renders_the_same_picture_for_the_same_seed():
    args = ("Perfume on marble", [png_bytes()], ["#f4e9dc", "#8a5a44"], "4:5")

    first, again = render_image(*args, seed=7), render_image(*args, seed=7)
    other = render_image(*args, seed=8)

    assert first == again
    assert first != other


def test_it_composites_the_product_in_the_middle():
    green_product = png_bytes((200, 300), (0, 200, 0, 255), mode="RGBA")

    image = open_png(render_image("Bottle", [green_product], ["#202040"], "1:1", seed=3))

    r, g, b = image.getpixel((image.width // 2, image.height // 2))
    assert g > 180 and r < 30 and b < 30  # the product, give or take the film grain
    corner = image.getpixel((5, 5))
    assert corner[1] < 150  # the backdrop, not the product


def test_the_background_follows_the_reference_palette():
    warm = open_png(render_image("x", [], ["#c0392b", "#e67e22"], "1:1", seed=2))
    cool = open_png(render_image("x", [], ["#1f3a93", "#22a7f0"], "1:1", seed=2))

    warm_r, _, warm_b = warm.resize((1, 1)).getpixel((0, 0))
    cool_r, _, cool_b = cool.resize((1, 1)).getpixel((0, 0))
    assert warm_r > warm_b
    assert cool_b > cool_r


def test_it_fails_the_job_when_a_product_image_is_unreadable():
    with pytest.raises(GenerationFailed, match="product image"):
        render_image("x", [b"definitely not an image"], None, "1:1")


@pytest.mark.django_db
def test_the_local_image_adapter_queues_a_render_per_job_and_checks_the_request(
    django_capture_on_commit_callbacks,
):
    adapter = LocalImageAdapter(ProviderConfig(options={"delay_seconds": 0.5}))

    with django_capture_on_commit_callbacks() as queued:  # the render tasks, not run here
        first = adapter.submit(ImageJobRequest("x", aspect_ratio="16:9", quality="draft"))
        second = adapter.submit(ImageJobRequest("x"))
        with pytest.raises(PermanentError, match="aspect ratio 7:3"):
            adapter.submit(ImageJobRequest("x", aspect_ratio="7:3"))

    assert first.task_id.startswith("local-")
    assert first.task_id != second.task_id
    assert len(queued) == 2  # one render per accepted job, none for the refused one
    assert adapter.delay_seconds == 0.5
    assert adapter.max_side("draft") == 512
    with pytest.raises(ValueError, match="'delay_seconds': Ensure this value is less than"):
        LocalImageAdapter(ProviderConfig(options={"delay_seconds": 600}))


@pytest.mark.parametrize(
    "task_id", ["../uploads/acme/abc", "local-../../x", "local-" + "0" * 31 + "/", ""]
)
def test_the_local_renderer_polls_only_task_ids_of_its_own_making(task_id, media_root):
    """A task id comes back in callbacks: it must not name any other file in storage."""
    with pytest.raises(PermanentError, match="Not a task of the local renderer"):
        LocalImageAdapter(ProviderConfig()).poll(task_id)


@pytest.mark.parametrize("cls", [LocalImageAdapter, LocalLLMAdapter, LocalVisionAdapter])
def test_local_providers_pass_the_connection_test(cls):
    result = cls(ProviderConfig()).test_connection()

    assert result.ok
    assert "ready" in result.message


# --- Vision -------------------------------------------------------------------------------------


def test_vision_reports_the_colour_of_a_solid_image():
    result = LocalVisionAdapter(ProviderConfig()).describe(png_bytes((300, 200), (51, 102, 204)))

    assert result.palette == ("#3366cc",)
    assert "#3366cc (100%)" in result.description
    assert "blue" in result.description
    assert "Landscape format, 300x200 px" in result.description


def test_vision_orders_the_palette_by_share():
    image = Image.new("RGB", (100, 100), (250, 250, 250))
    ImageDraw.Draw(image).rectangle((0, 0, 24, 99), fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")

    analysis = analyse_image(out.getvalue())

    assert [hex_ for hex_, _ in analysis.palette] == ["#fafafa", "#141414"]
    assert analysis.palette[0][1] == pytest.approx(0.75, abs=0.02)
    assert analysis.contrast > 0.5
    assert analysis.orientation == "square"


@pytest.mark.parametrize(
    ("colour", "word"),
    [((245, 245, 245), "Bright"), ((15, 15, 15), "Dark"), ((128, 128, 128), "Mid")],
)
def test_vision_describes_brightness(colour, word):
    result = LocalVisionAdapter(ProviderConfig()).describe(png_bytes((40, 80), colour))

    assert result.description.startswith(word)
    assert "low-contrast" in result.description
    assert "Portrait format" in result.description


def test_vision_reads_jpeg_too():
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, "JPEG", quality=95)

    result = LocalVisionAdapter(ProviderConfig()).describe(out.getvalue())

    assert "red" in result.description
    assert "warm" in result.description


def test_vision_rejects_bytes_that_are_not_an_image():
    with pytest.raises(PermanentError, match="could not be read"):
        LocalVisionAdapter(ProviderConfig()).describe(b"nope")


# --- Prompt variants ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 8, 40])
def test_the_local_llm_returns_n_distinct_non_empty_variants(n):
    result = LocalLLMAdapter(ProviderConfig()).generate_variants(
        VariantsRequest("Ceramic mug, autumn mood", n)
    )

    assert len(result.variants) == n
    assert len(set(result.variants)) == n
    assert all(v.startswith("Ceramic mug, autumn mood.") for v in result.variants)
    assert result.varied == 0  # all its own: it is a prompt writer, not a filler


def test_the_local_llm_crosses_the_brief_with_the_shared_shots_settings_and_lights():
    result = LocalLLMAdapter(ProviderConfig()).generate_variants(VariantsRequest("Mug", 6))

    for variant in result.variants:
        assert any(shot in variant for shot in SHOTS)
        assert any(setting in variant for setting in SETTINGS)
        assert any(light in variant for light in LIGHTS)
    assert len({next(s for s in SHOTS if s in v) for v in result.variants}) == 6


def test_the_local_llm_is_deterministic_and_prompt_dependent():
    adapter = LocalLLMAdapter(ProviderConfig())
    request = VariantsRequest("Ceramic mug", 4)

    assert adapter.generate_variants(request) == adapter.generate_variants(request)
    other = adapter.generate_variants(VariantsRequest("Leather boots", 4))
    assert [v.split(". ", 1)[1] for v in other.variants] != [
        v.split(". ", 1)[1] for v in adapter.generate_variants(request).variants
    ]


def test_the_local_llm_weaves_in_the_reference_descriptions():
    vision = LocalVisionAdapter(ProviderConfig()).describe(png_bytes((300, 200), (51, 102, 204)))

    result = LocalLLMAdapter(ProviderConfig()).generate_variants(
        VariantsRequest("Sneakers", 2, references=(vision.description,))
    )

    for variant in result.variants:
        assert "Echo the references: mid-toned and low-contrast" in variant
        assert "Palette: #3366cc." in variant


def test_the_local_llm_rejects_an_empty_prompt():
    with pytest.raises(PermanentError):
        LocalLLMAdapter(ProviderConfig()).generate_variants(VariantsRequest("  ", 2))


def test_the_shot_a_variant_asks_for_changes_the_framing():
    from PIL import Image as PILImage

    product = png_bytes((200, 300), (142, 68, 173))

    def product_pixels(prompt):
        image = PILImage.open(io.BytesIO(render_image(prompt, [product], seed=1, max_side=256)))
        pixels = image.convert("RGB").get_flattened_data()
        return sum(1 for r, g, b in pixels if abs(r - 142) + abs(g - 68) + abs(b - 173) < 40)

    close = product_pixels("A bottle. Close-up detail shot on a clean seamless backdrop.")
    wide = product_pixels("A bottle. Wide shot with generous negative space on a pedestal.")
    assert close > 2 * wide
