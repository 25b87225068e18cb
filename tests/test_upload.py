"""The S3 sink against moto's S3 server over real HTTP on loopback: layout, checksums, multipart, overlap with
generation, the manifest last, append-only objects, resume, and clear errors."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import boto3
import duckdb
import orjson
import pytest
from moto.server import ThreadedMotoServer

from generator import timeline
from generator.cli import main
from generator.coordinator import run, upload_committed
from generator.manifest import relative_path
from generator.uploader import S3Target, TimelineTaken, Uploader, UploadError, s3_checksum

from . import faults
from .conftest import small_config

BUCKET = "temu-ng-events-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])
    for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])
    client.delete_bucket(Bucket=BUCKET)


def _uploader(endpoint: str, prefix: str = "lake/v1", **kw) -> Uploader:
    u = Uploader(S3Target(BUCKET, prefix, endpoint, "us-east-1"), **kw)
    u.preflight()
    return u


def _keys(client, prefix: str = "") -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def test_run_uploads_mirror_the_local_layout_with_verified_checksums(tmp_path, s3, s3_server):
    summary = run(small_config(tmp_path, workers=2, events=8_000, shard_size=2_000), uploader=_uploader(s3_server))
    doc = summary.manifest
    local = {p["path"] for p in doc["parts"]}
    state = doc["timeline"]["state"]["path"]
    committed = {state, relative_path("r1"), "_timeline/00000000.json"}  # the state, the manifest, its position
    committed |= {f"committed/{d}/r1.txt" for d in {p.split("/")[1] for p in local}}  # its index, by day
    assert _keys(s3, "lake/v1/") == {f"lake/v1/{p}" for p in local | committed}
    remote = orjson.loads(s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{relative_path('r1')}")["Body"].read())
    assert remote == doc == orjson.loads((tmp_path / relative_path("r1")).read_bytes())
    assert set(doc["s3"]["checksums"]) == local | {state}
    for rel, checksum in doc["s3"]["checksums"].items():
        head = s3.head_object(Bucket=BUCKET, Key=f"lake/v1/{rel}", ChecksumMode="ENABLED")
        assert (
            head["ChecksumSHA256"].split("-")[0] == checksum.split("-")[0] == s3_checksum(tmp_path / rel).split("-")[0]
        )
        body = s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{rel}")["Body"].read()
        assert body == (tmp_path / rel).read_bytes()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_run_whose_early_parts_are_void_lists_only_its_own_objects(tmp_path, s3, s3_server, monkeypatch, capsys):
    """Early parts go up as soon as they are written; when the run turns out to end before their instant (forced
    here) they are void: the manifest's parts and S3 checksums list only the run's own objects, and every event of
    the committed parts is in S3 as written."""
    from generator import coordinator
    from generator.core import shard as shard_module

    cfg = small_config(tmp_path, workers=2, events=8_000, shard_size=2_000)
    late = shard_module._time_of(cfg.resolve(None).gen(), 1.01 * 8_000)
    monkeypatch.setattr(coordinator, "early_until", lambda gen: late)
    doc = run(cfg, uploader=_uploader(s3_server)).manifest
    local = {p["path"] for p in doc["parts"]}
    assert {p.rsplit("/", 1)[-1].split("-")[2] for p in local} == {"2"}
    assert set(doc["s3"]["checksums"]) == local | {doc["timeline"]["state"]["path"]}
    in_s3 = _keys(s3, "lake/v1/events/")
    assert {f"lake/v1/{p}" for p in local} <= in_s3
    assert sum(p["rows"] for p in doc["parts"]) == 8_000
    # The void early parts are in S3 too, listed by no manifest: `gen runs --parts --s3` leaves them out.
    void = {k for k in in_s3 if k.rsplit("/", 1)[-1].split("-")[2] == "0"}
    assert void and in_s3 == void | {f"lake/v1/{p}" for p in local}
    assert main(["runs", str(tmp_path), "--parts", "--s3"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(listed) == sorted(f"s3://{BUCKET}/lake/v1/{p}" for p in local)
    # The committed-parts index (what the Glue table events_committed reads) lists the same parts, by day; read
    # as Athena reads a SymlinkTextInputFormat table, by DuckDB, it holds the run's events and no void one.
    index = _symlink_table(s3, "lake/v1")
    assert sorted(u for urls in index.values() for u in urls) == sorted(listed)
    assert all(f"/{day}/" in u for day, urls in index.items() for u in urls)
    rows = _read_parquet(s3, [u for urls in index.values() for u in urls], tmp_path / "index")
    assert rows == (8_000, 8_000)
    assert _read_parquet(s3, [f"s3://{BUCKET}/{k}" for k in in_s3], tmp_path / "all")[0] > 8_000, "void parts"


def _symlink_table(client, prefix: str) -> dict[str, list[str]]:
    """What a SymlinkTextInputFormat table over <prefix>/committed/ partitioned by dt reads: for each partition
    folder, the lines of the files in it (Hadoop skips names starting with '_' or '.')."""
    days: dict[str, list[str]] = {}
    for key in sorted(_keys(client, f"{prefix}/committed/")):
        day, name = key.split("/")[-2:]
        assert day.startswith("dt=") and name.endswith(".txt") and not name.startswith(("_", "."))
        days.setdefault(day, []).extend(client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().split())
    return days


def _read_parquet(client, urls: list[str], where) -> tuple[int, int]:
    """Rows and distinct event ids of the objects at `urls`, fetched and read by DuckDB."""
    where.mkdir()
    files = []
    for i, url in enumerate(urls):
        assert url.startswith(f"s3://{BUCKET}/")
        files.append(str(where / f"{i}.parquet"))
        client.download_file(BUCKET, url.removeprefix(f"s3://{BUCKET}/"), files[-1])
    return duckdb.connect().execute(f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet({files})").fetchone()


def test_the_committed_index_lists_each_run_by_day_and_nothing_else(tmp_path, s3, s3_server, capsys):
    """Two runs of a timeline partitioned by hour: one index entry per run and day, listing exactly the run's parts
    of that day (hour folders included); unpartitioned parts belong to no day and have none."""
    s3_args = ["--bucket", BUCKET, "--prefix", "ix", "--endpoint-url", s3_server]
    base = ["run", "--out", str(tmp_path), "--customers", "6000", "--workers", "2", "-q", *s3_args]
    for run_id in ("a", "b"):
        assert main([*base, "--duration", "30h", "--run-id", run_id, "--partition-by", "hour"]) == 0
    docs = timeline.load(tmp_path).runs
    index = _symlink_table(s3, "ix")
    entries = {k.removeprefix("ix/committed/") for k in _keys(s3, "ix/committed/")}
    expected = {f"{p['path'].split('/')[1]}/{d['run_id']}.txt" for d in docs for p in d["parts"]}
    assert entries == expected and len({e.split("/")[0] for e in entries}) >= 3, entries
    for entry in entries:
        day, run_id = entry.removesuffix(".txt").split("/")
        body = s3.get_object(Bucket=BUCKET, Key=f"ix/committed/{entry}")["Body"].read().decode()
        doc = next(d for d in docs if d["run_id"] == run_id)
        assert body == "".join(f"s3://{BUCKET}/ix/{p['path']}\n" for p in doc["parts"] if f"/{day}/hour=" in p["path"])
    listed = sorted(u for urls in index.values() for u in urls)
    assert listed == sorted(f"s3://{BUCKET}/ix/{p['path']}" for d in docs for p in d["parts"])
    none = ["run", "--out", str(tmp_path / "flat"), "--events", "2000", "--customers", "3000", "-q"]
    assert main([*none, "--partition-by", "none", "--run-id", "n", "--bucket", BUCKET, "--prefix", "flat"]) == 2
    assert (
        main(
            [
                *none,
                "--partition-by",
                "none",
                "--run-id",
                "n",
                *s3_args[:1],
                BUCKET,
                "--prefix",
                "flat",
                "--endpoint-url",
                s3_server,
            ]
        )
        == 0
    )
    assert f"flat/{relative_path('n')}" in _keys(s3, "flat/") and not _keys(s3, "flat/committed/")


def test_a_run_stopped_between_its_manifest_and_its_index_is_listed_later(tmp_path, s3, s3_server, capsys, monkeypatch):
    """The index is written after the commit: when that fails the run is committed in S3 all the same, and says
    so (exit 1, local parts kept); `gen upload` writes the missing entries, and so does the next run for its
    predecessor. An entry already there with other lines is never replaced."""
    from generator.uploader import Uploader, UploadError

    s3_args = ["--bucket", BUCKET, "--prefix", "crash", "--endpoint-url", s3_server]
    # several shards in two workers: the manifest `gen upload` writes again is the same document as the run's
    many = ["--shard-size", "700", "--workers", "2"]
    base = ["run", "--out", str(tmp_path), "--events", "2000", "--customers", "3000", "-q", *many, *s3_args]
    put_index = Uploader.put_index

    def fails_for(run_id: str):
        def put(self, doc):
            if doc["run_id"] == run_id:
                raise UploadError("connection reset")
            return put_index(self, doc)

        return put

    monkeypatch.setattr(Uploader, "put_index", fails_for("a"))
    assert main([*base, "--run-id", "a", "--no-keep-local"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gen: run failed: run 'a' is committed in s3://" in err, err
    assert "index failed: connection reset" in err and f"gen upload --run-id a --out {tmp_path}" in err
    assert f"crash/{relative_path('a')}" in _keys(s3) and not _keys(s3, "crash/committed/")
    assert list((tmp_path / "events").rglob("*.parquet")), "the local parts stay until the index is up"
    monkeypatch.setattr(Uploader, "put_index", put_index)
    assert main(["upload", "--run-id", "a", "--out", str(tmp_path), *s3_args]) == 0
    assert {k.rsplit("/", 1)[-1] for k in _keys(s3, "crash/committed/")} == {"a.txt"}

    monkeypatch.setattr(Uploader, "put_index", fails_for("b"))
    assert main([*base, "--run-id", "b"]) == 1
    monkeypatch.setattr(Uploader, "put_index", put_index)
    assert main([*base, "--run-id", "c"]) == 0
    runs = {k.rsplit("/", 1)[-1] for k in _keys(s3, "crash/committed/")}
    assert runs == {"a.txt", "b.txt", "c.txt"}, "c wrote its predecessor's entries too"
    docs = timeline.load(tmp_path).runs
    index = _symlink_table(s3, "crash")
    assert sorted(u for urls in index.values() for u in urls) == sorted(
        f"s3://{BUCKET}/crash/{p['path']}" for d in docs for p in d["parts"]
    )

    capsys.readouterr()
    key = f"crash/committed/dt={docs[-1]['window']['end'][:10]}/d.txt"  # the day run d starts in
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"s3://elsewhere/part.parquet\n")
    assert main([*base, "--run-id", "d"]) == 1
    assert "already exists with other content; not overwritten" in capsys.readouterr().err
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"s3://elsewhere/part.parquet\n"


def test_big_parts_go_multipart_and_uploads_overlap_generation(tmp_path, s3, s3_server):
    """5 MiB upload parts: a shard's ~7 MB part is sent in two, while the next shard still generates."""
    calls: list[tuple[float, str]] = []
    uploader = _uploader(s3_server, chunk=5 * 1024 * 1024)
    for event in ("CreateMultipartUpload", "PutObject", "CompleteMultipartUpload"):
        uploader.client.meta.events.register(
            f"before-call.s3.{event}", lambda params, event=event, **kw: calls.append((time.monotonic(), event))
        )
    done_at: list[float] = []

    from generator.coordinator import Listener

    class Clock(Listener):
        def shard_done(self, result):
            done_at.append(time.monotonic())

    # Three shards: the first part's upload has two shards' generation time to get going.
    cfg = small_config(tmp_path, events=600_000, shard_size=200_000, customers=150_000, workers=1, partition_by="none")
    summary = run(cfg, Clock(), uploader=uploader)
    checksums = summary.manifest["s3"]["checksums"]
    assert any(c.endswith("-2") for c in checksums.values()), "a part above 5 MiB went up in two parts"
    assert any(e == "CreateMultipartUpload" for _, e in calls)
    first_upload = min(t for t, e in calls if e in ("CreateMultipartUpload", "PutObject"))
    assert first_upload < done_at[-1], "the first part was on its way before the last shard was generated"
    manifest_put = max(t for t, e in calls if e == "PutObject")
    assert all(t <= manifest_put for t, e in calls if e == "CompleteMultipartUpload"), "manifest last"


