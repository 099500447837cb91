"""kie.ai Market image jobs: createTask per model, envelope codes, recordInfo polling, upload."""

import base64
import hashlib
import json

import pytest
import responses
from django.core.exceptions import ValidationError

from providers.adapters.errors import (
    GenerationFailed,
    InvalidOutput,
    PermanentError,
    RetryableError,
)
from providers.adapters.kie import (
    Flux2EditAdapter,
    NanoBanana2Adapter,
    NanoBananaEditAdapter,
    NanoBananaProAdapter,
    Seedream45EditAdapter,
    SeedreamV4EditAdapter,
)
from providers.adapters.types import ImageJobRequest, ProviderConfig
from providers.models import Provider

from .conftest import png_bytes, sent_json

CREATE = "https://api.kie.ai/api/v1/jobs/createTask"
RECORD = "https://api.kie.ai/api/v1/jobs/recordInfo"
UPLOAD = "https://kieai.redpandaai.co/api/file-base64-upload"
STREAM_UPLOAD = "https://kieai.redpandaai.co/api/file-stream-upload"
CREATED = {"code": 200, "msg": "success", "data": {"taskId": "task_nano-banana-pro_1765178625768"}}
REFS = ("https://cdn.test/a.png", "https://cdn.test/b.jpg")
ALL_MODELS = [
    NanoBananaProAdapter,
    NanoBanana2Adapter,
    NanoBananaEditAdapter,
    Seedream45EditAdapter,
    SeedreamV4EditAdapter,
    Flux2EditAdapter,
]


def make(cls, **config):
    return cls(ProviderConfig(api_key="kie-key", **config))


def test_it_sends_image_input_and_resolution_for_nano_banana_pro(http):
    http.post(CREATE, json=CREATED)
    adapter = make(NanoBananaProAdapter, options={"output_format": "png"})

    submitted = adapter.submit(
        ImageJobRequest(
            prompt="A perfume bottle on marble",
            image_urls=REFS,
            aspect_ratio="4:5",
            quality="2K",
            callback_url="https://app.test/hooks/kie",
        )
    )

    assert submitted.task_id == "task_nano-banana-pro_1765178625768"
    request = http.calls[0].request
    assert request.url == CREATE
    assert request.headers["Authorization"] == "Bearer kie-key"
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(http.calls[0]) == {
        "model": "nano-banana-pro",
        "callBackUrl": "https://app.test/hooks/kie",
        "input": {
            "prompt": "A perfume bottle on marble",
            "image_input": list(REFS),
            "aspect_ratio": "4:5",
            "resolution": "2K",
            "output_format": "png",
        },
    }


def test_it_uses_nano_banana_2_defaults_and_google_search(http):
    http.post(CREATE, json=CREATED)
    adapter = make(NanoBanana2Adapter)

    adapter.submit(
        ImageJobRequest(prompt="Sneakers", image_urls=REFS, options={"google_search": True})
    )

    assert sent_json(http.calls[0]) == {
        "model": "nano-banana-2",
        "input": {
            "prompt": "Sneakers",
            "image_input": list(REFS),
            "aspect_ratio": "auto",
            "resolution": "1K",
            "google_search": True,
        },
    }


def test_it_sends_image_urls_and_quality_for_seedream_4_5(http):
    http.post(CREATE, json=CREATED)

    make(Seedream45EditAdapter).submit(
        ImageJobRequest(prompt="Serum bottle", image_urls=REFS, aspect_ratio="16:9", quality="high")
    )

    assert sent_json(http.calls[0]) == {
        "model": "seedream/4.5-edit",
        "input": {
            "prompt": "Serum bottle",
            "image_urls": list(REFS),
            "aspect_ratio": "16:9",
            "quality": "high",
        },
    }


def test_it_sends_image_size_names_for_seedream_v4(http):
    http.post(CREATE, json=CREATED)
    adapter = make(SeedreamV4EditAdapter, options={"max_images": 3})

    adapter.submit(
        ImageJobRequest(
            prompt="Three variations of a watch",
            image_urls=REFS,
            aspect_ratio="3:4",
            quality="4K",
            options={"seed": 42},
        )
    )

    assert sent_json(http.calls[0]) == {
        "model": "bytedance/seedream-v4-edit",
        "input": {
            "prompt": "Three variations of a watch",
            "image_urls": list(REFS),
            "image_size": "portrait_4_3",
            "image_resolution": "4K",
            "max_images": 3,
            "seed": 42,
        },
    }


