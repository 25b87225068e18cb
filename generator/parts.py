"""Parquet parts: where a shard's rows go (Hive-style partitions), how they are encoded, and the atomic write.

Runs in the workers, in two steps per shard. `simulate_part` simulates the shard and spills the simulation to
the run's staging directory (raw numpy arrays, read back at memory speed), returning the times the coordinator
needs to place the run's end. `make_part` reads the spill back, cuts it at that end, cuts the rows at partition
boundaries (rows are sorted by event_ts, so each partition is one slice), injects the scenario's data faults if
any (`core.faults`), encodes each slice in memory, hashes it and writes it under a hidden temporary name, then
renames it. Workers return small records (and the events they carry into the next run, and the faults they
injected); they never touch the terminal. One worker in the coordinator's own process hands the encoding, writing
and hashing to a second thread while it generates the next shard (`WriteBehind`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import resource
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from generator import __version__
from generator.core.events import DAY, HOUR
from generator.core.faults import fault_rng, inject
from generator.core.nigeria import default_pools, reference_digest
from generator.core.population import IDENTITY_SCHEME, adopt_reissues, email_reissues
from generator.core.shard import (
    Cut,
    GenConfig,
    Pending,
    Shard,
    Sim,
    build_rows,
    cut,
    cut_before,
    simulate_shard,
    time_sample,
)
from generator.schema import COLUMNS, EVENT_TYPES, arrow_schema

EVENTS_DIR = "events"
SIM_DIR = "_sim"
ROW_GROUP_SIZE = 128 * 1024
# Writer settings, derived from the schema. Measured on one core (perf/bench_core.py): dictionary encoding
# for the string columns only, statistics only where they let readers skip data, and delta encoding for the
# sorted event_ts encode 40% faster and 18% smaller than pyarrow's defaults with zstd. zstd at its default
# level is what Athena, Spark and DuckDB all read. Random UUIDs do not compress: event_id is stored plain, the
# same bytes with 4% less encoding time. Delta-packed event_ts gains nothing from zstd either (2.87 MB per
# million events both ways, 35% less time without), and latency_ms delta-packed and zstd-compressed takes 9%
# less space and 40% less time than plain and zstd (one million events, each column alone). One row group per
# part up to 128 Ki rows.
_DELTA = ("event_ts", "latency_ms")
_UNCOMPRESSED = ("event_id", "event_ts")
WRITE_OPTIONS = dict(
    compression={c.name: "none" if c.name in _UNCOMPRESSED else "zstd" for c in COLUMNS},
    use_dictionary=[c.name for c in COLUMNS if pa.types.is_string(c.type)],
    write_statistics=[c.name for c in COLUMNS if c.statistics],
    column_encoding=dict.fromkeys(_DELTA, "DELTA_BINARY_PACKED"),
    row_group_size=ROW_GROUP_SIZE,
    # The dense string columns arrive as Arrow dictionaries (schema.encoded_schema); `encode` stores the event
    # schema itself in their place, so readers get plain strings.
    store_schema=False,
)


@dataclass(frozen=True)
class PartInfo:
    path: str  # relative to the run's output root, '/'-separated
    shard: int
    rows: int
    bytes: int
    sha256: str
    min_event_ts: int  # microseconds since the epoch
    max_event_ts: int


@dataclass(frozen=True)
class ShardResult:
    shard: int
    pid: int
    rows: int
    bytes: int
    parts: tuple[PartInfo, ...]
    counts: tuple[int, ...]  # events per type, in EVENT_TYPES order
    seconds: float
    peak_rss_kib: int  # the worker process's peak resident memory so far
    carried: dict[str, np.ndarray] | None = None  # Pending.columns() of the events left for the next run
    new_orders: int = 0  # orders this run placed in the shard
    # Data faults injected: event_id (n x 16 bytes), kind (FAULT_KINDS code), column (PII_COLUMNS code or -1),
    # part (index into `parts`); None when the scenario injects none.
    faults: dict[str, np.ndarray] | None = None
    piece: int = 0  # 0: written while simulating (events before the early instant); 1: the rest; 2: written again
    final: bool = True  # the shard's last piece of the run


@dataclass(frozen=True)
class SimResult:
    shard: int
    pid: int
    until: int  # every event before this instant is simulated
    final: int  # how many events fall before `until`
    sample: np.ndarray  # every SAMPLE_EVERY-th of the final times (shard.time_sample)
    before_end: int  # for a run sized by time: how many of its events fall before the end
    seconds: float
    early: ShardResult | Future | None = None  # the parts written while simulating (a future: `WriteBehind`)


@dataclass(frozen=True)
class CutAt:
    """Where a run ends, for one shard: events before `last_ts`, `take` of those at it; new orders' serials
    from `first_serial`. `again` (pending events, grid stop): the early parts were void (the run ended before
    their instant), so simulate the shard again and write all its events as piece 2."""

    last_ts: int
    take: int
    first_serial: int
    again: tuple[dict[str, np.ndarray] | None, int] | None = None


def partition_dir(ts_us: int, partition_by: str) -> str:
    """The Hive-style directory of an event time: dt=YYYY-MM-DD[/hour=HH], or '' when unpartitioned."""
    if partition_by == "none":
        return ""
    day = np.datetime64(ts_us // DAY, "D")
    if partition_by == "date":
        return f"dt={day}"
    return f"dt={day}/hour={(ts_us % DAY) // HOUR:02d}"


def part_name(run_id: str, shard: int, piece: int = 0) -> str:
    """A part's file name: shard, piece (a shard writes at most two per partition and run) and run."""
    return f"part-{shard:05d}-{piece}-{run_id}.parquet"