def test_existing_objects_are_never_overwritten_and_resume_skips_them(tmp_path, s3, s3_server):
    cfg = small_config(tmp_path, events=6_000, shard_size=2_000)
    summary = run(cfg)  # committed locally only
    rels = [p["path"] for p in summary.manifest["parts"]]
    # An earlier, interrupted upload got one part across.
    s3.upload_file(str(tmp_path / rels[0]), BUCKET, f"lake/v1/{rels[0]}", ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    before = s3.head_object(Bucket=BUCKET, Key=f"lake/v1/{rels[0]}")["LastModified"]
    doc = upload_committed(tmp_path, "r1", _uploader(s3_server))
    assert s3.head_object(Bucket=BUCKET, Key=f"lake/v1/{rels[0]}")["LastModified"] == before
    assert set(doc["s3"]["checksums"]) == {*rels, summary.manifest["timeline"]["state"]["path"]}
    assert f"lake/v1/{relative_path('r1')}" in _keys(s3)
    # Uploading the same run again finds everything in place and changes nothing.
    manifest_key = f"lake/v1/{relative_path('r1')}"
    before = s3.head_object(Bucket=BUCKET, Key=manifest_key)["LastModified"]
    assert upload_committed(tmp_path, "r1", _uploader(s3_server)) == doc
    assert s3.head_object(Bucket=BUCKET, Key=manifest_key)["LastModified"] == before
    # Another run's manifest under the same name is never replaced.
    from generator.uploader import UploadError

    s3.delete_object(Bucket=BUCKET, Key=manifest_key)
    s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=b'{"run_id": "someone else"}')
    with pytest.raises(UploadError, match="already exists"):
        upload_committed(tmp_path, "r1", _uploader(s3_server))


