"""Data faults for ETL testing, injected into a shard's rows before they are encoded: duplicate deliveries, late
arrivals, out-of-order rows, missing and malformed personal data; each fault injected is returned as ground truth.

Pure and vectorised. One uniform per event, from the stream keyed by (seed, "faults", window start, shard), picks
at most one fault by the rates (so a shard's faults do not depend on how the run was split among workers):
- duplicate: the event is written twice, the copy right after the original (an at-least-once producer's retry);
- late_arrival: the event is written into the shard's next partition of the run, ahead of that partition's own
  rows (events in the shard's last partition of the run have no later one and stay on time);
- out_of_order: the row is swapped with the next row of its part, when that row is later and has no fault itself;
- missing_pii: one of name, phone_number, address, email is "" (the columns are required: never null);
- malformed_contact: the phone number or e-mail is written the way real forms let it through.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.streams import rng

if TYPE_CHECKING:  # shard.py imports the behaviour, which imports FAULT_KINDS from here
    from generator.core.shard import ShardRows

FAULT_KINDS: tuple[str, ...] = ("duplicate", "late_arrival", "out_of_order", "missing_pii", "malformed_contact")
DUPLICATE, LATE_ARRIVAL, OUT_OF_ORDER, MISSING_PII, MALFORMED_CONTACT = range(len(FAULT_KINDS))
_NONE = len(FAULT_KINDS)
# The columns a fault may alter: missing_pii empties one of them, malformed_contact garbles a phone or an e-mail.
PII_COLUMNS: tuple[str, ...] = ("name", "phone_number", "address", "email")
_PHONE, _EMAIL = PII_COLUMNS.index("phone_number"), PII_COLUMNS.index("email")


@dataclass(frozen=True, eq=False)
class Faulty:
    """A shard's rows with faults in place, and the faults."""

    rows: ShardRows  # the rows as written, one part after another
    bounds: list[tuple[int, int]]  # each partition slice's [lo, hi) in `rows`, as given (empty when all came late)
    at: np.ndarray  # per fault: the position of its row in `rows` (for a duplicate, of the copy)
    kind: np.ndarray  # per fault: code into FAULT_KINDS
    column: np.ndarray  # per fault: code into PII_COLUMNS of the value altered, -1 when none was


def fault_rng(seed: int, start_us: int, shard: int, piece: int = 0) -> np.random.Generator:
    """The faults' random stream for one shard (and piece of it) of the run starting at `start_us`."""
    return rng(seed, "faults", start_us & 0xFFFF_FFFF_FFFF_FFFF, shard, *((piece,) if piece else ()))


def inject(rows: ShardRows, bounds: list[tuple[int, int]], rates: np.ndarray, r: np.random.Generator) -> Faulty:
    """`rows` (sorted by event_ts, cut into partition slices `bounds`) with faults drawn at `rates` (per event, in
    FAULT_KINDS order, summing to at most 1)."""
    n, slices = len(rows), len(bounds)
    sid = np.repeat(np.arange(slices), [hi - lo for lo, hi in bounds])
    kind = np.searchsorted(np.cumsum(rates), r.random(n), side="right").astype(np.int8)
    kind[(kind == LATE_ARRIVAL) & (sid == slices - 1)] = _NONE  # nothing later to arrive in
    late = kind == LATE_ARRIVAL
    part = sid + late
    # Duplicates: the copy follows its original. Then each part: the late rows (from the slice before, so earlier
    # than all of its own), then its own; every part stays sorted by event_ts.
    idx = np.repeat(np.arange(n), np.where(kind == DUPLICATE, 2, 1))
    copy = np.r_[False, idx[1:] == idx[:-1]]
    order = np.lexsort((np.arange(idx.size), ~late[idx], part[idx]))
    idx, copy = idx[order], copy[order]
    ends = np.cumsum(np.bincount(part[idx], minlength=slices))
    new_bounds = list(zip((ends - np.bincount(part[idx], minlength=slices)).tolist(), ends.tolist(), strict=True))

    # Out of order: swap with the next row of the same part when that row is strictly later and fault-free, so
    # each swap makes exactly one descent, at the moved row.
    k, ts, at_part = kind[idx], rows.ts[idx], part[idx]
    i = np.flatnonzero(k[:-1] == OUT_OF_ORDER)
    ok = (at_part[i] == at_part[i + 1]) & (k[i + 1] == _NONE) & (ts[i] < ts[i + 1])
    k[i[~ok]] = _NONE
    i = i[ok]
    idx[i], idx[i + 1] = idx[i + 1], idx[i]
    k[i], k[i + 1] = _NONE, OUT_OF_ORDER

    out = _take(rows, idx)
    missing = np.flatnonzero(k == MISSING_PII)
    malformed = np.flatnonzero(k == MALFORMED_CONTACT)
    missing_col = r.integers(0, len(PII_COLUMNS), missing.size).astype(np.int8)
    malformed_col = np.where(r.random(malformed.size) < 0.5, _PHONE, _EMAIL).astype(np.int8)
    variant = r.random(malformed.size)
    if missing.size or malformed.size:
        pos = np.r_[missing, malformed]
        col = np.r_[missing_col, malformed_col]
        old = _values(out, pos, col)
        new = pa.concat_arrays(
            [pa.array([""] * missing.size, pa.string()), _malformed(old[missing.size :], col[missing.size :], variant)]
        )
        out = _override(out, pos, col, new)

    at = np.r_[np.flatnonzero(copy), np.flatnonzero(k == LATE_ARRIVAL), i + 1, missing, malformed]
    kinds = np.repeat(
        np.array([DUPLICATE, LATE_ARRIVAL, OUT_OF_ORDER, MISSING_PII, MALFORMED_CONTACT], np.int8),
        [int(copy.sum()), int((k == LATE_ARRIVAL).sum()), i.size, missing.size, malformed.size],
    )
    column = np.r_[np.full(at.size - missing.size - malformed.size, -1, np.int8), missing_col, malformed_col]
    order = np.argsort(at, kind="stable")
    return Faulty(out, new_bounds, at[order], kinds[order], column[order].astype(np.int8))