def test_it_sends_input_urls_for_flux_2(http):
    http.post(CREATE, json=CREATED)

    make(Flux2EditAdapter).submit(
        ImageJobRequest(prompt="Lamp in a loft", image_urls=REFS[:1], aspect_ratio="auto")
    )

    assert sent_json(http.calls[0]) == {
        "model": "flux-2/pro-image-to-image",
        "input": {
            "prompt": "Lamp in a loft",
            "input_urls": [REFS[0]],
            "aspect_ratio": "auto",
            "resolution": "1K",
        },
    }


def test_it_sends_flux_2_flex_with_the_fields_it_shares_with_pro(http):
    """PROVIDERS.md §1.1.6: input_urls 1-8, prompt 3-5000, aspect_ratio incl. auto, resolution
    1K/2K."""
    http.post(CREATE, json=CREATED)

    make(Flux2EditAdapter, model="flux-2/flex-image-to-image").submit(
        ImageJobRequest(prompt="Lamp in a loft", image_urls=REFS, aspect_ratio="3:2", quality="2K")
    )

    assert sent_json(http.calls[0]) == {
        "model": "flux-2/flex-image-to-image",
        "input": {
            "prompt": "Lamp in a loft",
            "input_urls": list(REFS),
            "aspect_ratio": "3:2",
            "resolution": "2K",
        },
    }


def test_it_sends_nano_banana_edit_with_image_urls_and_a_ratio_in_image_size(http):
    """PROVIDERS.md §1.1.3: image_urls (required, up to 10), image_size holding a ratio,
    output_format png|jpeg, and no resolution or quality field."""
    http.post(CREATE, json=CREATED)
    adapter = make(NanoBananaEditAdapter, options={"output_format": "jpeg"})

    adapter.submit(ImageJobRequest(prompt="Tea tin on linen", image_urls=REFS, aspect_ratio="4:5"))

    assert sent_json(http.calls[0]) == {
        "model": "google/nano-banana-edit",
        "input": {
            "prompt": "Tea tin on linen",
            "image_urls": list(REFS),
            "image_size": "4:5",
            "output_format": "jpeg",
        },
    }


def test_nano_banana_edit_defaults_to_a_square_and_takes_auto(http):
    http.post(CREATE, json=CREATED)
    http.post(CREATE, json=CREATED)
    adapter = make(NanoBananaEditAdapter)

    adapter.submit(ImageJobRequest(prompt="Tea tin", image_urls=REFS[:1]))
    adapter.submit(ImageJobRequest(prompt="Tea tin", image_urls=REFS[:1], aspect_ratio="auto"))

    assert sent_json(http.calls[0])["input"] == {
        "prompt": "Tea tin",
        "image_urls": [REFS[0]],
        "image_size": "1:1",
    }
    assert sent_json(http.calls[1])["input"]["image_size"] == "auto"


def test_nano_banana_edit_has_no_quality_levels():
    assert NanoBananaEditAdapter.qualities == ()
    assert NanoBananaEditAdapter.default_quality is None
    assert NanoBananaEditAdapter.quality_field is None


# --- Model ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "model"),
    [
        (NanoBananaProAdapter, "nano-banana-pro"),
        (NanoBanana2Adapter, "nano-banana-2"),
        (NanoBananaEditAdapter, "google/nano-banana-edit"),
        (Seedream45EditAdapter, "seedream/4.5-edit"),
        (SeedreamV4EditAdapter, "bytedance/seedream-v4-edit"),
        (Flux2EditAdapter, "flux-2/pro-image-to-image"),
        (Flux2EditAdapter, "flux-2/flex-image-to-image"),
    ],
)
def test_it_sends_the_configured_model_id(http, cls, model):
    http.post(CREATE, json=CREATED)

    make(cls, model=model).submit(ImageJobRequest(prompt="A lamp", image_urls=REFS[:1]))

    assert sent_json(http.calls[0])["model"] == model


@pytest.mark.parametrize("cls", ALL_MODELS)
def test_a_blank_model_id_sends_the_adapters_default(http, cls):
    http.post(CREATE, json=CREATED)

    make(cls, model="").submit(ImageJobRequest(prompt="A lamp", image_urls=REFS[:1]))

    assert sent_json(http.calls[0])["model"] == cls.default_model