def _slices(ts: np.ndarray, partition_by: str) -> list[tuple[int, int]]:
    """Row ranges of the partitions a shard's sorted rows fall in (none for a shard with no events in the run)."""
    if ts.size == 0:
        return []
    if partition_by == "none":
        return [(0, ts.size)]
    key = ts // (DAY if partition_by == "date" else HOUR)
    cuts = np.flatnonzero(np.diff(key)) + 1
    bounds = [0, *cuts.tolist(), ts.size]
    return list(itertools.pairwise(bounds))


def encode(table: pa.Table) -> pa.Buffer:
    """One part's bytes. The core's dictionary-typed columns are written as Parquet strings, and the footer
    carries the event schema (schema.arrow_schema) as the Arrow schema, so every reader, pyarrow's dataset API
    included, sees plain strings and the UUID type."""
    sink = pa.BufferOutputStream()
    options = {k: v for k, v in WRITE_OPTIONS.items() if k != "row_group_size"}
    with pq.ParquetWriter(sink, table.schema, **options) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        writer.add_key_value_metadata({"ARROW:schema": _READER_SCHEMA})
    return sink.getvalue()


_READER_SCHEMA = base64.b64encode(arrow_schema().serialize().to_pybytes())


def write_atomic(path: Path, data: pa.Buffer | bytes, durable: bool = True) -> None:
    """Write under a hidden temporary name in the same directory, then rename: never a half-written file.

    `durable` also fsyncs the file before the rename and the directory after it. Workers skip that for parts
    (the coordinator syncs them in the background while other shards generate, before it commits)."""
    make_dirs(path.parent, durable)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(memoryview(data))
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk that filled up, say: no temporary file left behind
        raise
    if durable:
        sync_dir(path.parent)


def make_dirs(path: Path, durable: bool = True) -> None:
    """`mkdir -p`; `durable` also fsyncs the parent of each directory it creates, so a file later made durable
    in one of them cannot lose its directory in a power cut."""
    missing = []
    p = path
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    if durable:
        for d in reversed(missing):
            sync_dir(d.parent)


def sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: Path) -> None:
    sync_file(path)


def spill_path(root: str | Path, shard: int) -> Path:
    return Path(root) / SIM_DIR / f"shard-{shard:05d}.npy"


def final_ts_path(root: str | Path, shard: int) -> Path:
    """The spilled event times, sorted, as raw little-endian int64: the first `SimResult.final` of them are the
    shard's final times (the coordinator reads a few of them by offset)."""
    return Path(root) / SIM_DIR / f"shard-{shard:05d}.ts"