def test_a_part_with_other_content_in_the_way_fails_the_upload_but_keeps_the_local_run(tmp_path, s3, s3_server):
    from generator.coordinator import UploadFailed

    cfg = small_config(tmp_path / "a", events=4_000, shard_size=2_000)
    local = run(cfg).manifest  # to learn the part names
    s3.put_object(Bucket=BUCKET, Key=f"lake/v1/{local['parts'][0]['path']}", Body=b"someone else's bytes")
    with pytest.raises(UploadFailed, match="gen upload --run-id r1"):
        run(small_config(tmp_path / "b", events=4_000, shard_size=2_000), uploader=_uploader(s3_server))
    assert (tmp_path / "b" / relative_path("r1")).exists(), "committed locally"
    assert f"lake/v1/{relative_path('r1')}" not in _keys(s3), "no manifest in S3"
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == [], "nothing left open"
    assert s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{local['parts'][0]['path']}")["Body"].read() == (
        b"someone else's bytes"
    )


def test_no_keep_local_removes_the_local_copy_after_the_commit(tmp_path, s3, s3_server, capsys):
    args = [
        "run",
        "--out",
        str(tmp_path),
        "--events",
        "3000",
        "--customers",
        "5000",
        "--run-id",
        "nk",
        "--quiet",
        "--bucket",
        BUCKET,
        "--prefix",
        "p",
        "--endpoint-url",
        s3_server,
        "--no-keep-local",
    ]
    assert main(args) == 0
    assert not list((tmp_path / "events").rglob("*.parquet"))
    assert (tmp_path / relative_path("nk")).exists(), "the manifest and state stay, so the timeline continues"
    # A run whose parts are only in S3 is not reported as broken (exit 1), nor as checked: nothing here to check.
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to validate here: run(s) 'nk' have no parts in" in err, err
    assert f"they are in s3://{BUCKET}/p/" in err and "gen validate reads local parts" in err
    assert main(["report", str(tmp_path)]) == 2, "nothing to report on here"
    assert "no committed run with events here (parts only in S3" in capsys.readouterr().err
    remote = orjson.loads(s3.get_object(Bucket=BUCKET, Key=f"p/{relative_path('nk')}")["Body"].read())
    assert {f"p/{p['path']}" for p in remote["parts"]} <= _keys(s3, "p/")


