"""The uploader's pieces with moto's in-process mock: bucket names, keys, the checksum S3 stores, the
conditional manifest write, and the append-only refusal."""

from __future__ import annotations

import base64
import hashlib
import os

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from generator.config import ConfigError
from generator.uploader import S3Target, Uploader, UploadError, s3_checksum

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Upper", "under_score", "-start", "end-", "a..b", "a.-b", "10.0.0.1", "xn--abc", ""]
)
def test_invalid_bucket_names_are_refused(name):
    with pytest.raises(ConfigError, match="--bucket"):
        S3Target(name)


@given(st.from_regex(r"[a-z0-9][a-z0-9-]{1,40}[a-z0-9]", fullmatch=True), st.text("abc/", max_size=12))
def test_keys_mirror_the_local_layout_under_the_prefix(bucket, prefix):
    target = S3Target(bucket, prefix)
    rel = "events/dt=2025-11-01/part-00000-r.parquet"
    key = target.key(rel)
    inner = prefix.strip("/")
    assert key == (f"{inner}/{rel}" if inner else rel)
    assert target.url().startswith(f"s3://{bucket}/")


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="unit-bucket")
        yield client


@pytest.mark.parametrize("size", [1000, 5 * MiB + 7, 11 * MiB])
def test_the_checksum_we_compute_is_the_one_s3_stores(tmp_path, s3, size):
    path = tmp_path / "part.parquet"
    path.write_bytes(os.urandom(size))
    uploader = Uploader(S3Target("unit-bucket", "p"), chunk=5 * MiB)
    uploader.preflight()
    uploader.submit(path, "events/part.parquet", hashlib.sha256(path.read_bytes()).hexdigest())
    checksums = uploader.wait()
    uploader.close()
    stored = s3.head_object(Bucket="unit-bucket", Key="p/events/part.parquet", ChecksumMode="ENABLED")
    data = path.read_bytes()
    if size < 5 * MiB:  # one PUT: the object's own SHA-256
        expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    else:  # multipart, 5 MiB parts: the SHA-256 of the parts' digests, then the number of parts
        pieces = [data[i : i + 5 * MiB] for i in range(0, size, 5 * MiB)]
        joined = b"".join(hashlib.sha256(piece).digest() for piece in pieces)
        expected = base64.b64encode(hashlib.sha256(joined).digest()).decode() + f"-{len(pieces)}"
    assert checksums["events/part.parquet"] == s3_checksum(path, 5 * MiB) == expected
    assert stored["ChecksumSHA256"].split("-")[0] == checksums["events/part.parquet"].split("-")[0]
    assert checksums["events/part.parquet"].endswith("-3") == (size == 11 * MiB)


def test_the_manifest_is_written_once(s3):
    uploader = Uploader(S3Target("unit-bucket"))
    uploader.put_manifest("_manifests/r.json", b"{}")
    uploader.put_manifest("_manifests/r.json", b"{}")  # the same commit again: nothing to do
    with pytest.raises(UploadError, match="already exists"):
        uploader.put_manifest("_manifests/r.json", b'{"other": 1}')
    assert s3.get_object(Bucket="unit-bucket", Key="_manifests/r.json")["Body"].read() == b"{}"
    uploader.close()


def test_single_part_uploads_send_the_parts_sha256_for_s3_to_check(tmp_path, s3):
    """S3 refuses (BadDigest) a PUT whose bytes do not match the SHA-256 sent with it; moto does not check, so
    here we check our side: the header carries the digest from the part's manifest entry."""
    path = tmp_path / "part.parquet"
    path.write_bytes(os.urandom(4096))
    sent = []
    uploader = Uploader(S3Target("unit-bucket"))
    uploader.client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **kw: sent.append(request.headers.get("x-amz-checksum-sha256"))
    )
    digest = hashlib.sha256(path.read_bytes())
    uploader.submit(path, "events/part.parquet", digest.hexdigest())
    uploader.wait()
    uploader.close()
    assert [x.decode() if isinstance(x, bytes) else x for x in sent] == [base64.b64encode(digest.digest()).decode()]