def read_final_ts(root: str | Path, shard: int, i: int, j: int) -> np.ndarray:
    """Final times i..j-1 of a spilled shard."""
    return np.fromfile(final_ts_path(root, shard), dtype="<i8", count=j - i, offset=8 * i)


_SPILL_ORDER = (  # ev_ts goes to its own file, where the coordinator reads the final times from
    *(f"ev_{f}" for f in ("type", "customer", "platform", "amount", "method", "order", "origin")),
    "carrier",
    "serial",
    "order_origin",
    "until",
)


def simulate_part(
    gen: GenConfig,
    shard: Shard,
    root: str,
    pending: dict[str, np.ndarray] | None,
    stop: int,
    run_id: str = "",
    partition_by: str = "date",
    first_serial: int = 0,
    write_before: int | None = None,
    skip_before: int | None = None,
) -> SimResult:
    """Step 1 of a shard: simulate it up to grid point `stop`; write its events before `write_before` at once
    (piece 0: they are before the run's end whatever it turns out to be), or leave out those before
    `skip_before` (a later round: written already); spill the rest under `root`, with every event time, for
    step 2."""
    t0 = time.perf_counter()
    sim = simulate_shard(gen, shard, Pending.from_columns(pending) if pending else None, stop)
    final = sim.final_ts()
    sample = time_sample(final)
    before_end = int(np.searchsorted(final, gen.end_us)) if gen.end_us is not None else 0
    path = spill_path(root, shard.index)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(final_ts_path(root, shard.index), "wb") as f:  # a full disk says so (numpy's tofile gives no errno)
        f.write(memoryview(np.ascontiguousarray(sim.events.ts, "<i8")))
    written = None
    if write_before is not None:
        c, sim = cut_before(sim, write_before, first_serial)
        written = _write(gen, shard, root, run_id, partition_by, c, t0, piece=0, final=False)
    elif skip_before is not None:
        _, sim = cut_before(sim, skip_before, first_serial)
    arrays = sim.arrays()
    with open(path, "wb") as f:
        for name in _SPILL_ORDER:
            np.save(f, arrays[name], allow_pickle=False)
    seconds = time.perf_counter() - t0
    return SimResult(shard.index, os.getpid(), sim.until, final.size, sample, before_end, seconds, written)


def _load_spill(root: str, shard: int) -> Sim:
    path = spill_path(root, shard)
    with open(path, "rb") as f:
        arrays = {name: np.load(f, allow_pickle=False) for name in _SPILL_ORDER}
    every_ts = np.fromfile(final_ts_path(root, shard), dtype="<i8")
    arrays["ev_ts"] = every_ts[every_ts.size - arrays["ev_type"].size :]  # after those written early
    return Sim.from_arrays(arrays)


def make_part(
    gen: GenConfig, shard: Shard, root: str, run_id: str, partition_by: str, at: CutAt | None = None
) -> ShardResult:
    """Step 2 of a shard: cut its simulation at the run's end and write its part files under `root` (the run's
    staging directory). Without `at` (one shard on its own), it first simulates and takes its own events."""
    t0 = time.perf_counter()
    piece = 1
    if at is None:
        from generator.core.shard import shard_cut

        c, piece = shard_cut(gen, shard), 0
    elif at.again is not None:
        pending, stop = at.again
        sim = simulate_shard(gen, shard, Pending.from_columns(pending) if pending else None, stop)
        c, piece = cut(sim, at.last_ts, at.take, at.first_serial), 2
    else:
        c = cut(_load_spill(root, shard.index), at.last_ts, at.take, at.first_serial)
    spill_path(root, shard.index).unlink(missing_ok=True)
    final_ts_path(root, shard.index).unlink(missing_ok=True)
    return _write(gen, shard, root, run_id, partition_by, c, t0, piece=piece)