def test_bucket_and_endpoint_from_the_environment(tmp_path, s3, s3_server, monkeypatch, capsys):
    monkeypatch.setenv("GEN_BUCKET", BUCKET)
    monkeypatch.setenv("GEN_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("GEN_PREFIX", "env")
    args = ["run", "--out", str(tmp_path), "--events", "2000", "--customers", "3000", "--run-id", "e", "--json"]
    assert main(args) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["s3"] == {"bucket": BUCKET, "prefix": "env", "objects": summary["parts"] + 1}  # and the state
    assert f"env/{relative_path('e')}" in _keys(s3)


def test_the_summary_counts_the_parts_apart_from_the_state(tmp_path, s3, s3_server, capsys):
    """A run into S3 says "N parts, the state and the manifest": N the parts it said it wrote, not N + 1."""
    args = ["run", "--out", str(tmp_path), "--events", "2000", "--customers", "3000", "--run-id", "u"]
    assert main([*args, "--bucket", BUCKET, "--endpoint-url", s3_server]) == 0
    lines = capsys.readouterr().out.splitlines()
    parts = len(orjson.loads((tmp_path / relative_path("u")).read_bytes())["parts"])
    assert any(line.startswith(f"{parts} part{'s' * (parts > 1)}, ") for line in lines), lines
    uploaded = next(line for line in lines if line.startswith("uploaded "))
    assert uploaded.startswith(f"uploaded {parts} part{'s' * (parts > 1)}, the state and the manifest ("), uploaded
    assert uploaded.endswith(f" to s3://{BUCKET}/"), uploaded


def _dead_endpoint() -> str:
    return f"http://127.0.0.1:{_free_port()}"


def _refused_up_front(tmp_path, capsys, *args: str) -> str:
    """Run `gen run` into S3 with a small event count: it must exit 2 with one line and write nothing."""
    code = main(["run", "--out", str(tmp_path / "o"), "--events", "100", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
    return err


@pytest.mark.parametrize("size", [4096, 11 * 1024 * 1024])
def test_bodies_over_plain_http_are_not_hashed_again_for_the_signature(tmp_path, s3, s3_server, size):
    """Over plain HTTP botocore would SHA-256 every body for the signature, on top of the checksum header S3
    verifies (one more pass over every byte in the coordinator). Single PUTs and multipart parts go unsigned,
    their checksum header signed, and S3 stores the object whole."""
    path = tmp_path / "part.parquet"
    path.write_bytes(os.urandom(size))
    uploader = _uploader(s3_server, chunk=5 * 1024 * 1024)
    sent = []

    def record(request, **kw):
        auth = request.headers.get("Authorization")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        body_hash = request.headers.get("x-amz-content-sha256")
        sent.append(
            (body_hash.decode() if isinstance(body_hash, bytes) else body_hash, "x-amz-checksum-sha256" in auth)
        )

    for op in ("PutObject", "UploadPart"):
        uploader.client.meta.events.register(f"before-send.s3.{op}", record)
    uploader.submit(path, "events/part.parquet", hashlib.sha256(path.read_bytes()).hexdigest())
    uploader.wait()
    uploader.close()
    assert sent and all(h == "UNSIGNED-PAYLOAD" and signed for h, signed in sent), sent
    assert len(sent) == (1 if size < 5 * 1024 * 1024 else 3)
    stored = s3.get_object(Bucket=BUCKET, Key=uploader.target.key("events/part.parquet"))["Body"].read()
    assert stored == path.read_bytes()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--bucket", "Not_A_Bucket"], "Not_A_Bucket"),
        (["--bucket", "192.168.1.1"], "192.168.1.1"),
        (["--bucket", "no-such-bucket-here"], "does not exist"),
        (["--bucket", BUCKET, "--endpoint-url", "DEAD"], "no answer"),
        (["--bucket", BUCKET, "--endpoint-url", "notaurl"], "--endpoint-url: not an http:// or https:// URL"),
        (["--bucket", BUCKET, "--region", "bad!"], "--region: not an AWS region name: 'bad!'"),
        (["--bucket", BUCKET, "PROFILE"], "AWS credentials: The config profile (no-such-profile) could not be found"),
    ],
)
def test_bad_s3_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, s3, s3_server, capsys, monkeypatch, extra, named
):
    if "PROFILE" in extra:
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
        extra = [x for x in extra if x != "PROFILE"]
    extra = [_dead_endpoint() if x == "DEAD" else x for x in extra]
    endpoint = [] if "--endpoint-url" in extra else ["--endpoint-url", s3_server]
    assert named in _refused_up_front(tmp_path, capsys, *endpoint, *extra)


