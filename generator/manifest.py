"""The run manifest: the commit record of a run, written last, atomically, as JSON under `<out>/_manifests/`.

A run exists for readers exactly when its manifest does; it lists every part with its size, checksum, row count
and time range, and records the options and schema that produced them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from generator import __version__
from generator.core.population import IDENTITY_SCHEME
from generator.parts import ShardResult, write_atomic
from generator.schema import EVENT_TYPES, describe

MANIFEST_DIR = "_manifests"
COMMITTED_DIR = "committed"  # in S3: the committed-parts index that the Glue table `events_committed` reads
FORMAT = "temu-ng-events/2"  # /2: runs form a timeline (window end, state)


class ManifestError(ValueError):
    """A manifest is missing, unreadable or not ours."""


def manifest_path(out: Path, run_id: str) -> Path:
    return out / MANIFEST_DIR / f"{run_id}.json"


def iso(ts_us: int) -> str:
    """An instant in microseconds as ISO 8601 UTC with microseconds (exact: no float on the way)."""
    return datetime.fromtimestamp(ts_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_us % 1_000_000:06d}Z"


def parse_iso(text: str) -> int:
    """Back from `iso` (or any ISO 8601 instant) to microseconds since the epoch."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def build(
    run_id: str,
    options: dict,
    results: list[ShardResult],
    seconds: float,
    s3: dict | None = None,
    window: tuple[int, int] = (0, 0),
    timeline: dict | None = None,
    scenario: dict | None = None,
    faults: dict | None = None,
) -> dict:
    """The manifest of a run covering `window` = [start, end) in microseconds; `timeline` says where the run
    sits in its directory's timeline and where its state is; `scenario` is the effective scenario it simulated;
    `faults` lists the ground truth of the data faults injected (only when the scenario injects any)."""
    results = sorted(results, key=lambda r: (r.shard, r.piece))
    parts = [p for r in results for p in r.parts]
    counts = [sum(r.counts[i] for r in results) for i in range(len(EVENT_TYPES))]
    lo = min((p.min_event_ts for p in parts), default=0)
    hi = max((p.max_event_ts for p in parts), default=0)
    return {
        "format": FORMAT,
        "run_id": run_id,
        "generator_version": __version__,
        "identity_scheme": IDENTITY_SCHEME,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": options["seed"],
        "options": options,
        "schema": describe(),
        "events": sum(r.rows for r in results),
        "bytes": sum(r.bytes for r in results),
        "shards": len({r.shard for r in results}),
        "seconds": round(seconds, 3),
        "window": {
            "start": iso(window[0]),
            "end": iso(window[1]),
            "first_event_ts": iso(lo) if parts else None,  # a run may hold no event (a quiet second)
            "last_event_ts": iso(hi) if parts else None,
        },
        "timeline": timeline or {},
        "scenario": orjson.loads(orjson.dumps(scenario or {})),  # as JSON holds it (instants as ISO text)
        "counts_by_type": dict(zip(EVENT_TYPES, counts, strict=True)),
        **({"s3": s3} if s3 else {}),
        **({"faults": faults} if faults else {}),
        "parts": [
            {
                "path": p.path,
                "shard": p.shard,
                "rows": p.rows,
                "bytes": p.bytes,
                "sha256": p.sha256,
                "min_event_ts": iso(p.min_event_ts),
                "max_event_ts": iso(p.max_event_ts),
            }
            for p in parts
        ],
    }


def dumps(manifest: dict) -> bytes:
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"


def relative_path(run_id: str) -> str:
    """Where a run's manifest sits relative to the output root (and to the S3 prefix)."""
    return f"{MANIFEST_DIR}/{run_id}.json"


def write(out: Path, manifest: dict, body: bytes | None = None) -> Path:
    """Writes the manifest (`body`: its bytes, already serialised by the caller) under its temporary name, then
    renames it into place: the commit."""
    path = manifest_path(out, manifest["run_id"])
    write_atomic(path, dumps(manifest) if body is None else body)
    return path


def read(path: Path) -> dict:
    try:
        body = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    return parse(body, str(path))


def parse(body: bytes, where: str) -> dict:
    """A manifest from its bytes; `where` names it in errors."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ManifestError(f"{where}: unreadable manifest ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = f"format {data['format']!r}" if isinstance(data, dict) and "format" in data else "no format field"
        raise ManifestError(f"{where}: not a manifest of this generator (expected format {FORMAT!r}, got {got})")
    return data


def committed_index(doc: dict, url: Callable[[str], str]) -> dict[str, bytes]:
    """A committed run's entries in the committed-parts index: for each date partition holding its parts, the
    object `committed/dt=YYYY-MM-DD/<run_id>.txt` listing their URLs (`url` of each part's path), one a line. This
    is Hive's SymlinkTextInputFormat, the way Delta Lake shows engines such as Athena and Presto only the files a
    commit holds: a table over `committed/` reads the parts the manifests list and nothing else under `events/`
    (the parts of a run still uploading, or of one that failed before its manifest). Unpartitioned parts
    (--partition-by none) belong to no date and have no entry; hourly ones are listed under their date."""
    days: dict[str, list[str]] = {}
    for part in doc["parts"]:
        day = next((d for d in part["path"].split("/") if d.startswith("dt=")), None)
        if day is not None:
            days.setdefault(day, []).append(url(part["path"]))
    return {
        f"{COMMITTED_DIR}/{day}/{doc['run_id']}.txt": "".join(f"{u}\n" for u in urls).encode()
        for day, urls in sorted(days.items())
    }


def committed(out: Path) -> list[Path]:
    """Manifests of the committed runs under `out`, oldest name first."""
    d = out / MANIFEST_DIR
    return sorted(p for p in d.glob("*.json") if not p.name.startswith(".")) if d.is_dir() else []