def simulate_and_write(
    gen: GenConfig,
    shard: Shard,
    root: str,
    run_id: str,
    partition_by: str,
    pending: dict[str, np.ndarray] | None,
    first_serial: int,
) -> ShardResult:
    """Both steps at once, for a run sized by time: its end is known before any shard simulates, so a shard is
    simulated, cut at the end and written without a spill or a wait for the others."""
    t0 = time.perf_counter()
    sim = simulate_shard(gen, shard, Pending.from_columns(pending) if pending else None)
    c = cut(sim, gen.end_us - 1, len(sim.events), first_serial)
    return _write(gen, shard, root, run_id, partition_by, c, t0)


REISSUES_FILE = "reissues.npy"  # in a run's staging: the population's e-mail reissues, worked out by the coordinator
CACHE_DIR = "_cache"  # under the output root: what later runs here need not work out again


def save_reissues(root: Path, gen: GenConfig) -> None:
    """Work out the population's e-mail reissues once, for all the run's workers (see `_adopt_reissues`)."""
    idx, digits = email_reissues(gen.seed, gen.customers, default_pools())
    np.save(root / REISSUES_FILE, np.stack([idx, digits]), allow_pickle=False)


def cached_reissues(out: Path, gen: GenConfig, threads: int = 1) -> bool:
    """Take the population's e-mail reissues from `<out>/_cache/`, where an earlier run here kept them (a timeline
    run by the hour need not work them out every hour: 0.3 s for a million customers, 5.7 s for ten million), or
    work them out and keep them there. The file is named by everything they depend on (the generator's version,
    the identity scheme, the reference data, the seed and the population) and by the sha256 of its contents, which
    is checked on reading: a file that does not match is ignored. Writing it is best effort (a temporary name,
    then a rename); a run never fails for it. Working them out hashes on up to `threads` threads. Returns whether
    they came from the cache."""
    pools = default_pools()
    key = f"{__version__}/{IDENTITY_SCHEME}/{reference_digest()}/{gen.seed}/{gen.customers}"
    stem = f"email-reissues-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    folder = Path(out) / CACHE_DIR
    for path in sorted(folder.glob(f"{stem}-*.npy")) if folder.is_dir() else []:
        try:
            data = path.read_bytes()
            if path.stem.rsplit("-", 1)[1] != hashlib.sha256(data).hexdigest()[:32]:
                continue
            kept = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError):
            continue
        if kept.ndim == 2 and kept.shape[0] == 2 and kept.dtype == np.int64:
            adopt_reissues(gen.seed, gen.customers, pools, kept[0], kept[1])
            return True
    idx, digits = email_reissues(gen.seed, gen.customers, pools, threads)
    buffer = io.BytesIO()
    np.save(buffer, np.stack([idx, digits]), allow_pickle=False)
    data = buffer.getvalue()
    try:
        folder.mkdir(exist_ok=True)
        write_atomic(folder / f"{stem}-{hashlib.sha256(data).hexdigest()[:32]}.npy", data, durable=False)
    except OSError:
        pass
    return False


_reissues_ready = None  # in a pool's worker: set once the coordinator has written the run's REISSUES_FILE


def set_reissues_event(ready) -> None:
    """In a worker: the multiprocessing Event to wait for before reading the run's e-mail reissues, which the
    coordinator works out while the workers simulate (`coordinator._Workers.share_reissues`)."""
    global _reissues_ready
    _reissues_ready = ready


def _adopt_reissues(root: str, gen: GenConfig) -> None:
    path = Path(root) / REISSUES_FILE
    if _reissues_ready is not None:
        _reissues_ready.wait()
        if not path.is_file():  # the coordinator could not write them: it stops the run with its own error
            raise RuntimeError(f"no e-mail reissues at {path}")
    if path.is_file():
        idx, digits = np.load(path, allow_pickle=False)
        adopt_reissues(gen.seed, gen.customers, default_pools(), idx, digits)


class WriteBehind:
    """Part files encoded, written and hashed on one background thread while this process goes on with the next
    shard: for one worker in the coordinator's own process, where the machine's other core would otherwise idle
    (pyarrow's encoder, file writes and hashing release the interpreter lock; generation mostly holds it).

    While one is open, the step functions return a future of their ShardResult (SimResult.early likewise) and
    the caller settles it. Worker processes never open one: a pool already keeps every core busy."""

    _open: WriteBehind | None = None

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        WriteBehind._open = self

    def submit(self, fn, *args) -> Future:
        return self._thread.submit(fn, *args)

    def close(self, cancel: bool = False) -> None:
        """Wait for the part being written (and, unless `cancel`, those queued), and stop the thread."""
        if WriteBehind._open is self:
            WriteBehind._open = None
        self._thread.shutdown(wait=True, cancel_futures=cancel)


