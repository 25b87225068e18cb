"""The run report: statistics of committed runs, each next to the target the scenario asked for.

`load` reads runs through their manifests; `summarise` computes every section from the rows (vectorised with
numpy and pyarrow) and derives the targets from the `Behaviour` the way the core uses it. Rendering lives in
`generator.report_render`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from generator import manifest
from generator.core.behaviour import Behaviour, default_behaviour
from generator.core.events import DAY, HOUR, SECOND
from generator.core.nigeria import default_pools
from generator.core.sessions import WAT_OFFSET, hour_buckets
from generator.schema import EVENT_CODE, EVENT_TYPES, ORDER_STAGES, PAYMENT_METHODS, PLATFORMS

COLUMNS = ("event_ts", "event_type", "customer_id", "platform", "latency_ms", "error_code", "payment_method")
ORDER_COLUMNS = ("carrier", "tracking_number")
# Sessions opening this close to the end of the data may still be walking the funnel when the run stops;
# the funnel counts only sessions that had this long to finish (longer than any but a vanishing tail).
SETTLE = 30 * 60 * SECOND
STATES = ("authorised", "placed", "packed", "shipped", "delivered")
_C = EVENT_CODE
_OPEN, _VIEW, _CART, _CHECKOUT = _C["OPEN"], _C["PRODUCT_VIEW"], _C["ADD_TO_CART"], _C["CHECKOUT_STARTED"]
_FAILED, _AUTH, _ORDER = _C["PAYMENT_FAILED"], _C["PAYMENT_AUTHORIZED"], _C["ORDER_PLACED"]


@dataclass
class Row:
    """One statistic: the realised value, the scenario's target, and what the value is a share or mean of."""

    label: str
    value: float | None
    target: float | None
    unit: str = "share"  # share (deviation in percentage points), ms, days, mean or count (relative deviation)
    n: int | None = None
    # Whether the n behind a share are independent trials, so that the binomial standard error applies (not for
    # events, which cluster in sessions and by customer).
    binomial: bool = True

    def __post_init__(self) -> None:  # plain floats (numpy scalars would not serialise)
        self.value = None if self.value is None else float(self.value)
        self.target = None if self.target is None else float(self.target)

    @property
    def deviation(self) -> float | None:
        """Points for shares, a relative difference otherwise; None when either side is missing."""
        if self.value is None or self.target is None:
            return None
        if self.unit == "share":
            return self.value - self.target
        return (self.value - self.target) / self.target if self.target else None

    @property
    def z(self) -> float | None:
        """For a share of n: the deviation in binomial standard errors (how surprising it is by chance alone)."""
        if self.unit != "share" or not self.binomial or self.deviation is None or not self.n or not 0 < self.target < 1:
            return None
        return self.deviation / math.sqrt(self.target * (1 - self.target) / self.n)


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    chart: dict = field(default_factory=dict)  # what the HTML page draws; plain data


@dataclass
class Incident:
    kind: str
    start: int  # microseconds since the epoch
    end: int
    params: dict


@dataclass
class Summary:
    runs: list[str]
    events: int
    first_ts: int
    last_ts: int
    scenario: str
    incidents: list[Incident]
    sections: list[Section]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def to_dict(self) -> dict:
        doc = asdict(self)
        for s_doc, s in zip(doc["sections"], self.sections, strict=True):
            for r_doc, r in zip(s_doc["rows"], s.rows, strict=True):
                r_doc["deviation"] = r.deviation
        doc["first_ts"], doc["last_ts"] = manifest.iso(self.first_ts), manifest.iso(self.last_ts)
        for i in doc["incidents"]:
            i["start"], i["end"] = manifest.iso(i["start"]), manifest.iso(i["end"])
        return doc


@dataclass
class Loaded:
    table: pa.Table
    docs: list[dict]
    windows: list[tuple[int, int]]  # each run's first event and the end of its window