def test_a_model_id_the_adapter_cannot_send_is_refused_naming_the_supported_ones():
    with pytest.raises(ValueError, match=r"seedream/4\.5-edit") as caught:
        Seedream45EditAdapter.validate_model("nano-banana-pro")
    assert "FLUX" not in str(caught.value)

    with pytest.raises(ValueError, match="flux-2/pro-image-to-image, flux-2/flex-image-to-image"):
        Flux2EditAdapter.validate_model("flux-2/flex-text-to-image")

    Flux2EditAdapter.validate_model("flux-2/flex-image-to-image")
    Flux2EditAdapter.validate_model("")  # blank: the default


def test_a_stored_model_id_the_adapter_cannot_send_fails_before_calling_kie(http):
    """A row saved before model ids were checked must not be sent with another model's fields."""
    with pytest.raises(PermanentError, match=r"seedream/4\.5-edit") as caught:
        make(Seedream45EditAdapter, model="nano-banana-pro").submit(
            ImageJobRequest(prompt="x", image_urls=REFS)
        )

    assert caught.value.code == "config"
    assert not http.calls


@pytest.mark.django_db
def test_the_admin_form_refuses_a_model_id_the_adapter_cannot_send(org):
    row = Provider(
        org=org,
        name="Ours",
        adapter="kie-flux-2-pro-edit",
        api_key="k",
        model_id="flux-2/pro-text-to-image",
    )

    with pytest.raises(ValidationError) as caught:
        row.full_clean()

    assert "flux-2/flex-image-to-image" in str(caught.value.message_dict["model_id"])
    row.model_id = "flux-2/flex-image-to-image"
    row.full_clean()


def test_it_sends_to_a_configured_base_url(http):
    http.post("https://proxy.test/kie/api/v1/jobs/createTask", json=CREATED)

    make(NanoBananaProAdapter, base_url="https://proxy.test/kie/").submit(
        ImageJobRequest(prompt="x")
    )

    assert "callBackUrl" not in sent_json(http.calls[0])


@pytest.mark.parametrize(
    ("cls", "request_", "problem"),
    [
        (NanoBananaProAdapter, ImageJobRequest("x", image_urls=("u",) * 9), "0 to 8 images"),
        (Seedream45EditAdapter, ImageJobRequest("x"), "1 to 14 images"),
        (Flux2EditAdapter, ImageJobRequest("a lamp", image_urls=REFS, quality="4K"), "quality"),
        (NanoBananaEditAdapter, ImageJobRequest("x"), "1 to 10 images"),
        (NanoBananaEditAdapter, ImageJobRequest("x", image_urls=("u",) * 11), "1 to 10 images"),
        (NanoBananaEditAdapter, ImageJobRequest("x" * 5001, image_urls=REFS), "characters"),
        (NanoBananaEditAdapter, ImageJobRequest("x", image_urls=REFS, quality="1K"), "quality"),
        (NanoBananaEditAdapter, ImageJobRequest("x", image_urls=REFS, aspect_ratio="1:4"), "1:4"),
        (
            NanoBananaEditAdapter,
            ImageJobRequest("x", image_urls=REFS, options={"output_format": "jpg"}),
            "'output_format': Select a valid choice. jpg",
        ),
        (Flux2EditAdapter, ImageJobRequest("ab", image_urls=REFS), "3 to 5000 characters"),
        (Seedream45EditAdapter, ImageJobRequest("x" * 3001, image_urls=REFS), "characters"),
        (Seedream45EditAdapter, ImageJobRequest("x", image_urls=REFS, aspect_ratio="auto"), "auto"),
        (SeedreamV4EditAdapter, ImageJobRequest("x", image_urls=REFS, aspect_ratio="4:5"), "4:5"),
        (
            NanoBananaProAdapter,
            ImageJobRequest("x", options={"output_format": "gif"}),
            "'output_format': Select a valid choice. gif",
        ),
        (NanoBananaProAdapter, ImageJobRequest("x", options={"seed": 1}), "Unknown option"),
    ],
)
def test_it_rejects_requests_the_model_cannot_take_without_calling_kie(
    http, cls, request_, problem
):
    with pytest.raises(PermanentError, match=problem) as caught:
        make(cls).submit(request_)

    assert caught.value.code == "invalid_request"
    assert not http.calls