def _missing_keys_answer_403(uploader, s3):
    """Make HEAD answer as S3 does to a caller without s3:ListBucket: 403, not 404, for a key that is not there."""
    from urllib.parse import unquote

    from botocore.awsrequest import AWSResponse

    def head(params, **kw):
        key = unquote(params["url_path"].lstrip("/").removeprefix("unit-bucket/"))
        if s3.list_objects_v2(Bucket="unit-bucket", Prefix=key).get("KeyCount", 0) == 0:
            error = {"Code": "403", "Message": "Forbidden"}
            return AWSResponse(params["url"], 403, {}, None), {"Error": error, "ResponseMetadata": {}}
        return None

    uploader.client.meta.events.register("before-call.s3.HeadObject", head)


@pytest.mark.parametrize("size", [4096, 6 * MiB])
def test_a_missing_key_denied_rather_than_not_found_is_told_by_a_listing(tmp_path, s3, size):
    """A role that may read and list only under its prefix can get 403 for a HEAD of a key not there yet: the
    uploader lists under the key, finds nothing and uploads; an object already there is still checked, not
    replaced."""
    path = tmp_path / "part.parquet"
    path.write_bytes(os.urandom(size))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    uploader = Uploader(S3Target("unit-bucket", "p"), chunk=5 * MiB)
    _missing_keys_answer_403(uploader, s3)
    with pytest.raises(s3.exceptions.ClientError, match="403"):  # the emulation is on
        uploader.client.head_object(Bucket="unit-bucket", Key="p/events/part.parquet")
    uploader.submit(path, "events/part.parquet", digest)
    assert uploader.wait() == {"events/part.parquet": s3_checksum(path, 5 * MiB)}
    assert s3.get_object(Bucket="unit-bucket", Key="p/events/part.parquet")["Body"].read() == path.read_bytes()
    other = tmp_path / "other.parquet"
    other.write_bytes(os.urandom(size))
    uploader.submit(other, "events/part.parquet", hashlib.sha256(other.read_bytes()).hexdigest())
    with pytest.raises(UploadError, match="already exists"):
        uploader.wait()
    uploader.close()


def test_a_key_denied_that_is_there_stays_an_error(tmp_path, s3):
    """403 for a key the listing shows is a real denial: the upload fails with it instead of overwriting."""
    s3.put_object(Bucket="unit-bucket", Key="p/events/part.parquet", Body=b"someone else's")
    path = tmp_path / "part.parquet"
    path.write_bytes(os.urandom(4096))
    uploader = Uploader(S3Target("unit-bucket", "p"))

    def denied(params, **kw):
        from botocore.awsrequest import AWSResponse

        return AWSResponse(params["url"], 403, {}, None), {"Error": {"Code": "403", "Message": "Forbidden"}}

    uploader.client.meta.events.register("before-call.s3.HeadObject", denied)
    uploader.submit(path, "events/part.parquet", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(UploadError, match="403"):
        uploader.wait()
    uploader.close()
    assert s3.get_object(Bucket="unit-bucket", Key="p/events/part.parquet")["Body"].read() == b"someone else's"


def test_open_uploads_are_listed_under_the_prefix_and_its_slash(s3):
    """The listing `abort` makes asks for "<prefix>/", the only listing a prefix-scoped role may make (terraform's
    s3:prefix condition), and so never sees a neighbouring prefix that merely starts the same."""
    for key in ("p/events/part-00000-r.parquet", "p2/events/part-00000-r.parquet"):
        s3.create_multipart_upload(Bucket="unit-bucket", Key=key)
    asked = []
    uploader = Uploader(S3Target("unit-bucket", "p"))
    uploader.client.meta.events.register(
        "provide-client-params.s3.ListMultipartUploads", lambda params, **kw: asked.append(params["Prefix"])
    )
    assert [u["Key"] for u in uploader.open_uploads("r")] == ["p/events/part-00000-r.parquet"]
    assert asked == ["p/"]
    uploader.close()
