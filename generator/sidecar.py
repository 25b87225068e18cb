"""The ground truth of a run's data faults: a Parquet file under `_faults/` listing every fault injected (the event,
the kind, the part it landed in, the value altered), written into staging with the parts, committed with them and
listed in the manifest, so an ETL test can check that its pipeline caught exactly these.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from generator.core.faults import FAULT_KINDS, PII_COLUMNS
from generator.parts import ShardResult, write_atomic

FAULTS_DIR = "_faults"
SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.uuid(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # one of FAULT_KINDS
        pa.field("path", pa.string(), nullable=False),  # the part it is in, relative to the output root
        pa.field("column", pa.string(), nullable=True),  # the value altered (missing_pii, malformed_contact)
    ]
)


def sidecar_path(run_id: str) -> str:
    """Where a run's fault list sits, relative to the output root."""
    return f"{FAULTS_DIR}/{run_id}.parquet"


def table(results: list[ShardResult]) -> pa.Table:
    """The faults of a run's shards (in shard order, then by row), as the sidecar's rows."""
    ids, kinds, paths, columns = [], [], [], []
    for r in sorted(results, key=lambda r: (r.shard, r.piece)):
        f = r.faults
        if f is None or not f["kind"].size:
            continue
        ids.append(f["event_id"])
        kinds.append(np.array(FAULT_KINDS, object)[f["kind"]])
        paths.append(np.array([p.path for p in r.parts], object)[f["part"]])
        columns.append(np.array([*PII_COLUMNS, None], object)[f["column"]])
    if not ids:
        return SCHEMA.empty_table()
    words = np.concatenate(ids)
    storage = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(words), [None, pa.py_buffer(words.tobytes())])
    return pa.Table.from_arrays(
        [
            pa.ExtensionArray.from_storage(pa.uuid(), storage),
            pa.array(np.concatenate(kinds), pa.string()),
            pa.array(np.concatenate(paths), pa.string()),
            pa.array(np.concatenate(columns), pa.string()),
        ],
        schema=SCHEMA,
    )


def write(root: Path, run_id: str, results: list[ShardResult], rates: np.ndarray) -> dict:
    """Write the run's sidecar under `root` (the run's staging directory); its manifest entry."""
    t = table(results)
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    rel = sidecar_path(run_id)
    write_atomic(root / rel, data)
    kinds = t.column("kind").to_pylist()
    return {
        "path": rel,
        "rows": t.num_rows,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rates": {k: float(v) for k, v in zip(FAULT_KINDS, rates, strict=True)},
        "counts": {k: kinds.count(k) for k in FAULT_KINDS},
    }


def read(path: Path) -> pa.Table:
    return pq.read_table(path, schema=SCHEMA)
