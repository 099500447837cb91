"""The storage settings against a real S3-compatible HTTP endpoint (moto's server mode)."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent


def test_with_a_bucket_configured_files_go_to_s3_and_come_back_through_presigned_urls(
    s3_endpoint,
):
    creds = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **creds)
    s3.create_bucket(Bucket="nerstudio-media")
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "true",
        "DATABASE_URL": "sqlite:///:memory:",
        "NERSTUDIO_S3_BUCKET": "nerstudio-media",
        "NERSTUDIO_S3_ENDPOINT_URL": s3_endpoint,
        "NERSTUDIO_S3_ACCESS_KEY_ID": "test-key",
        "NERSTUDIO_S3_SECRET_ACCESS_KEY": "test-secret",
        "NERSTUDIO_S3_REGION": "us-east-1",
        "NERSTUDIO_S3_URL_EXPIRY": "120",
    }
    script = (
        "from django.core.files.base import ContentFile\n"
        "from django.core.files.storage import storages\n"
        "s = storages['default']\n"
        "name = s.save('checks/hello.txt', ContentFile(b'hello from NER Studio'))\n"
        "print(type(s).__name__, name, s.url(name), sep='\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    backend, name, url = result.stdout.strip().splitlines()[-3:]

    assert backend == "S3Storage"
    stored = s3.get_object(Bucket="nerstudio-media", Key=name)["Body"].read()
    assert stored == b"hello from NER Studio"
    assert url.startswith(f"{s3_endpoint}/nerstudio-media/{name}?")
    assert "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
    assert requests.get(url, timeout=5).content == b"hello from NER Studio"
    unsigned = requests.get(url.split("?")[0], timeout=5)
    assert unsigned.status_code == 403  # the bucket itself stays private