def test_it_refuses_to_call_without_a_key(http):
    with pytest.raises(PermanentError, match="No API key") as caught:
        NanoBananaProAdapter(ProviderConfig()).submit(ImageJobRequest("x"))

    assert caught.value.code == "no_key"


@pytest.mark.parametrize("cls", ALL_MODELS)
def test_each_model_declares_the_limits_the_admin_form_needs(cls):
    assert cls.default_aspect_ratio in cls.aspect_ratios
    if cls.qualities:
        assert cls.default_quality in cls.qualities
        assert cls.quality_field
    else:
        assert cls.default_quality is None and cls.quality_field is None
    assert cls.max_images >= max(cls.min_images, 1)
    assert cls.kind == "image"
    assert cls.default_model in cls.supported_models


# --- Envelope codes -----------------------------------------------------------------------------

KIE_MESSAGES = {
    401: "You do not have access permissions",
    402: "Credits insufficient",
    422: "prompt is required",
    505: "The feature is disabled",
    433: "Something undocumented",
    429: "Rate limited",
    455: "Service unavailable",
    500: "Server error",
    501: "Generation failed",
}


@pytest.mark.parametrize(
    ("code", "error_class", "retryable"),
    [
        (401, PermanentError, False),
        (402, PermanentError, False),
        (422, PermanentError, False),
        (505, PermanentError, False),
        (433, PermanentError, False),
        (429, RetryableError, True),
        (455, RetryableError, True),
        (500, RetryableError, True),
        (501, GenerationFailed, False),
    ],
)
def test_it_checks_the_envelope_code_even_on_http_200(http, code, error_class, retryable):
    http.post(CREATE, status=200, json={"code": code, "msg": KIE_MESSAGES[code], "data": None})

    with pytest.raises(error_class) as caught:
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))

    assert caught.value.retryable is retryable
    assert caught.value.code == str(code)
    assert KIE_MESSAGES[code] in caught.value.message


def test_it_tells_the_admin_to_top_up_when_credits_run_out(http):
    http.post(CREATE, json={"code": 402, "msg": "Credits insufficient", "data": None})

    with pytest.raises(PermanentError, match="top up"):
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))


def test_it_maps_the_http_status_when_a_gateway_answers_without_an_envelope(http):
    http.post(CREATE, status=502, body="<html>Bad gateway</html>")

    with pytest.raises(RetryableError) as caught:
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))

    assert caught.value.code == "502"


def test_it_keeps_the_retry_after_hint_of_a_rate_limit(http):
    http.post(
        CREATE, status=429, json={"code": 429, "msg": "slow down"}, headers={"Retry-After": "7"}
    )

    with pytest.raises(RetryableError) as caught:
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))

    assert caught.value.retry_after == 7


def test_it_rejects_a_created_task_without_an_id(http):
    http.post(CREATE, json={"code": 200, "msg": "success", "data": {}})

    with pytest.raises(InvalidOutput):
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))


def test_it_turns_a_network_failure_into_a_retryable_error(http):
    http.post(CREATE, body=responses.ConnectionError("connection refused"))

    with pytest.raises(RetryableError) as caught:
        make(NanoBananaProAdapter).submit(ImageJobRequest("x"))

    assert caught.value.code == "network"


# --- recordInfo ---------------------------------------------------------------------------------


def record(**data) -> dict:
    base = {
        "taskId": "task_1",
        "model": "nano-banana-pro",
        "state": "waiting",
        "param": json.dumps({"model": "nano-banana-pro", "input": {"prompt": "x"}}),
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": 15000,
        "completeTime": 1765178640000,
        "createTime": 1765178625000,
        "updateTime": 1765178640000,
    }
    return {"code": 200, "msg": "success", "data": {**base, **data}}


@pytest.mark.parametrize("state", ["waiting", "queuing", "generating", "some-new-state"])
def test_it_reports_unfinished_tasks_as_pending(http, state):
    http.get(RECORD, json=record(state=state))

    status = make(NanoBananaProAdapter).poll("task_1")

    assert status.state == "pending"
    assert status.task_id == "task_1"
    request = http.calls[0].request
    assert request.url == f"{RECORD}?taskId=task_1"
    assert request.headers["Authorization"] == "Bearer kie-key"