def test_missing_credentials_exit_2(tmp_path, s3_server, monkeypatch, capsys):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = ("--bucket", BUCKET, "--endpoint-url", s3_server, "--region", "us-east-1")
    assert "credentials" in _refused_up_front(tmp_path, capsys, *args)


def test_upload_threads_do_not_outlive_the_run(tmp_path, s3, s3_server):
    def ours() -> list[str]:  # the S3 server's request threads come and go; count only the run's own
        return [t.name for t in threading.enumerate() if t.name.startswith(("upload", "fsync"))]

    assert ours() == []
    run(small_config(tmp_path, events=2_000), uploader=_uploader(s3_server))
    assert ours() == []


def test_throttling_and_dropped_connections_are_retried(tmp_path, s3, s3_server):
    """A quarter of all writes fail (503 SlowDown or a dropped connection): the run still commits, S3 holds
    exactly the manifest's objects with their checksums, and no multipart upload is left open."""
    with faults.FaultyProxy(s3_server, every=4) as proxy:
        uploader = _uploader(proxy.url, chunk=5 * 1024 * 1024)
        cfg = small_config(
            tmp_path, events=400_000, shard_size=200_000, customers=60_000, workers=2, partition_by="none"
        )
        doc = run(cfg, uploader=uploader).manifest
    assert proxy.failed >= 1 and proxy.dropped >= 1, (proxy.writes, proxy.failed, proxy.dropped)
    assert any(c.endswith("-2") for c in doc["s3"]["checksums"].values()), "multipart parts were retried too"
    objects = [p["path"] for p in doc["parts"]] + [doc["timeline"]["state"]["path"], relative_path("r1")]
    objects.append("_timeline/00000000.json")
    assert _keys(s3, "lake/v1/") == {f"lake/v1/{p}" for p in objects}
    for p in doc["parts"]:
        body = s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{p['path']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == p["sha256"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.mark.slow
def test_interrupt_mid_upload_then_redo_gives_the_same_bytes(tmp_path, s3, s3_server):
    out = tmp_path / "out"
    base = [
        sys.executable,
        "-m",
        "generator",
        "run",
        "--out",
        str(out),
        "--run-id",
        "int",
        "--workers",
        "2",
        "--events",
        "1000000",
        "--shard-size",
        "250000",
        "--partition-by",
        "none",
        "--bucket",
        BUCKET,
        "--prefix",
        "lake/v1",
    ]
    env = {**os.environ}
    with faults.FaultyProxy(s3_server, every=0, delay=0.5) as proxy:
        proc = subprocess.Popen(
            [*base, "--endpoint-url", proxy.url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "a multipart upload was in flight"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "nothing was committed" in err and "--run-id int" in err and "Traceback" not in err
    assert f"lake/v1/{relative_path('int')}" not in _keys(s3)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert not (out / "_manifests").exists()

    done = subprocess.run([*base, "--endpoint-url", s3_server, "--quiet"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    doc = orjson.loads(s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{relative_path('int')}")["Body"].read())
    for p in doc["parts"]:
        assert s3.get_object(Bucket=BUCKET, Key=f"lake/v1/{p['path']}")["Body"].read() == (out / p["path"]).read_bytes()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_access_denied_exits_2(tmp_path, s3, s3_server, capsys):
    with faults.FaultyProxy(s3_server, deny=True) as proxy:
        err = _refused_up_front(tmp_path, capsys, "--bucket", BUCKET, "--endpoint-url", proxy.url)
    assert "access denied" in err


def test_a_failed_upload_exits_1_with_how_to_finish(tmp_path, s3, s3_server, capsys):
    args = [
        "run",
        "--out",
        str(tmp_path),
        "--events",
        "2000",
        "--customers",
        "3000",
        "--run-id",
        "f",
        "--quiet",
        "--bucket",
        BUCKET,
        "--endpoint-url",
        s3_server,
    ]
    assert main([*args[:-4], "--out", str(tmp_path / "probe")]) == 0  # learn the part names
    part = next((tmp_path / "probe" / "events").rglob("*.parquet")).relative_to(tmp_path / "probe")
    s3.put_object(Bucket=BUCKET, Key=str(part), Body=b"in the way")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "gen: run failed:" in err and "gen upload --run-id f" in err and "Traceback" not in err
    s3.delete_object(Bucket=BUCKET, Key=str(part))  # the obstacle goes (test cleanup, not the tool)
    s3.delete_object(Bucket=BUCKET, Key="_state/f.parquet")  # as if the run had stopped before the state went up
    assert (
        main(["upload", "--run-id", "f", "--out", str(tmp_path), "--bucket", BUCKET, "--endpoint-url", s3_server]) == 0
    )
    assert {relative_path("f"), "_state/f.parquet"} <= _keys(s3), "the manifest, and the state the timeline needs"


def test_a_fresh_machine_pulls_the_timeline_from_s3_and_continues_it(tmp_path, s3, s3_server, capsys):
    """The scheduled EC2 runner starts with an empty disk each time: `gen run --bucket` refuses to fork the S3
    timeline from scratch; `gen pull` brings the manifests and the last state, and the next run continues."""
    s3_args = ["--bucket", BUCKET, "--prefix", "tl", "--endpoint-url", s3_server]
    first = tmp_path / "first-machine"
    base = ["run", "--events", "3000", "--customers", "4000", "--workers", "1", "--quiet", *s3_args]
    assert main([*base, "--out", str(first), "--run-id", "a", "--no-keep-local"]) == 0
    fresh = tmp_path / "fresh-machine"
    assert main([*base, "--out", str(fresh), "--run-id", "b"]) == 2
    err = capsys.readouterr().err
    assert "holds 1 run(s) that" in err and "gen pull" in err and err.count("\n") == 1
    assert not fresh.exists() or not any(fresh.rglob("*.parquet")), "nothing written"
    assert main(["pull", "--out", str(fresh), *s3_args]) == 0
    assert "pulled 1 run(s)" in capsys.readouterr().out
    assert main(["pull", "--out", str(fresh), *s3_args]) == 0, "pulling again is a no-op"
    assert "pulled 0 run(s)" in capsys.readouterr().out
    assert main([*base, "--out", str(fresh), "--run-id", "b"]) == 0
    docs = timeline.load(fresh).runs
    assert [d["run_id"] for d in docs] == ["a", "b"] and docs[1]["window"]["start"] == docs[0]["window"]["end"]
    assert docs[1]["timeline"]["carried_in"] == docs[0]["timeline"]["carried_out"] > 0
    remote = {k.rsplit("/", 1)[-1] for k in _keys(s3, "tl/_manifests/")}
    assert remote == {"a.json", "b.json"}
    # The same history made on one machine without S3 has the same bytes.
    local = tmp_path / "one-machine"
    for run_id in ("a", "b"):
        assert main([*base[: -len(s3_args)], "--out", str(local), "--run-id", run_id]) == 0
    b_parts = {p["path"]: p["sha256"] for p in docs[1]["parts"]}
    assert b_parts == {p["path"]: p["sha256"] for p in timeline.load(local).runs[1]["parts"]}


def test_a_pulled_timeline_keeps_its_layout_and_is_validated_only_where_its_parts_are(tmp_path, s3, s3_server, capsys):
    """A timeline written elsewhere (parts kept there) and pulled here: the next run here continues it in its
    partition layout (another --partition-by is refused before S3 is touched); `gen validate` says the pulled
    run's parts are not here rather than passing on nothing, and checks the runs whose parts are."""
    s3_args = ["--bucket", BUCKET, "--prefix", "lay", "--endpoint-url", s3_server]
    base = ["run", "--events", "2000", "--customers", "3000", "--workers", "1", "-q", *s3_args]
    assert main([*base, "--out", str(tmp_path / "origin"), "--run-id", "a", "--partition-by", "hour"]) == 0
    fresh = tmp_path / "fresh"
    assert main(["pull", "--out", str(fresh), *s3_args]) == 0
    capsys.readouterr()
    for whole, said in (([], "nothing to validate here: "), (["--all"], "--all needs the parts of every run: ")):
        assert main(["validate", str(fresh), "--workers", "1", *whole]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{said}run(s) 'a' have no parts in {str(fresh)!r}" in err, err
        assert f"they are in s3://{BUCKET}/lay/" in err and "gen validate reads local parts" in err
    keys = _keys(s3)
    before = {p: p.stat().st_mtime_ns for p in fresh.rglob("*")}
    assert main([*base, "--out", str(fresh), "--run-id", "b", "--partition-by", "date"]) == 2
    err = capsys.readouterr().err
    assert "--partition-by: date differs from hour, the layout of the timeline" in err and err.count("\n") == 1
    assert {p: p.stat().st_mtime_ns for p in fresh.rglob("*")} == before and _keys(s3) == keys, "nothing written"
    assert main([*base, "--out", str(fresh), "--run-id", "b"]) == 0
    doc = timeline.load(fresh).runs[1]
    assert doc["options"]["partition_by"] == "hour" and all("/hour=" in p["path"] for p in doc["parts"])
    assert {f"lay/{p['path']}" for p in doc["parts"]} <= _keys(s3, "lay/events/")
    assert main(["validate", str(fresh), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 run(s)" in out and "not checked here (no parts in this directory; they are in S3): a" in out
    # `gen runs --parts`: the pulled run's parts are in S3 only, so their local paths are refused; --s3 lists them.
    assert main(["runs", str(fresh), "--parts"]) == 2
    err = capsys.readouterr().err
    assert "--parts: run 'a' has no parts under" in err and "add --s3" in err and err.count("\n") == 1
    assert main(["runs", str(fresh), "--parts", "--s3"]) == 0
    listed = capsys.readouterr().out.splitlines()
    runs = timeline.load(fresh).runs
    assert listed == [f"s3://{BUCKET}/lay/{p['path']}" for d in runs for p in d["parts"]]
    assert {u.removeprefix(f"s3://{BUCKET}/") for u in listed} <= _keys(s3, "lay/events/")


def test_pull_refuses_a_state_that_does_not_match(tmp_path, s3, s3_server, capsys):
    s3_args = ["--bucket", BUCKET, "--prefix", "bad", "--endpoint-url", s3_server]
    args = ["run", "--events", "2000", "--customers", "3000", "--workers", "1", "-q", "--run-id", "a", *s3_args]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    s3.put_object(Bucket=BUCKET, Key="bad/_state/a.parquet", Body=b"not the state")
    assert main(["pull", "--out", str(tmp_path / "b"), *s3_args]) == 2
    assert "does not match its manifest" in capsys.readouterr().err
    assert not (tmp_path / "b" / "_manifests").exists()


def test_two_machines_continuing_one_timeline_cannot_fork_it_in_s3(tmp_path, s3, s3_server, capsys):
    """Both pulled the same last run and both run: the first to take the next position in S3 (a conditional
    write of _timeline/<position>.json) commits there; the other's manifest never goes up, and it says so."""
    s3_args = ["--bucket", BUCKET, "--prefix", "race", "--endpoint-url", s3_server]
    base = ["run", "--events", "2000", "--customers", "3000", "--workers", "1", "-q", *s3_args]
    assert main([*base, "--out", str(tmp_path / "origin"), "--run-id", "a"]) == 0
    for machine in ("m1", "m2"):
        assert main(["pull", "--out", str(tmp_path / machine), *s3_args]) == 0
    assert main([*base, "--out", str(tmp_path / "m1"), "--run-id", "b1"]) == 0
    capsys.readouterr()
    # m2 checked S3 before m1 committed (gen run's up-front check would refuse it now): it runs all the same.
    late = small_config(tmp_path / "m2", run_id="b2", seed=None, customers=None, events=2_000, workers=1)
    with pytest.raises(TimelineTaken, match=r"run 'b1' already continued the timeline .* at position 1"):
        run(late, uploader=_uploader(s3_server, prefix="race"))
    assert main([*base, "--out", str(tmp_path / "m2"), "--run-id", "b3"]) == 2, "and now it is told where to go"
    err = capsys.readouterr().err
    assert "went separate ways (run 'b2' is only here, 'b1' only there)" in err and "into a fresh --out" in err
    assert {k.rsplit("/", 1)[-1] for k in _keys(s3, "race/_manifests/")} == {"a.json", "b1.json"}
    claims = {
        k.rsplit("/", 1)[-1]: orjson.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())["run_id"]
        for k in _keys(s3, "race/_timeline/")
    }
    assert claims == {"00000000.json": "a", "00000001.json": "b1"}
    # Re-uploading a run that holds its position is still a no-op.
    assert main(["upload", "--run-id", "b1", "--out", str(tmp_path / "m1"), *s3_args]) == 0


def test_a_bucket_run_refuses_a_timeline_that_s3_lacks_runs_of(tmp_path, s3, s3_server, capsys):
    """Runs committed here but not in S3 (made without --bucket, or whose upload failed) would leave a gap in the
    S3 timeline that no machine could pull: a run with --bucket refuses until `gen upload` puts them there."""
    s3_args = ["--bucket", BUCKET, "--prefix", "gap", "--endpoint-url", s3_server]
    base = ["run", "--out", str(tmp_path), "--events", "2000", "--customers", "3000", "-q"]
    assert main([*base, "--run-id", "a"]) == 0
    keys = _keys(s3)
    assert main([*base, "--run-id", "b", *s3_args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run(s) 'a' of the timeline in" in err, err
    assert f"gen upload --run-id a --out {tmp_path}" in err and _keys(s3) == keys, "nothing written"
    assert main(["upload", "--run-id", "a", "--out", str(tmp_path), *s3_args]) == 0
    assert main([*base, "--run-id", "b", *s3_args]) == 0
    assert main(["pull", "--out", str(tmp_path / "elsewhere"), *s3_args]) == 0
    assert [d["run_id"] for d in timeline.load(tmp_path / "elsewhere").runs] == ["a", "b"]


def test_a_manifest_that_fails_to_go_up_says_the_run_is_committed_locally(tmp_path, s3, s3_server, capsys, monkeypatch):
    """The conditional write of the manifest (or of the timeline position) failing after the local commit: exit 1
    saying how to finish, and S3 out of reach while the run stops is no traceback either (aborting the open
    multipart uploads is best effort; the bucket's lifecycle rule removes what is left)."""
    import botocore.exceptions

    from generator.uploader import Uploader, UploadError

    def refused(self, rel, body):
        raise UploadError(f"{self.target.url(rel)}: connection reset")

    def part_lost(self, path, rel, sha256_hex):
        raise UploadError(f"{self.target.url(rel)}: connection reset")

    def unreachable(self, run_id):
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.example")

    base = ["run", "--events", "2000", "--customers", "3000", "-q", "--run-id", "m", "--bucket", BUCKET]
    for case, (name, broken) in enumerate(
        [("put_manifest", refused), ("_upload_part", part_lost)]  # the second also aborts, with S3 gone
    ):
        out, prefix = tmp_path / f"o{case}", f"mf{case}"
        with monkeypatch.context() as m:
            m.setattr(Uploader, name, broken)
            m.setattr(Uploader, "open_uploads", unreachable)
            assert main([*base, "--out", str(out), "--prefix", prefix, "--endpoint-url", s3_server]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert "no manifest was written to S3. The run is committed locally" in err and "gen upload --run-id m" in err
        assert (out / relative_path("m")).is_file() and f"{prefix}/{relative_path('m')}" not in _keys(s3)
        assert (
            main(
                [
                    "upload",
                    "--run-id",
                    "m",
                    "--out",
                    str(out),
                    "--prefix",
                    prefix,
                    "--bucket",
                    BUCKET,
                    "--endpoint-url",
                    s3_server,
                ]
            )
            == 0
        )
        assert f"{prefix}/{relative_path('m')}" in _keys(s3)


def test_a_pull_or_upload_cut_short_says_how_to_finish(tmp_path, s3, s3_server, capsys, monkeypatch):
    """A disk that fills while `gen pull` writes (each file it writes is whole; pulling again finishes), and SIGTERM
    during `gen upload` (the run is still committed locally): one line each, saying what to run again."""
    from generator import coordinator
    from generator import timeline as timeline_module
    from generator.cli import Terminated

    s3_args = ["--bucket", BUCKET, "--prefix", "pl", "--endpoint-url", s3_server]
    base = ["run", "--events", "2000", "--customers", "3000", "--workers", "1", "-q", *s3_args]
    assert main([*base, "--out", str(tmp_path / "origin"), "--run-id", "a"]) == 0
    assert main([*base, "--out", str(tmp_path / "origin"), "--run-id", "b"]) == 0
    real, calls = timeline_module.write_atomic, []

    def fills_up(path, data, *rest):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data, *rest)

    fresh = tmp_path / "fresh"
    with monkeypatch.context() as m:
        m.setattr(timeline_module, "write_atomic", fills_up)
        assert main(["pull", "--out", str(fresh), *s3_args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device; run `gen pull` again to finish" in err, err
    assert main(["pull", "--out", str(fresh), *s3_args]) == 0
    assert [d["run_id"] for d in timeline.load(fresh).runs] == ["a", "b"]

    def terminated(*args, **kw):
        raise Terminated()

    monkeypatch.setattr(coordinator, "upload_committed", terminated)
    assert main(["upload", "--run-id", "b", "--out", str(tmp_path / "origin"), *s3_args]) == 143
    err = capsys.readouterr().err
    assert err == (
        f"gen: terminated; the run is committed locally: run gen upload --run-id b --out {tmp_path / 'origin'} "
        "again to finish\n"
    )


def test_a_run_never_goes_up_after_a_gap_even_through_the_api(tmp_path, s3, s3_server):
    """The CLI refuses a bucket run whose timeline has runs S3 lacks; the uploader checks it too, before taking a
    position: run b, continuing a local-only run a, commits locally but not in S3 (no manifest, no position), and
    goes up once a has, oldest first."""
    from generator.coordinator import UploadFailed

    run(small_config(tmp_path, events=2_000, customers=3_000, run_id="a"))
    b = small_config(tmp_path, events=2_000, run_id="b", seed=None, customers=None)
    with pytest.raises(UploadFailed, match=r"lacks run 'a', which this run continues; upload it first"):
        run(b, uploader=_uploader(s3_server, prefix="gap2"))
    assert not _keys(s3, "gap2/_manifests/") and not _keys(s3, "gap2/_timeline/")
    with pytest.raises(UploadError, match="lacks run 'a'"):
        upload_committed(tmp_path, "b", _uploader(s3_server, prefix="gap2"))
    upload_committed(tmp_path, "a", _uploader(s3_server, prefix="gap2"))
    upload_committed(tmp_path, "b", _uploader(s3_server, prefix="gap2"))
    assert {k.rsplit("/", 1)[-1] for k in _keys(s3, "gap2/_manifests/")} == {"a.json", "b.json"}
