"""The S3 sink: parts uploaded as their shards finish, checksummed, verified, and the manifest written last.

boto3's managed transfer does the work (TransferConfig: multipart above a threshold, several parts and objects
in flight, progress through subscribers; the CRT transfer client when awscrt is installed and boto3 judges it
faster). Every object carries an S3 SHA-256 additional checksum; what S3 reports back is compared with the one
computed locally before the run's manifest is written. After the manifest (the commit), the run's entries in the
committed-parts index go up (`committed/`, read by the Glue table `events_committed`). The bucket is append-only:
existing objects are never overwritten (checked first for parts, a conditional write for the manifest and the
index) and nothing is ever deleted.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import orjson
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.exceptions import CancelledError
from s3transfer.subscribers import BaseSubscriber

from generator.config import ConfigError
from generator.coordinator import RunError
from generator.launch import Gate
from generator.manifest import MANIFEST_DIR, committed_index

TIMELINE_DIR = "_timeline"  # one object per position of the timeline in S3, written once

MiB = 1024 * 1024
CHUNK = 8 * MiB  # multipart threshold and part size
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class UploadError(RunError):
    """An upload failed after its retries; the run stays committed locally and `gen upload` can finish it."""


class TimelineTaken(UploadError):
    """Another run took this run's place in the S3 timeline first (two machines continued the same run)."""

    def __init__(self, url: str, ordinal: int, holder: str, run_id: str):
        super().__init__(
            f"run {holder!r} already continued the timeline in {url} at position {ordinal}; run {run_id!r} is "
            "committed locally only and its manifest was not written to S3. To follow the S3 timeline, `gen pull` "
            "into a fresh --out"
        )


_NOT_A_URL = "not an http:// or https:// URL with a host (such as http://127.0.0.1:9000)"


@dataclass(frozen=True)
class S3Target:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        b = self.bucket
        bad = not _BUCKET.match(b) or ".." in b or ".-" in b or "-." in b or b.startswith("xn--")
        if not bad:
            try:
                ipaddress.ip_address(b)
                bad = True
            except ValueError:
                pass
        if bad:
            raise ConfigError(f"--bucket: not a valid S3 bucket name: {b!r}")
        if self.endpoint_url is not None:
            url = urlsplit(self.endpoint_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(f"--endpoint-url: {_NOT_A_URL}, got {self.endpoint_url!r}")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, rel: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(rel)}"