def test_it_parses_the_json_string_result_of_a_finished_task(http):
    urls = ["https://tempfile.aiquickdraw.com/a.png", "https://tempfile.aiquickdraw.com/b.png"]
    http.get(RECORD, json=record(state="success", resultJson=json.dumps({"resultUrls": urls})))

    status = make(NanoBananaProAdapter).poll("task_1")

    assert status.state == "success"
    assert status.result_urls == tuple(urls)


def test_it_accepts_a_result_that_is_already_an_object(http):
    http.get(
        RECORD, json=record(state="success", resultJson={"resultUrls": ["https://r.test/x.png"]})
    )

    assert make(NanoBananaProAdapter).poll("task_1").result_urls == ("https://r.test/x.png",)


@pytest.mark.parametrize("result_json", ["", "{not json", json.dumps({"resultUrls": []})])
def test_it_flags_a_success_without_usable_urls(http, result_json):
    http.get(RECORD, json=record(state="success", resultJson=result_json))

    with pytest.raises(InvalidOutput):
        make(NanoBananaProAdapter).poll("task_1")


def test_it_reports_a_failed_task_with_kie_s_reason(http):
    http.get(
        RECORD,
        json=record(
            state="fail",
            failCode="422",
            failMsg="Invalid prompt: prompt contains prohibited content",
        ),
    )

    status = make(NanoBananaProAdapter).poll("task_1")

    assert status.state == "failed"
    assert status.error_code == "422"
    assert status.error == "Invalid prompt: prompt contains prohibited content"


def test_it_treats_task_not_found_as_a_too_early_poll(http):
    http.get(RECORD, status=200, json={"code": 404, "message": "Task not found"})

    with pytest.raises(RetryableError) as caught:
        make(NanoBananaProAdapter).poll("task_1")

    assert caught.value.code == "404"


def test_it_reads_the_message_key_used_by_the_markdown_docs(http):
    http.get(RECORD, json={"code": 401, "message": "You do not have access permissions"})

    with pytest.raises(PermanentError, match="You do not have access permissions"):
        make(NanoBananaProAdapter).poll("task_1")


# --- File upload --------------------------------------------------------------------------------


def test_it_uploads_a_small_image_as_base64(http):
    data = png_bytes()
    http.post(
        UPLOAD,
        json={
            "success": True,
            "code": 200,
            "msg": "File uploaded successfully",
            "data": {
                "fileName": "x.png",
                "filePath": "nerstudio/references/x.png",
                "downloadUrl": "https://tempfile.redpandaai.co/x.png",
                "fileSize": len(data),
                "mimeType": "image/png",
                "uploadedAt": "2026-01-01T00:00:00.000Z",
            },
        },
    )

    link = make(NanoBananaProAdapter).upload_file(data, "product shot.png")

    assert link == "https://tempfile.redpandaai.co/x.png"
    request = http.calls[0].request
    assert request.headers["Authorization"] == "Bearer kie-key"
    assert sent_json(http.calls[0]) == {
        "base64Data": "data:image/png;base64," + base64.b64encode(data).decode(),
        "uploadPath": "nerstudio/references",
        # Prefixed by content hash: kie overwrites files that share a name.
        "fileName": hashlib.sha256(data).hexdigest()[:16] + "-product-shot.png",
    }


def test_it_reads_the_download_url_of_the_quickstart_response_shape(http):
    http.post(
        UPLOAD,
        json={
            "success": True,
            "code": 200,
            "msg": "File uploaded successfully",
            "data": {
                "fileId": "file_1",
                "fileUrl": "https://kieai.redpandaai.co/files/x.png",
                "downloadUrl": "https://kieai.redpandaai.co/download/x.png",
                "originalName": "x.png",
                "uploadPath": "nerstudio/references",
                "uploadTime": "2026-01-01T00:00:00Z",
                "expiresAt": "2026-01-04T00:00:00Z",
            },
        },
    )

    assert (
        make(NanoBananaProAdapter).upload_file(png_bytes(), "x.png")
        == "https://kieai.redpandaai.co/download/x.png"
    )


def test_it_streams_large_files_as_multipart(http):
    data = b"\x89PNG" + b"\0" * (6 * 1024 * 1024)
    http.post(
        "https://upload.test/api/file-stream-upload",
        json={"code": 200, "msg": "ok", "data": {"downloadUrl": "https://u.test/big.png"}},
    )
    adapter = make(NanoBananaProAdapter, upload_base_url="https://upload.test/")

    assert adapter.upload_file(data, "big.png") == "https://u.test/big.png"

    request = http.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="uploadPath"\r\n\r\nnerstudio/references' in request.body
    assert b'name="file"; filename="' in request.body