def load(out: Path, run_id: str | None = None) -> Loaded:
    """The committed runs under `out` (or the one named), read through their manifests."""
    if not out.is_dir():
        raise manifest.ManifestError(f"{out}: no such directory")
    if run_id:
        paths = [manifest.manifest_path(out, run_id)]
        if not paths[0].is_file():
            raise manifest.ManifestError(f"--run-id: no committed run {run_id!r} in {str(out)!r}")
    else:
        paths = manifest.committed(out)
        if not paths:
            raise manifest.ManifestError(f"{out}: no committed run (no manifest under {manifest.MANIFEST_DIR}/)")
    docs = [manifest.read(p) for p in paths]
    tables, windows = [], []
    for doc in docs:
        parts = [pq.read_table(out / p["path"], columns=[*COLUMNS, *ORDER_COLUMNS]) for p in doc["parts"]]
        t = pa.concat_tables(parts)
        tables.append(t)
        ts = pc.min_max(t.column("event_ts").cast(pa.int64()))
        # The run's cut (every shard's events end there) where the manifest records it, else its last event.
        end = doc["window"].get("end")
        windows.append((ts["min"].as_py() or 0, _us(end) if end else ts["max"].as_py() or 0))
    return Loaded(pa.concat_tables(tables), docs, windows)


def scenario_of(docs: list[dict]) -> tuple[Behaviour, list[Incident], str]:
    """The behaviour the runs were generated with, their incidents, and a line saying which scenario it is."""
    scenarios = [d.get("scenario") for d in docs]
    raw = scenarios[0]
    note = "default scenario" if raw is None else f"scenario of run {docs[0]['run_id']}"
    if any(s != raw for s in scenarios):
        note += " (the runs differ in scenario: targets are this one's)"
    if raw is None:
        return default_behaviour(), [], note
    incidents = [
        Incident(str(i["kind"]), _us(i["start"]), _us(i["end"]), {k: v for k, v in i.items() if k not in _WINDOW})
        for i in raw.get("incidents", [])
    ]
    return Behaviour.from_dict(raw), incidents, note


_WINDOW = ("kind", "start", "end")


def _us(t: object) -> int:
    d = t if isinstance(t, datetime) else datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    return round(d.timestamp() * 1e6)


# -- the model's targets -----------------------------------------------------------------------------------------