def s3_checksum(path: Path, chunk: int = CHUNK) -> str:
    """The SHA-256 checksum S3 stores for this file uploaded with our TransferConfig: of the whole object below
    the multipart threshold, else of the concatenated part digests followed by '-<parts>'."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < chunk:
            return base64.b64encode(hashlib.sha256(f.read()).digest()).decode()
        digests = []
        while block := f.read(chunk):
            digests.append(hashlib.sha256(block).digest())
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode() + f"-{len(digests)}"


def _document(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _same_checksum(stored: str | None, expected: str) -> bool:
    """S3 reports a multipart checksum with or without its '-<parts>' suffix depending on the server."""
    return stored is not None and stored.split("-")[0] == expected.split("-")[0]


class _Progress(BaseSubscriber):
    def __init__(self, uploader: Uploader):
        self.uploader = uploader

    def on_progress(self, future, bytes_transferred, **kwargs) -> None:
        self.uploader._add_bytes(bytes_transferred)


class Uploader:
    """Uploads a run's parts concurrently while shards are still generating, then its manifest."""

    def __init__(self, target: S3Target, concurrency: int = 8, chunk: int = CHUNK, part_attempts: int = 3):
        self.target = target
        self.chunk = chunk
        self.part_attempts = part_attempts
        try:
            session = boto3.session.Session(region_name=target.region)
        except botocore.exceptions.BotoCoreError as e:  # AWS_PROFILE naming no profile, say
            raise ConfigError(f"AWS credentials: {e}") from None

        def client(attempts: int):
            config = botocore.config.Config(
                retries={"mode": "adaptive", "max_attempts": attempts},
                max_pool_connections=concurrency * 4,
                connect_timeout=5,
                read_timeout=60,
                request_checksum_calculation="when_required",
                # Every object carries its SHA-256 checksum header, which S3 checks against the bytes and which
                # the request's signature covers; signing the body as well would hash every byte again. botocore
                # already skips that over HTTPS; this skips it over plain HTTP too (a local S3-compatible store).
                s3={"payload_signing_enabled": False},
            )
            try:
                return session.client("s3", endpoint_url=target.endpoint_url, config=config)
            except botocore.exceptions.InvalidRegionError:
                raise ConfigError(f"--region: not an AWS region name: {target.region!r}") from None
            except ValueError:  # botocore's "Invalid endpoint: ..." (a URL its own check lets pass)
                raise ConfigError(f"--endpoint-url: {_NOT_A_URL}, got {target.endpoint_url!r}") from None

        # Transfers ride out throttling and dropped connections; the up-front check answers fast.
        self.client = client(8)
        self.checker = client(2)
        config = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=concurrency)
        self.manager = create_transfer_manager(self.client, config)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="upload")
        self.lock = threading.Lock()
        self.futures: list[Future] = []
        self.bytes_sent = 0
        self.parts_done = 0
        self.in_flight = 0
        self.aborted = threading.Event()  # set by abort: no new transfer starts after it
        self.starting = threading.Lock()  # a transfer starts, or the uploads are aborted, never both at once

    # -- checks ---------------------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Fail fast, before generating anything: the bucket exists and answers, and credentials are there."""
        try:
            # A listing under our own prefix, not HeadBucket: a least-privilege role may list only its prefix.
            prefix = f"{self.target.prefix}/" if self.target.prefix else ""
            self.checker.list_objects_v2(Bucket=self.target.bucket, Prefix=prefix, MaxKeys=1)
        except botocore.exceptions.NoCredentialsError:
            raise ConfigError(
                "no AWS credentials found (environment, shared profile or instance role); they are never a flag"
            ) from None
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as e:
            where = self.target.endpoint_url or "the S3 endpoint"
            raise ConfigError(f"--endpoint-url: no answer from {where} ({type(e).__name__})") from None
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigError(f"--bucket: bucket {self.target.bucket!r} does not exist") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise ConfigError(f"--bucket: access denied to bucket {self.target.bucket!r}") from None
            raise ConfigError(f"--bucket: {self.target.bucket!r}: {code or e}") from None

    # -- parts ----------------------------------------------------------------------------------------------
    def submit(self, path: Path, rel: str, sha256_hex: str) -> Future:
        """Upload one part in the background; the future's result is (rel, checksum) once S3 holds it, verified.
        `sha256_hex` is the part's digest from its manifest entry."""
        with self.lock:
            self.in_flight += 1
        future = self.pool.submit(self._upload_part, path, rel, sha256_hex)
        self.futures.append(future)
        return future

    def _stored_checksum(self, key: str) -> str | None:
        """The SHA-256 checksum S3 holds for `key`, "" for an object stored without one, None for no object."""
        try:
            head = self.client.head_object(Bucket=self.target.bucket, Key=key, ChecksumMode="ENABLED")
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code"))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            # S3 answers a HEAD of a missing key with 403, not 404, to a caller without s3:ListBucket (HeadObject's
            # documentation); whether a grant limited by an s3:prefix condition (terraform/iam.tf's) counts is not
            # said. A listing under the key itself, which that grant allows, tells a missing object from a denied one.
            if code in ("403", "AccessDenied", "Forbidden") and not self._listed(key):
                return None
            raise
        return head.get("ChecksumSHA256", "")

    def _listed(self, key: str) -> bool:
        """Whether S3 lists an object named exactly `key` (the first key under it, if any, is itself)."""
        listing = self.client.list_objects_v2(Bucket=self.target.bucket, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in listing.get("Contents", []))

    def _upload_part(self, path: Path, rel: str, sha256_hex: str) -> tuple[str, str]:
        key = self.target.key(rel)
        try:
            single = path.stat().st_size < self.chunk
            # One PUT: S3 stores the whole object's SHA-256, which the manifest already has; we send it, and S3
            # refuses the object unless the bytes match. Multipart: the checksum of the part checksums.
            checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode() if single else s3_checksum(path, self.chunk)
            extra = {"ChecksumAlgorithm": "SHA256"} | ({"ChecksumSHA256": checksum} if single else {})
            stored = self._stored_checksum(key)
            if stored is not None:  # append-only: an object already there is kept, never replaced
                if not _same_checksum(stored, checksum):
                    raise UploadError(f"{self.target.url(rel)} already exists with other content; not overwritten")
                self._add_bytes(path.stat().st_size)
                return rel, checksum
            error: Exception | None = None
            for attempt in range(self.part_attempts):
                if attempt and _same_checksum(self._stored_checksum(key), checksum):
                    error = None  # the failed attempt had landed after all (its answer was lost): not again
                    break
                try:
                    with self.starting:
                        if self.aborted.is_set():  # the run stopped while this part waited for its turn
                            raise CancelledError(f"{self.target.url(rel)}: upload stopped")
                        transfer = self.manager.upload(
                            str(path), self.target.bucket, key, extra_args=extra, subscribers=[_Progress(self)]
                        )
                    transfer.result()
                    error = None
                    break
                except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
                    error = e
            if error is not None:
                raise UploadError(f"{self.target.url(rel)}: {error}")
            if not single and not _same_checksum(self._stored_checksum(key), checksum):
                raise UploadError(f"{self.target.url(rel)}: the checksum S3 stored differs from the part's")
            return rel, checksum
        finally:
            with self.lock:
                self.in_flight -= 1
                self.parts_done += 1

    def _add_bytes(self, n: int) -> None:
        with self.lock:
            self.bytes_sent += n

    def stats(self) -> tuple[int, int, int]:
        """(bytes sent, parts done, parts in flight)."""
        with self.lock:
            return self.bytes_sent, self.parts_done, self.in_flight

    def wait(self, progress=None) -> dict[str, str]:
        """Each part's S3 checksum by path, once all are uploaded and verified; the first failure otherwise.
        `progress(bytes, done, in_flight)` is called a few times a second meanwhile."""
        with Gate() as gate:  # Ctrl-C and SIGTERM act here, not inside the futures' locks (see `Gate`)
            gate.watch(self.futures)
            left = len(self.futures)
            while left:
                left -= gate.next_done(timeout=0.25) is not None
                if progress:
                    progress(*self.stats())
        checksums = {}
        for f in self.futures:
            try:
                rel, checksum = f.result()
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
                raise UploadError(str(e)) from None
            checksums[rel] = checksum
        return checksums

    def describe(self, checksums: dict[str, str]) -> dict:
        """The manifest's record of where the run went and what S3 stored for each part."""
        return {
            "bucket": self.target.bucket,
            "prefix": self.target.prefix,
            "checksum_algorithm": "SHA256",
            "multipart_chunk_bytes": self.chunk,
            "checksums": dict(sorted(checksums.items())),  # in path order, not the order the uploads finished
        }

    # -- the timeline in S3 ---------------------------------------------------------------------------------
    def remote_runs(self) -> set[str]:
        """Ids of the runs whose manifests S3 holds under the prefix (the runs committed there)."""
        prefix = self.target.key(f"{MANIFEST_DIR}/")
        ids = set()
        pages = self.checker.get_paginator("list_objects_v2").paginate(Bucket=self.target.bucket, Prefix=prefix)
        try:
            for page in pages:
                ids |= {
                    o["Key"][len(prefix) : -len(".json")]
                    for o in page.get("Contents", [])
                    if o["Key"].endswith(".json")
                }
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise UploadError(f"listing {self.target.url(MANIFEST_DIR)}/: {e}") from None
        return ids

    def fetch(self, rel: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.target.bucket, Key=self.target.key(rel))["Body"].read()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise UploadError(f"{self.target.url(rel)}: {e}") from None

    # -- the commit -----------------------------------------------------------------------------------------
    def _put_once(self, rel: str, body: bytes, content_type: str = "application/json") -> bytes | None:
        """Write an object only if none is at `rel` yet (a conditional write); None when written, else the bytes of
        the object already there."""
        try:
            self.client.put_object(
                Bucket=self.target.bucket,
                Key=self.target.key(rel),
                Body=body,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
            return None
        except botocore.exceptions.ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) not in ("PreconditionFailed", "412"):
                raise UploadError(f"{self.target.url(rel)}: {e}") from None
            return self.fetch(rel)
        except botocore.exceptions.BotoCoreError as e:
            raise UploadError(f"{self.target.url(rel)}: {e}") from None

    def claim(self, ordinal: int, run_id: str, previous: str | None = None) -> None:
        """Take position `ordinal` of the timeline in S3 for this run, with a conditional write of
        `_timeline/<ordinal>.json`, before its manifest goes up: of two machines that continue the same run at
        once, one wins and the other's run never becomes part of the S3 timeline. Taking it again for the same
        run (a retried upload) is fine. The run it continues (`previous`) must be committed there already: a run
        never goes up after a gap that no machine could pull."""
        try:
            missing = (
                previous is not None
                and self._stored_checksum(self.target.key(f"{MANIFEST_DIR}/{previous}.json")) is None
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            raise UploadError(f"{self.target.url(MANIFEST_DIR)}/{previous}.json: {e}") from None
        if missing:
            raise UploadError(
                f"{self.target.url()} lacks run {previous!r}, which this run continues; upload it first "
                f"(gen upload --run-id {previous})"
            )
        existing = self._put_once(
            f"{TIMELINE_DIR}/{ordinal:08d}.json", orjson.dumps({"ordinal": ordinal, "run_id": run_id}) + b"\n"
        )
        holder = None if existing is None else orjson.loads(existing).get("run_id")
        if existing is not None and holder != run_id:
            raise TimelineTaken(self.target.url(), ordinal, str(holder), run_id)

    def put_manifest(self, rel: str, body: bytes) -> None:
        """Write the manifest object, only if it does not exist yet (a conditional write)."""
        existing = self._put_once(rel, body)
        # The same manifest there means the run was committed before (the same document: a manifest of an older
        # version may list its checksums in another order)
        if existing is not None and existing != body and _document(existing) != _document(body):
            raise UploadError(f"{self.target.url(rel)} already exists with other content; not overwritten")

    def put_index(self, doc: dict) -> int:
        """After the commit: a committed run's entries in the committed-parts index (`manifest.committed_index`),
        each written once; an entry already there with the same lines is fine (a retry). Returns how many."""
        entries = committed_index(doc, self.target.url)
        for rel, body in entries.items():
            existing = self._put_once(rel, body, "text/plain")
            if existing is not None and existing != body:
                raise UploadError(f"{self.target.url(rel)} already exists with other content; not overwritten")
        return len(entries)

    def open_uploads(self, run_id: str) -> list[dict]:
        """Multipart uploads still open under the prefix for this run's objects."""
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        # The prefix with its slash, as a role that may list only under "<prefix>/" must ask (terraform/iam.tf)
        prefix = f"{self.target.prefix}/" if self.target.prefix else ""
        for page in paginator.paginate(Bucket=self.target.bucket, Prefix=prefix):
            found += [u for u in page.get("Uploads", []) if run_id in u["Key"]]
        return found

    def abort(self, run_id: str) -> None:
        """Stop: cancel transfers in flight and abort any multipart upload of this run left open."""
        with self.starting:
            self.aborted.set()
        try:
            # s3transfer 0.19's TransferManager.shutdown hands its cancel_msg on as the exception type to raise in
            # the cancelled transfers: give it one (the CRT manager's shutdown takes no message).
            self.manager.shutdown(cancel=True, cancel_msg=CancelledError)
        except TypeError:
            self.manager.shutdown(cancel=True)
        self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            for u in self.open_uploads(run_id):
                self.client.abort_multipart_upload(Bucket=self.target.bucket, Key=u["Key"], UploadId=u["UploadId"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            pass  # best effort (S3 out of reach, say): the bucket's lifecycle rule aborts what is left after a day

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.manager.shutdown()