def _write(
    gen: GenConfig,
    shard: Shard,
    root: str,
    run_id: str,
    partition_by: str,
    c: Cut,
    t0: float,
    piece: int = 0,
    final: bool = True,
) -> ShardResult | Future:
    """Build the shard's rows from its cut, inject the scenario's data faults, and write one part per partition
    (named and drawn as the shard's `piece`-th batch of the run); behind, when a `WriteBehind` is open."""
    _adopt_reissues(root, gen)  # here, before any thread: identities need the population's reissues
    args = (gen, shard, root, run_id, partition_by, c, t0, piece, final)
    behind = WriteBehind._open
    return behind.submit(_build_and_emit, *args) if behind is not None else _build_and_emit(*args)


def _build_and_emit(
    gen: GenConfig, shard: Shard, root: str, run_id: str, partition_by: str, c: Cut, t0: float, piece: int, final: bool
) -> ShardResult:
    """`_write`'s work: the rows (a pure function of the cut, with their own random streams, so the same on any
    thread), the faults, then each partition's part."""
    rows = build_rows(gen, shard, c, piece=piece)
    slices = _slices(rows.ts, partition_by)
    dirs = [partition_dir(int(rows.ts[lo]), partition_by) for lo, _ in slices]
    faulty = None
    if gen.behaviour.faults.any() and len(rows):
        faulty = inject(rows, slices, gen.behaviour.faults, fault_rng(gen.seed, gen.start_us, shard.index, piece))
        rows, slices = faulty.rows, faulty.bounds
    return _emit(shard, root, run_id, c, t0, piece, final, rows, slices, dirs, faulty)


def _emit(shard, root, run_id, c, t0, piece, final, rows, slices, dirs, faulty) -> ShardResult:
    """`_write`'s second half: encode, write and hash each partition's slice of the rows."""
    ts = rows.ts
    counts = np.bincount(rows.fixed["event_type"].indices.to_numpy(), minlength=len(EVENT_TYPES))
    parts = []
    part_of_row = np.zeros(len(rows), np.int32)
    for (lo, hi), where in zip(slices, dirs, strict=True):
        if hi == lo:  # every event of this partition arrived late, in the next one
            continue
        rel = "/".join(p for p in (EVENTS_DIR, where, part_name(run_id, shard.index, piece)) if p)
        data = encode(rows.table(lo, hi))
        write_atomic(Path(root) / rel, data, durable=False)
        part_of_row[lo:hi] = len(parts)
        span = ts[lo:hi]
        parts.append(
            PartInfo(
                rel, shard.index, hi - lo, data.size, hashlib.sha256(data).hexdigest(), int(span.min()), int(span.max())
            )
        )
    injected = None
    if faulty is not None:
        ids = rows.fixed["event_id"].storage.take(pa.array(faulty.at))
        injected = {
            "event_id": np.frombuffer(ids.buffers()[1], np.uint8, 16 * len(ids), ids.offset * 16)
            .reshape(-1, 16)
            .copy(),
            "kind": faulty.kind,
            "column": faulty.column,
            "part": part_of_row[faulty.at],
        }
    return ShardResult(
        shard=shard.index,
        pid=os.getpid(),
        rows=len(rows),
        bytes=sum(p.bytes for p in parts),
        parts=tuple(parts),
        counts=tuple(int(c) for c in counts),
        seconds=time.perf_counter() - t0,
        peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        carried=c.carried.columns(),
        new_orders=c.new_orders,
        piece=piece,
        final=final,
        faults=injected,
    )


def read_part(path: Path) -> pa.Table:
    """Read a part back as readers see it (plain strings, UUID, timestamp with time zone, decimal)."""
    return pq.read_table(path)