def payment_chain(b: Behaviour, failure: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Exact outcome probabilities of one checkout's payment attempts (core.lifecycle.pay as a Markov chain):
    `success[a, m]` succeeds on attempt a with method m, `failed[m]` is the expected failures with method m."""
    f = b.method_failure if failure is None else failure
    mix = b.method_mix
    k = mix.size
    others = np.where(np.eye(k, dtype=bool), 0.0, mix[None, :] / np.maximum(1 - mix, 1e-12)[:, None])
    alive = mix.copy()
    success = np.zeros((b.max_attempts, k))
    failed = np.zeros(k)
    for a in range(b.max_attempts):
        success[a] = alive * (1 - f)
        failed += alive * f
        again = alive * f * b.retry
        alive = again * (1 - b.switch_method) + (again * b.switch_method) @ others
    return {"success": success, "failed": failed}


def per_attempt_failure(chain: dict[str, np.ndarray]) -> float:
    return float(chain["failed"].sum() / (chain["failed"].sum() + chain["success"].sum()))


def lognormal_sf(x: float, median: float, sigma: float) -> float:
    """P(X > x) for a lognormal with this median and sigma."""
    return 0.5 * math.erfc(math.log(x / median) / (sigma * math.sqrt(2)))


_Z = {50: 0.0, 95: 1.6448536269514722, 99: 2.3263478740408408}


def delay_samples(b: Behaviour, n: int = 20_000) -> dict[str, np.ndarray]:
    """Sorted Monte Carlo samples (fixed seed) of an order's delays from ORDER_PLACED, in microseconds: to PACKED,
    to SHIPPED, and to DELIVERED per carrier (mixing hub and outside-hub customers by the population's share)."""
    r = np.random.default_rng(0)
    packed = b.packed_hours * HOUR * np.exp(b.hours_sigma * r.standard_normal(n))
    shipped = packed + b.shipped_hours * HOUR * np.exp(b.hours_sigma * r.standard_normal(n))
    pools = default_pools()
    weights = np.diff(np.r_[0.0, pools.state_cdf])
    hub_share = float((weights * pools.state_is_hub).sum() / weights.sum())
    factor = np.where(r.random(n) < hub_share, 1.0, b.outside_hubs_factor)
    transit = np.exp(b.transit_sigma * r.standard_normal(n)) * factor * DAY
    out = {"packed": np.sort(packed), "shipped": np.sort(shipped)}
    for name, days in zip(b.carriers.names, b.carriers.transit_days, strict=True):
        out[name] = np.sort(shipped + days * transit)
    return out


# -- the rows as arrays ---------------------------------------------------------------------------------------------


@dataclass
class Frame:
    ts: np.ndarray  # int64 us
    code: np.ndarray  # event code
    customer: np.ndarray  # int64 code per customer
    platform: np.ndarray  # platform code
    latency: np.ndarray
    slow: np.ndarray  # error_code is INVALID LATENCY
    method: np.ndarray  # payment method code, -1 where null
    carrier: np.ndarray  # code into `carriers`, -1 where null
    carriers: list[str]
    order: np.ndarray  # code per tracking number, -1 where null


def _codes(col: pa.ChunkedArray, values: list[str] | tuple[str, ...]) -> np.ndarray:
    return pc.index_in(col, value_set=pa.array(values, pa.string())).fill_null(-1).to_numpy().astype(np.int64)


def _dictionary(col: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    enc = pc.dictionary_encode(col.combine_chunks())
    return enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def frame(table: pa.Table) -> Frame:
    carrier, carriers = _dictionary(table.column("carrier"))
    return Frame(
        ts=table.column("event_ts").cast(pa.int64()).to_numpy(),
        code=_codes(table.column("event_type"), EVENT_TYPES),
        customer=_dictionary(table.column("customer_id"))[0],
        platform=_codes(table.column("platform"), PLATFORMS),
        latency=table.column("latency_ms").to_numpy().astype(np.int64),
        slow=table.column("error_code").is_valid().to_numpy(),
        method=_codes(table.column("payment_method"), PAYMENT_METHODS),
        carrier=carrier,
        carriers=carriers,
        order=_dictionary(table.column("tracking_number"))[0],
    )


@dataclass
class Sessions:
    """Sessions rebuilt per customer from OPEN events (the rows carry no session id)."""

    open_ts: np.ndarray
    reached: dict[int, np.ndarray]  # event code -> whether the session has one
    failures: np.ndarray  # PAYMENT_FAILED events per session
    method: np.ndarray  # the authorised payment's method, -1 without one
    orphans: int  # runs of session events with no OPEN before them in the data


def sessions(fr: Frame) -> Sessions:
    idx = np.flatnonzero(fr.code <= _ORDER)
    idx = idx[np.lexsort((fr.ts[idx], fr.customer[idx]))]
    code, cust = fr.code[idx], fr.customer[idx]
    new = (code == _OPEN) | np.r_[True, cust[1:] != cust[:-1]]
    sid = np.cumsum(new) - 1
    n = int(sid[-1]) + 1 if sid.size else 0
    starts = np.flatnonzero(new)
    ok = code[starts] == _OPEN
    reached = {}
    for c in (_VIEW, _CART, _CHECKOUT, _AUTH, _ORDER):
        flag = np.zeros(n, bool)
        flag[sid[code == c]] = True
        reached[c] = flag[ok]
    method = np.full(n, -1, np.int64)
    auth = code == _AUTH
    method[sid[auth]] = fr.method[idx[auth]]
    failures = np.bincount(sid[code == _FAILED], minlength=n)
    return Sessions(fr.ts[idx[starts]][ok], reached, failures[ok], method[ok], int((~ok).sum()))


# -- the sections -----------------------------------------------------------------------------------------------


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole else None


def event_mix(fr: Frame, b: Behaviour) -> Section:
    counts = np.bincount(fr.code[fr.code >= 0], minlength=len(EVENT_TYPES))
    chain = payment_chain(b)
    browse = 1 - b.bounce
    checkout = browse * b.add_to_cart * b.checkout
    won = chain["success"].sum()
    per_session = {
        "OPEN": 1.0,
        "USER_LOGIN": b.login,
        "PRODUCT_VIEW": browse * (1 + b.extra_views_mean),
        "ADD_TO_CART": browse * b.add_to_cart * (1 + b.extra_views_mean * b.add_more),
        "CHECKOUT_STARTED": checkout,
        "PAYMENT_AUTHORIZED": checkout * won,
        "PAYMENT_FAILED": checkout * chain["failed"].sum(),
        **{k: checkout * won for k in ("ORDER_PLACED", "PACKED", "SHIPPED", "DELIVERED")},
    }
    expected = np.array([per_session[t] for t in EVENT_TYPES])
    expected /= expected.sum()
    total = int(counts.sum())
    rows = [
        Row(t, _share(c, total), float(e), n=total, binomial=False)
        for t, c, e in zip(EVENT_TYPES, counts, expected, strict=True)
    ]
    return Section(
        "events",
        "Event mix",
        rows,
        [
            "Targets are the steady-state shares per session; PACKED, SHIPPED and DELIVERED follow the traffic of "
            "earlier days, so a window of a few hours shows them off their share."
        ],
        {"kind": "bars", "labels": list(EVENT_TYPES), "values": [r.value for r in rows], "targets": expected.tolist()},
    )


def funnel(fr: Frame, s: Sessions, b: Behaviour, end: int) -> Section:
    settled = s.open_ts <= end - SETTLE
    total = int(settled.sum())
    steps = [("product view", _VIEW, 1 - b.bounce), ("add to cart", _CART, b.add_to_cart)]
    steps += [("checkout", _CHECKOUT, b.checkout), ("payment authorised", _AUTH, payment_chain(b)["success"].sum())]
    steps += [("order placed", _ORDER, 1.0)]
    rows = [Row("sessions", float(total), None, "count")]
    counts, targets = [total], [float(total)]
    prev, expect = total, float(total)
    for label, c, p in steps:
        k = int((s.reached[c] & settled).sum())
        rows.append(Row(f"{label} (of the step before)", _share(k, prev), float(p), n=prev))
        expect *= float(p)
        counts.append(k)
        targets.append(expect)
        prev = k
    carted, checked = counts[2], counts[3]
    rows.append(Row("session → order", _share(counts[-1], total), targets[-1] / total if total else None, n=total))
    rows.append(Row("cart abandonment", _share(carted - checked, carted), 1 - b.checkout, n=carted))
    notes = [
        f"Sessions are rebuilt per customer from OPEN events; {int((~settled).sum()):,} sessions opening in the last "
        f"{SETTLE // (60 * SECOND)} minutes of the data are left out (they may not have finished)."
    ]
    if s.orphans:
        notes.append(f"{s.orphans:,} runs of session events start before the data does (no OPEN) and are left out.")
    labels = ["sessions"] + [label for label, _, _ in steps]
    return Section(
        "funnel", "Funnel", rows, notes, {"kind": "bars", "labels": labels, "values": counts, "targets": targets}
    )


def _bucket_width(first: int, last: int) -> int:
    return HOUR if last - first <= 3 * DAY else DAY


def payments(fr: Frame, s: Sessions, b: Behaviour, end: int, incidents: list[Incident]) -> Section:
    chain = payment_chain(b)
    attempts = (fr.code == _FAILED) | (fr.code == _AUTH)
    fails = int((fr.code == _FAILED).sum())
    n_att = int(attempts.sum())
    rows = [Row("failure rate per attempt", _share(fails, n_att), per_attempt_failure(chain), n=n_att)]
    settled = (s.open_ts <= end - SETTLE) & s.reached[_CHECKOUT]
    n_chk = int(settled.sum())
    mean_fail = float(s.failures[settled].mean()) if n_chk else None
    rows.append(Row("failed attempts per checkout", mean_fail, float(chain["failed"].sum()), "mean", n_chk))
    auth = settled & (s.method >= 0)
    n_auth = int(auth.sum())
    won = chain["success"]
    for m, name in enumerate(PAYMENT_METHODS):
        mine = auth & (s.method == m)
        k = int(mine.sum())
        rows.append(
            Row(f"{name}: share of authorised payments", _share(k, n_auth), won[:, m].sum() / won.sum(), n=n_auth)
        )
        retried = int((mine & (s.failures > 0)).sum())
        rows.append(
            Row(f"{name}: authorised after a failure", _share(retried, k), won[1:, m].sum() / won[:, m].sum(), n=k)
        )
    notes = [
        "PAYMENT_FAILED carries no payment_method (the spec leaves it empty), so failure by method is inferred only "
        "through the checkouts that end authorised: the method's share of them, and how many needed a retry. A retry "
        f"may switch method (probability {b.switch_method:g}), so a failure before an authorised "
        "payment is not necessarily that method's.",
        "Per-attempt targets by method: "
        + ", ".join(f"{m} {f:.1%}" for m, f in zip(PAYMENT_METHODS, b.method_failure, strict=True))
        + ".",
    ]
    for inc in incidents:
        if inc.kind != "payment_outage" or inc.params.get("method") not in PAYMENT_METHODS:
            continue
        m = PAYMENT_METHODS.index(inc.params["method"])
        f = b.method_failure.copy()
        f[m] = float(inc.params.get("failure_rate", f[m]))
        inside_chain = payment_chain(b, f)
        inside = (fr.ts >= inc.start) & (fr.ts < inc.end)
        tag = f"{inc.params['method']} outage {manifest.iso(inc.start)[:16]}"
        for where, mask, ch in (("inside", inside, inside_chain), ("outside", ~inside, chain)):
            k = int((attempts & mask).sum())
            bad = int(((fr.code == _FAILED) & mask).sum())
            rows.append(Row(f"{tag}: failure per attempt {where}", _share(bad, k), per_attempt_failure(ch), n=k))
            paid = mask & (fr.code == _AUTH)
            n_paid = int(paid.sum())
            share = _share(int((paid & (fr.method == m)).sum()), n_paid)
            target = ch["success"][:, m].sum() / ch["success"].sum()
            rows.append(Row(f"{tag}: {inc.params['method']} share of authorised {where}", share, target, n=n_paid))
    width = _bucket_width(int(fr.ts.min()), int(fr.ts.max())) if fr.ts.size else HOUR
    bucket = fr.ts[attempts] // width
    keys, inv = np.unique(bucket, return_inverse=True)
    per = np.bincount(inv, weights=(fr.code[attempts] == _FAILED), minlength=keys.size)
    tot = np.bincount(inv, minlength=keys.size)
    x = (keys * width + width // 2).tolist()
    targets = [_failure_target_at(t, b, incidents, chain) for t in x]
    chart = {"kind": "line", "x": x, "values": (per / np.maximum(tot, 1)).tolist(), "targets": targets}
    chart["width"] = "hour" if width == HOUR else "day"
    return Section("payments", "Payments", rows, notes, chart)


def _failure_target_at(t: int, b: Behaviour, incidents: list[Incident], chain: dict) -> float:
    for inc in incidents:
        if inc.kind == "payment_outage" and inc.start <= t < inc.end and inc.params.get("method") in PAYMENT_METHODS:
            f = b.method_failure.copy()
            f[PAYMENT_METHODS.index(inc.params["method"])] = float(inc.params.get("failure_rate", 0.0))
            return per_attempt_failure(payment_chain(b, f))
    return per_attempt_failure(chain)


def latency(fr: Frame, b: Behaviour, threshold: int, incidents: list[Incident]) -> Section:
    rows: list[Row] = []
    labels, values, targets = [], [], []
    n_all = fr.ts.size
    expected_slow = 0.0
    for p, name in enumerate(PLATFORMS):
        mine = fr.platform == p
        lat = fr.latency[mine]
        med, sig = float(b.latency_median_ms[p]), float(b.latency_sigma[p])
        rows.append(
            Row(f"{name}: share of events", _share(lat.size, n_all), float(b.platform_mix[p]), n=n_all, binomial=False)
        )
        got = np.percentile(lat, list(_Z)) if lat.size else [None] * len(_Z)
        for (q, z), v in zip(_Z.items(), got, strict=True):
            target = med * math.exp(sig * z)
            rows.append(Row(f"{name}: p{q}", None if v is None else float(v), target, "ms", int(lat.size)))
            labels.append(f"{name} p{q}")
            values.append(None if v is None else float(v))
            targets.append(target)
        sf = lognormal_sf(threshold, med, sig)
        expected_slow += sf * lat.size
        rows.append(Row(f"{name}: INVALID LATENCY", _share(int(fr.slow[mine].sum()), lat.size), sf, n=int(lat.size)))
    rows.append(
        Row("INVALID LATENCY, all events", _share(int(fr.slow.sum()), n_all), _share(expected_slow, n_all), n=n_all)
    )
    for inc in incidents:
        if inc.kind != "latency_degradation" or inc.params.get("platform") not in PLATFORMS:
            continue
        p = PLATFORMS.index(inc.params["platform"])
        mine = (fr.platform == p) & (fr.ts >= inc.start) & (fr.ts < inc.end)
        k = int(mine.sum())
        med = float(b.latency_median_ms[p]) * float(inc.params.get("factor", 1.0))
        target = lognormal_sf(threshold, med, float(b.latency_sigma[p]))
        label = f"{inc.params['platform']} degradation {manifest.iso(inc.start)[:16]}: INVALID LATENCY inside"
        rows.append(Row(label, _share(int(fr.slow[mine].sum()), k), target, n=k))
    notes = [
        f"Latency is lognormal per platform (median, sigma from the scenario), so p95 = median·e^(1.645σ) and "
        f"p99 = median·e^(2.326σ); INVALID LATENCY is P(latency > {threshold:,} ms), the run's threshold."
    ]
    width = _bucket_width(int(fr.ts.min()), int(fr.ts.max())) if fr.ts.size else HOUR
    keys, inv = np.unique(fr.ts // width, return_inverse=True)
    rate = np.bincount(inv, weights=fr.slow, minlength=keys.size) / np.maximum(np.bincount(inv), 1)
    over_time = {
        "x": (keys * width + width // 2).tolist(),
        "values": rate.tolist(),
        "target": _share(expected_slow, n_all),
    }
    chart = {"kind": "bars", "labels": labels, "values": values, "targets": targets, "over_time": over_time}
    return Section("latency", "Latency", rows, notes, chart)


def orders(fr: Frame, b: Behaviour, end: int) -> tuple[Section, Section]:
    """Orders by the last stage reached per tracking number, and delivery time by carrier."""
    has = fr.order >= 0
    k = int(fr.order.max()) + 1 if has.any() else 0
    stage_of = {_C[s]: i for i, s in enumerate(ORDER_STAGES)}
    stage = np.full(fr.code.size, -1)
    for c, i in stage_of.items():
        stage[fr.code == c] = i
    last = np.full(k, -1)
    np.maximum.at(last, fr.order[has], stage[has])
    placed_ts = np.full(k, -1, np.int64)
    placed = fr.code == _ORDER
    placed_ts[fr.order[placed]] = fr.ts[placed]
    delivered_ts = np.full(k, -1, np.int64)
    done = fr.code == _C["DELIVERED"]
    delivered_ts[fr.order[done]] = fr.ts[done]
    carrier = np.full(k, -1)
    carrier[fr.order[has]] = fr.carrier[has]
    names = fr.carriers

    # Orders placed inside the data: their expected state at the end of the data, given their age.
    mine = placed_ts >= 0
    age = end - placed_ts[mine]
    samples = delay_samples(b)
    reached = {"packed": _cdf(samples["packed"], age), "shipped": _cdf(samples["shipped"], age)}
    delivered = np.zeros(age.size)
    car = carrier[mine]
    for name in b.carriers.names:
        if name in names:
            sel = car == names.index(name)
            delivered[sel] = _cdf(samples[name], age[sel])
    expected = {
        "authorised": 0.0,
        "placed": float((1 - reached["packed"]).sum()),
        "packed": float((reached["packed"] - reached["shipped"]).sum()),
        "shipped": float((reached["shipped"] - delivered).sum()),
        "delivered": float(delivered.sum()),
    }
    counts = np.bincount(last[mine], minlength=len(STATES))
    carried = np.bincount(last[~mine & (last >= 0)], minlength=len(STATES))
    rows = [
        Row(f"placed in the data, now {st}", float(c), expected[st], "count")
        for st, c in zip(STATES, counts, strict=True)
    ]
    rows += [
        Row(f"placed before the data, now {st}", float(c), None, "count")
        for st, c in zip(STATES, carried, strict=True)
        if st not in ("authorised", "placed")
    ]
    state_section = Section(
        "orders",
        "Orders by state",
        rows,
        [
            "Last stage reached per tracking number at the end of the data. Targets: each order's chance of having "
            "reached each stage by then, given its age (fulfilment delays from the scenario). Orders placed before "
            "the data show only their fulfilment events."
        ],
        {"kind": "bars", "labels": list(STATES), "values": counts.tolist(), "targets": list(expected.values())},
    )

    rows, ranges = [], []
    all_orders = carrier >= 0
    n_orders = int(all_orders.sum())
    for i, name in enumerate(b.carriers.names):
        c = names.index(name) if name in names else -2
        rows.append(
            Row(
                f"{name}: share of orders",
                _share(int((carrier == c).sum()), n_orders),
                float(b.carriers.share[i]),
                n=n_orders,
            )
        )
        sel = mine & (carrier == c)
        span = np.where(delivered_ts[sel] >= 0, delivered_ts[sel], end) - placed_ts[sel]
        got = _km_quantiles(span / DAY, delivered_ts[sel] >= 0, (0.1, 0.5, 0.9))
        want = [float(np.quantile(samples[name], q)) / DAY for q in (0.1, 0.5, 0.9)]
        n_done = int((delivered_ts[sel] >= 0).sum())
        for q, g, w in zip((10, 50, 90), got, want, strict=True):
            rows.append(Row(f"{name}: p{q} days placed → delivered", g, w, "days", n_done))
        ranges.append({"label": name, "values": got, "targets": want})
    delivery = Section(
        "delivery",
        "Delivery time by carrier",
        rows,
        [
            "Days from ORDER_PLACED to DELIVERED for orders placed in the data. Orders not yet delivered at the end "
            "are censored, not dropped: quantiles are Kaplan-Meier estimates (— where too few orders got that far). "
            "Targets: packing, shipping and transit delays from the scenario, hub and outside-hub customers mixed."
        ],
        {"kind": "ranges", "rows": ranges},
    )
    return state_section, delivery


def _cdf(sorted_samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_samples, x, side="right") / sorted_samples.size


def _km_quantiles(t: np.ndarray, observed: np.ndarray, qs: tuple[float, ...]) -> list[float | None]:
    """Kaplan-Meier quantiles of durations `t` where `observed` is False for censored ones."""
    order = np.argsort(t, kind="stable")
    t, observed = t[order], observed[order]
    at_risk = t.size - np.arange(t.size)
    survival = np.cumprod(1 - observed / np.maximum(at_risk, 1))
    out: list[float | None] = []
    for q in qs:
        i = np.flatnonzero((1 - survival >= q - 1e-9) & observed)
        out.append(float(t[i[0]]) if i.size else None)
    return out


def traffic(fr: Frame, b: Behaviour, windows: list[tuple[int, int]]) -> Section:
    opens = fr.ts[fr.code == _OPEN]
    hour = ((opens + WAT_OFFSET) // HOUR) % 24
    counts = np.bincount(hour, minlength=24)
    expected = np.zeros(24)
    for t0, t1 in windows:
        lo, length, f = hour_buckets(b, t0, t1 + 1)
        np.add.at(expected, ((lo + WAT_OFFSET) // HOUR) % 24, f * length)
    expected /= max(expected.sum(), 1e-12)
    total = int(counts.sum())
    rows = [
        Row(f"{h:02d}:00 WAT", _share(c, total), float(e), n=total)
        for h, (c, e) in enumerate(zip(counts, expected, strict=True))
    ]
    notes = [
        "Sessions (OPEN events) by hour of day in West Africa Time (UTC+1). Targets: the scenario's hourly curve "
        "weighted by how much of each hour the data covers (weekend and payday factors included)."
    ]
    chart = {"kind": "bars", "labels": [f"{h:02d}" for h in range(24)], "values": [r.value for r in rows]}
    chart |= {"targets": expected.tolist(), "vertical": True, "over_time": _sessions_over_time(opens, b, windows)}
    return Section("traffic", "Traffic by hour of day (WAT)", rows, notes, chart)


def _sessions_over_time(opens: np.ndarray, b: Behaviour, windows: list[tuple[int, int]]) -> dict:
    """Sessions per hour (or day) against the scenario's intensity curve, scaled to the same total."""
    if not opens.size:
        return {"x": [], "values": [], "targets": []}
    width = _bucket_width(int(opens.min()), int(opens.max()))
    keys, counts = np.unique(opens // width, return_counts=True)
    expected = np.zeros(keys.size)
    for t0, t1 in windows:
        lo, length, f = hour_buckets(b, t0, t1 + 1)
        at = np.minimum(np.searchsorted(keys, lo // width), keys.size - 1)
        ok = keys[at] == lo // width
        np.add.at(expected, at[ok], (f * length)[ok])
    expected *= counts.sum() / max(expected.sum(), 1e-12)
    return {"x": (keys * width + width // 2).tolist(), "values": counts.tolist(), "targets": expected.tolist()}


def summarise(loaded: Loaded) -> Summary:
    b, incidents, note = scenario_of(loaded.docs)
    fr = frame(loaded.table)
    end = max((w[1] for w in loaded.windows), default=0)
    thresholds = {int(d["options"]["latency_threshold_ms"]) for d in loaded.docs}
    threshold = min(thresholds)
    s = sessions(fr)
    state, delivery = orders(fr, b, end)
    sections = [
        event_mix(fr, b),
        funnel(fr, s, b, end),
        payments(fr, s, b, end, incidents),
        latency(fr, b, threshold, incidents),
        state,
        delivery,
        traffic(fr, b, loaded.windows),
    ]
    if len(thresholds) > 1:
        sections[3].notes.append(f"The runs use different thresholds {sorted(thresholds)}; targets use {threshold}.")
    first = int(fr.ts.min()) if fr.ts.size else 0
    return Summary([d["run_id"] for d in loaded.docs], int(fr.ts.size), first, end, note, incidents, sections)


def report(out: Path, run_id: str | None = None) -> Summary:
    return summarise(load(out, run_id))