def test_it_surfaces_upload_errors(http):
    http.post(UPLOAD, status=401, json={"code": 401, "msg": "You do not have access permissions"})

    with pytest.raises(PermanentError):
        make(NanoBananaProAdapter).upload_file(png_bytes(), "x.png")


# --- Which host uploads go to ------------------------------------------------------------------
# The connection tests (both hosts) are in test_connection_tests.py.

UPLOADED = {"code": 200, "msg": "ok", "data": {"downloadUrl": "https://files.test/p.png"}}


def own_key_row(**fields) -> Provider:
    return Provider(adapter="kie-nano-banana-pro", name="Ours", api_key="org-key", **fields)


def test_an_own_key_row_uploads_to_kies_public_upload_host_by_default(http):
    http.post(UPLOAD, json=UPLOADED)

    own_key_row().build().upload_file(png_bytes(), "p.png")

    assert http.calls[0].request.headers["Authorization"] == "Bearer org-key"


def test_an_own_key_row_behind_a_gateway_uploads_through_the_gateway(http):
    """A proxy that fronts kie.ai serves both APIs, so its base URL is the upload host too."""
    http.post("https://gateway.test/kie/api/file-base64-upload", json=UPLOADED)

    own_key_row(base_url="https://gateway.test/kie").build().upload_file(png_bytes(), "p.png")

    assert len(http.calls) == 1


def test_an_own_key_rows_upload_host_option_wins_over_its_base_url(http):
    http.post("https://uploads.test/api/file-base64-upload", json=UPLOADED)
    row = own_key_row(
        base_url="https://gateway.test/kie", options={"upload_base_url": "https://uploads.test"}
    )

    row.build().upload_file(png_bytes(), "p.png")

    assert len(http.calls) == 1


@pytest.mark.django_db
def test_a_catalogue_row_uploads_to_the_platforms_upload_host(http, org, platform_keys):
    platform_keys(
        kie="platform-key",
        kie_base_url="https://gateway.test",
        kie_upload_base_url="https://uploads.test",
    )
    http.post("https://uploads.test/api/file-base64-upload", json=UPLOADED)
    row = org.providers.select_related("catalogue").get(adapter="kie-nano-banana-pro")

    row.build().upload_file(png_bytes(), "p.png")

    assert http.calls[0].request.headers["Authorization"] == "Bearer platform-key"


# --- Options ------------------------------------------------------------------------------------


def test_it_validates_admin_options_with_its_options_form():
    assert SeedreamV4EditAdapter.validate_options({"max_images": 6, "seed": 0}) == {
        "max_images": 6,
        "seed": 0,
    }
    with pytest.raises(ValueError, match="'max_images': Ensure this value is less than or equal"):
        SeedreamV4EditAdapter.validate_options({"max_images": 7})
    with pytest.raises(ValueError, match="'max_images': Enter a whole number"):
        SeedreamV4EditAdapter.validate_options({"max_images": True})
    with pytest.raises(ValueError, match="Unknown option 'quality'"):
        Seedream45EditAdapter.validate_options({"quality": "high"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://x", "Only https:// URLs are allowed"),
        ("https://10.0.0.1", "private"),
        ("https://uploads.example/?next=x", "query string"),
    ],
)
def test_the_upload_host_option_follows_the_egress_policy(url, problem):
    with pytest.raises(ValueError, match=f"'upload_base_url': .*{problem}"):
        NanoBananaProAdapter.validate_options({"upload_base_url": url})


def test_the_upload_host_option_is_not_sent_as_model_input(http):
    http.post(CREATE, json=CREATED)
    options = {"upload_base_url": "https://uploads.example", "output_format": "jpg"}

    make(NanoBananaProAdapter, options=options).submit(ImageJobRequest("Mug"))

    assert sent_json(http.calls[0])["input"] == {
        "prompt": "Mug",
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "output_format": "jpg",
    }


def test_the_upload_host_option_is_stored_without_its_trailing_slash():
    cleaned = NanoBananaProAdapter.validate_options({"upload_base_url": "https://up.example/k/"})

    assert cleaned == {"upload_base_url": "https://up.example/k"}