def _take(rows: ShardRows, idx: np.ndarray) -> ShardRows:
    take = pa.array(idx)
    return dataclasses.replace(
        rows,
        ts=rows.ts[idx],
        fixed={name: a.take(take) for name, a in rows.fixed.items()},
        keyed=tuple((key[idx], universe, named) for key, universe, named in rows.keyed),
    )


def _customers(rows: ShardRows) -> int:
    return next(g for g, (_, _, named) in enumerate(rows.keyed) if "phone_number" in named)


def _values(rows: ShardRows, pos: np.ndarray, col: np.ndarray) -> pa.Array:
    """The current value of column PII_COLUMNS[col[j]] in row pos[j], for each j."""
    key, _, named = rows.keyed[_customers(rows)]
    out = pa.array([""] * pos.size, pa.string())
    for c, name in enumerate(PII_COLUMNS):
        mine = np.flatnonzero(col == c)
        if mine.size:
            code_of_key, values = named[name]
            codes = key[pos[mine]] if code_of_key is None else code_of_key[key[pos[mine]]]
            got = values.take(pa.array(codes)).cast(pa.string())
            out = pc.replace_with_mask(out, pa.array(np.isin(np.arange(pos.size), mine)), got)
    return out


def _override(rows: ShardRows, pos: np.ndarray, col: np.ndarray, new: pa.Array) -> ShardRows:
    """`rows` with column PII_COLUMNS[col[j]] of row pos[j] set to new[j]: each such row gets a customer key of its
    own, whose other values are its customer's."""
    g = _customers(rows)
    key, universe, named = rows.keyed[g]
    old = key[pos]
    key = key.copy()
    key[pos] = universe + np.arange(pos.size)
    altered = {}
    for name, (code_of_key, values) in named.items():
        codes = np.arange(universe) if code_of_key is None else code_of_key
        extra = codes[old]
        if name in PII_COLUMNS and (mine := np.flatnonzero(col == PII_COLUMNS.index(name))).size:
            enc = pc.dictionary_encode(new.take(pa.array(mine)))
            extra[mine] = len(values) + enc.indices.to_numpy(zero_copy_only=False)
            values = pa.concat_arrays([values, enc.dictionary.cast(values.type)])
        altered[name] = (np.r_[codes, extra], values)
    keyed = list(rows.keyed)
    keyed[g] = (key, universe + pos.size, altered)
    return dataclasses.replace(rows, keyed=tuple(keyed))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _malformed(values: pa.Array, col: np.ndarray, u: np.ndarray) -> pa.Array:
    """Each phone number (+234XXXXXXXXXX) or e-mail in `values` garbled one of the ways real data is, picked by
    `u` (uniforms in [0, 1))."""
    if not len(values):
        return pa.array([], pa.string())
    s = values.cast(pa.string())

    def cut(a: int, b: int | None = None) -> pa.Array:
        return pc.utf8_slice_codeunits(s, a, b if b is not None else 1 << 30)

    phone = [
        _join("0", cut(4)),  # local format: 08031234567
        cut(1),  # no plus: 2348031234567
        _join("+234 ", cut(4, 7), " ", cut(7, 10), " ", cut(10)),  # spaced: +234 803 123 4567
        _join("0", cut(4, 7), "-", cut(7, 10), "-", cut(10)),  # dashed local: 0803-123-4567
        _join("+234(0)", cut(4)),  # +234(0)8031234567
    ]
    email = [
        pc.replace_substring(s, "@", ""),  # no '@'
        _join(s, "."),  # trailing dot
        pc.replace_substring_regex(s, r"\.([a-z]+)$", r",\1"),  # a comma for the last dot
        pc.replace_substring(s, "@", " @"),  # a space before the '@'
        pc.replace_substring(s, "@", "@@"),  # a doubled '@'
    ]
    n = len(s)
    v = np.minimum((u * len(phone)).astype(np.int64), len(phone) - 1)
    pick = np.where(col == _PHONE, v, len(phone) + v) * n + np.arange(n)
    return pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in phone + email]).take(
        pa.array(pick)
    )
