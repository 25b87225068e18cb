"""gen report: statistics against independent SQL over the same files, realised values against the scenario's
targets within stated tolerances, the HTML page, and the exit-2 paths."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from generator import manifest
from generator import report as report_module
from generator.cli import main
from generator.core.behaviour import ZONES, default_behaviour
from generator.core.events import HOUR
from generator.core.lifecycle import pay
from generator.report import SETTLE, _km_quantiles, load, payment_chain, per_attempt_failure, report
from generator.schema import EVENT_TYPES, PAYMENT_METHODS, PLATFORMS

# How far a realised share may sit from its target, in binomial standard errors. Each checked share is a count of
# independent trials (sessions, checkouts, attempts, events' latencies); by chance alone |z| > 4.5 happens about
# 7 times in a million per share, so with ~60 shares checked per run a failure means a real mismatch.
MAX_Z = 4.5


def _gen(out: Path, *args: str) -> Path:
    assert main(["run", "--workers", "1", "--out", str(out), "--quiet", *args]) == 0
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """About 2.6 days of traffic (every hour of the day covered) from a population of 50,000."""
    return _gen(tmp_path_factory.mktemp("report"), "--events", "200000", "--customers", "50000")


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory) -> Path:
    """A small population over about three weeks, so that orders placed in the data get delivered in it (30-80
    deliveries per main carrier; two weeks gave some of them under the 30 the medians are checked from)."""
    return _gen(tmp_path_factory.mktemp("report_long"), "--events", "90000", "--customers", "3000")


@pytest.fixture(scope="module")
def summary(run_dir):
    return report(run_dir)


def _rows(summary, key: str) -> dict:
    return {r.label: r for r in summary.section(key).rows}


def _sql(run_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"create view ev as select * from read_parquet('{run_dir}/events/**/*.parquet')")
    return con


# -- the statistics are the data's ------------------------------------------------------------------------------


def test_event_mix_and_latency_match_sql(run_dir, summary):
    con = _sql(run_dir)
    total = con.execute("select count(*) from ev").fetchone()[0]
    assert summary.events == total
    counts = dict(con.execute("select event_type, count(*) from ev group by 1").fetchall())
    for label, row in _rows(summary, "events").items():
        assert round(row.value * total) == counts.get(label, 0), label
    lat = _rows(summary, "latency")
    for p in PLATFORMS:
        q = con.execute(
            "select quantile_cont(latency_ms, [0.5, 0.95, 0.99]), avg((error_code is not null)::int) "
            "from ev where platform = ?",
            [p],
        ).fetchone()
        assert [lat[f"{p}: p{k}"].value for k in (50, 95, 99)] == pytest.approx(q[0], abs=1e-6)
        assert lat[f"{p}: INVALID LATENCY"].value == pytest.approx(q[1])


def test_funnel_matches_sql(run_dir, summary):
    """Sessions rebuilt in SQL (a running count of OPEN per customer) give the same step counts."""
    end = max(w[1] for w in load(run_dir).windows)
    sessions = (
        _sql(run_dir)
        .execute(
            f"""
        with s as (
            select customer_id, event_type, epoch_us(event_ts) as ts,
                   sum((event_type = 'OPEN')::int) over (partition by customer_id order by event_ts) as sid
            from ev where event_type not in ('PACKED', 'SHIPPED', 'DELIVERED')
        ), per as (
            select customer_id, sid, min(ts) filter (where event_type = 'OPEN') as opened,
                   bool_or(event_type = 'PRODUCT_VIEW') as v, bool_or(event_type = 'ADD_TO_CART') as c,
                   bool_or(event_type = 'CHECKOUT_STARTED') as k,
                   bool_or(event_type in ('PAYMENT_FAILED', 'PAYMENT_AUTHORIZED')) as p,
                   bool_or(event_type = 'PAYMENT_AUTHORIZED') as a, bool_or(event_type = 'ORDER_PLACED') as o
            from s where sid > 0 group by 1, 2
        )
        select count(*), count(*) filter (v), count(*) filter (c), count(*) filter (k), count(*) filter (p),
               count(*) filter (a), count(*) filter (o)
        from per where opened <= {end - SETTLE}
        """
        )
        .fetchone()
    )
    chart = summary.section("funnel").chart
    assert chart["values"] == list(sessions)


def test_conversion_by_platform_matches_sql(run_dir, summary):
    """Sessions and orders per platform of the session's OPEN, rebuilt in SQL, give each platform's conversion;
    its target is the mean over its sessions of (1 - bounce) x min(add_to_cart x factor x the customer's
    propensity, 1) x checkout x success (no incidents; success scaled by the checkouts' mean chance of a payment
    attempt, more of them when the basket ships free), the propensity worked out here from the SQL's customer
    ids."""
    from generator.core.population import propensity

    end = max(w[1] for w in load(run_dir).windows)
    per_session = (
        _sql(run_dir)
        .execute(
            f"""
        with s as (
            select customer_id, event_type, platform, total_amount, epoch_us(event_ts) as ts,
                   sum((event_type = 'OPEN')::int) over (partition by customer_id order by event_ts) as sid
            from ev where event_type not in ('PACKED', 'SHIPPED', 'DELIVERED')
        ), per as (
            select customer_id, min(ts) filter (where event_type = 'OPEN') as opened,
                   min(platform) filter (where event_type = 'OPEN') as platform,
                   bool_or(event_type = 'ORDER_PLACED') as o,
                   max(total_amount) filter (where event_type = 'CHECKOUT_STARTED')::double as basket
            from s where sid > 0 group by customer_id, sid
        )
        select platform, cast(substr(customer_id, 3) as bigint), o::int, basket from per
        where opened <= {end - SETTLE}
        """
        )
        .fetchall()
    )
    platform = np.array([r[0] for r in per_session])
    customer = np.array([r[1] for r in per_session], np.int64)
    ordered = np.array([r[2] for r in per_session])
    basket = np.array([r[3] for r in per_session if r[3] is not None])
    rows = _rows(summary, "funnel")
    b = default_behaviour()
    seed = int(manifest.read(manifest.committed(run_dir)[0])["options"]["seed"])
    # A checkout's success scales with its chance of a payment attempt: fewer are abandoned when the basket ships
    # free (the mean over the data's checkouts, each session counting at it).
    attempt = np.where(basket >= b.free_shipping_ngn, 1 - b.abandon_free_shipping, 1 - b.abandon_at_payment)
    won = float(payment_chain(b)["success"].sum()) * attempt.mean() / (1 - b.abandon_at_payment)
    x = propensity(seed, customer, b)
    for p, name in enumerate(PLATFORMS):
        row = rows[f"session → order on {name}"]
        mine = platform == name
        assert row.value == pytest.approx(ordered[mine].mean(), abs=1e-12)
        p_cart = np.minimum(b.add_to_cart * b.cart_factor[p] * x[mine], 1.0)
        assert row.target == pytest.approx((1 - b.bounce) * p_cart.mean() * b.checkout * won)
    assert rows["session → order on WEB"].target < 0.5 * rows["session → order on ANDROID"].target


def test_orders_by_state_match_sql(run_dir, summary):
    con = _sql(run_dir)
    got = dict(
        con.execute(
            """
            select state, count(*) from (
                select tracking_number, bool_or(event_type = 'ORDER_PLACED') as placed,
                       arg_max(event_type, list_position(['PAYMENT_AUTHORIZED', 'ORDER_PLACED', 'PACKED', 'SHIPPED',
                               'DELIVERED'], event_type)) as state
                from ev where tracking_number is not null group by 1
            ) where placed group by 1
            """
        ).fetchall()
    )
    names = {"ORDER_PLACED": "placed", "PACKED": "packed", "SHIPPED": "shipped", "DELIVERED": "delivered"}
    rows = _rows(summary, "orders")
    for stage, state in names.items():
        assert rows[f"placed in the data, now {state}"].value == got.get(stage, 0)


def test_traffic_by_wat_hour_matches_sql(run_dir, summary):
    got = dict(
        _sql(run_dir)
        .execute(
            "select hour(event_ts at time zone 'UTC' + interval 1 hour), count(*) from ev "
            "where event_type = 'OPEN' group by 1"
        )
        .fetchall()
    )
    rows = summary.section("traffic").rows[:24]  # then the day types' shapes and the flash sales
    assert [r.label for r in rows] == [f"{h:02d}:00 WAT" for h in range(24)]
    total = sum(got.values())
    assert [round(r.value * total) for r in rows] == [got.get(h, 0) for h in range(24)]


# -- the targets are the model's --------------------------------------------------------------------------------


def test_payment_chain_is_the_core_payment_process():
    """The exact Markov-chain targets agree with the core's own `pay` simulated on a million checkouts (the
    tolerances are ~5 standard errors of the simulation)."""
    b = default_behaviour()
    fails, success, method = pay(np.random.default_rng(3), b, 1_000_000)
    chain = payment_chain(b)
    assert success.mean() == pytest.approx(chain["success"].sum(), abs=1e-3)
    assert fails.mean() == pytest.approx(chain["failed"].sum(), abs=2e-3)
    assert fails.sum() / (fails.sum() + success.sum()) == pytest.approx(per_attempt_failure(chain), abs=2e-3)
    won = chain["success"]
    for m in range(won.shape[1]):
        mine = success & (method == m)
        assert mine.mean() / success.mean() == pytest.approx(won[:, m].sum() / won.sum(), abs=3e-3)
        assert (mine & (fails > 0)).sum() / mine.sum() == pytest.approx(won[1:, m].sum() / won[:, m].sum(), abs=6e-3)


def test_kaplan_meier_quantiles():
    t = np.arange(1.0, 11.0)
    assert _km_quantiles(t, np.ones(10, bool), (0.1, 0.5, 0.9)) == [1.0, 5.0, 9.0]
    # Censoring the longest half leaves the median reachable only through the observed ones.
    assert _km_quantiles(t, t <= 5, (0.5, 0.9)) == [5.0, None]


def test_default_run_within_tolerance_of_targets(summary):
    """Every share that counts independent trials is within MAX_Z standard errors of its target."""
    checked = 0
    for key in ("funnel", "payments", "latency", "traffic", "delivery"):
        for r in summary.section(key).rows:
            if r.z is not None:
                assert abs(r.z) <= MAX_Z, (key, r)
                checked += 1
    assert checked >= 40


def test_basket_matches_sql_and_the_law(run_dir, summary):
    """The median checkout total is DuckDB's; each median within MAX_Z of its standard error (from the law's
    density) plus NGN 100 for the price points' lumps, the items per cart within MAX_Z, 1-item baskets on price
    points as the law has them, and the checkouts just short of and just above free shipping within MAX_Z of the
    law's shares (several times as many above: the top-ups)."""
    rows = _rows(summary, "basket")
    sql = "select median(total_amount)::double, count(*) from ev where event_type = 'CHECKOUT_STARTED'"
    median, count = _sql(run_dir).execute(sql).fetchone()
    overall = rows["median basket, every checkout (NGN)"]
    assert overall.n <= count and overall.n >= 0.95 * count  # less the checkouts of sessions opened before the data
    assert abs(overall.value - median) <= 0.03 * median
    for r in summary.section("basket").rows:
        assert r.value is not None and r.n, r
        if r.unit in ("mean", "naira"):
            slack = 100 if r.unit == "naira" else 0
            assert abs(r.value - r.target) <= MAX_Z * r.se + slack, r
        elif "free shipping" in r.label:  # the totals just short of and just above it: bunched above
            assert r.z is not None and abs(r.z) <= MAX_Z, r
        else:
            assert r.target > 0.95 and r.value >= r.target - 0.01, r  # every item price is on a price point
    short = next(r for label, r in rows.items() if label.startswith("checkouts just short of free shipping"))
    above = next(r for label, r in rows.items() if label.startswith("checkouts just above free shipping"))
    assert above.target > 3 * short.target
    one, three = rows["median basket, 1 item in the cart (NGN)"], rows["median basket, 3 items in the cart (NGN)"]
    assert three.target > 2.5 * one.target and three.value > 1.8 * one.value


def test_basket_medians_are_shown_in_whole_naira(summary):
    """Totals are whole naira: a median basket reads 9,499, not 9499.000."""
    from generator.report_render import value_text

    medians = [r for r in summary.section("basket").rows if r.label.startswith("median basket")]
    assert medians
    for r in medians:
        for v in (r.value, r.target):
            text = value_text(r, v)
            assert "." not in text and text.replace(",", "") == f"{v:.0f}", (r.label, text)


def test_latency_percentiles_within_tolerance(summary):
    """A sample quantile's standard error is sqrt(p(1-p)/n) over the law's density there (the report's, of the
    mixture of the events' round trips, each a shifted lognormal); allow MAX_Z of them, judged by the quantile
    interpolated within its 1 ms class (latency_ms is whole ms), and the shown one within half a ms more. The
    idle-network law alone (round trip 79-120 ms) would bound the p50 from below."""
    b = default_behaviour()
    rows = _rows(summary, "latency")
    for i, p in enumerate(PLATFORMS):
        for q in (50, 95, 99):
            r = rows[f"{p}: p{q}"]
            assert r.se is not None and r.se > 0 and r.estimate is not None, r
            assert abs(r.z) <= MAX_Z and abs(r.value - r.target) <= MAX_Z * r.se + 0.5, r
        assert rows[f"{p}: p50"].target > b.latency_network_ms.min() + b.latency_server_ms[i], p
    # By event type: the median within MAX_Z (interpolated), its target following the type's server factor.
    medians = {t: rows[f"{t}: median latency"] for t in EVENT_TYPES if f"{t}: median latency" in rows}
    assert {"PRODUCT_VIEW", "CHECKOUT_STARTED", "PAYMENT_AUTHORIZED"} <= set(medians)
    for r in medians.values():
        assert r.se is not None and r.estimate is not None and abs(r.z) <= MAX_Z, r
    assert medians["PAYMENT_AUTHORIZED"].target > medians["PRODUCT_VIEW"].target + 100


def test_session_event_mix_within_tolerance(summary):
    """Session events (not fulfilment, which follows earlier days' traffic) near their expected shares among
    session events: within 5% (several times the spread of ~38,000 sessions for the common types; events
    cluster in sessions, views up to ~4 in one) or, for the rare ones (~1,000 CHECKOUT_STARTED, at most one a
    session), MAX_Z Poisson standard errors of their count, times 1.5 for the clustering."""
    rows = _rows(summary, "events")
    session = ["OPEN", "USER_LOGIN", "PRODUCT_VIEW", "ADD_TO_CART", "CHECKOUT_STARTED"]
    got = np.array([rows[t].value * rows[t].n for t in session], np.float64)  # counts, from shares of all events
    want = np.array([rows[t].target for t in session], np.float64)
    expected = want / want.sum() * got.sum()
    allowed = np.maximum(0.05 * expected, 1.5 * MAX_Z * np.sqrt(expected))
    assert (np.abs(got - expected) <= allowed).all(), dict(zip(session, got - expected.round(), strict=True))


def test_orders_and_delivery_within_tolerance(long_dir):
    """Orders by last stage: each count within 4.5·sqrt(expected) + 2 of its expectation (a sum of independent
    Bernoullis has variance at most its mean). Delivery medians: within 20% for carriers with at least 30
    deliveries (the Kaplan-Meier median of a lognormal-ish delay with spread ~0.4 over 30+ orders has a relative
    standard error under 10%)."""
    s = report(long_dir)
    for r in s.section("orders").rows:
        if r.target is not None:
            assert abs(r.value - r.target) <= MAX_Z * math.sqrt(r.target) + 2, r
    medians = [r for r in s.section("delivery").rows if r.label.endswith("p50 days placed → delivered")]
    checked = [r for r in medians if r.n >= 30]
    assert checked, medians
    for r in checked:
        assert r.value == pytest.approx(r.target, rel=0.2), r


def test_delivery_by_zone_shows_the_geography_within_tolerance(long_dir):
    """Median transit by the customer's zone: every zone with parcels within MAX_Z of the core's own transit for
    the same parcels (Kaplan-Meier, Greenwood's standard error), and the targets rising from the hubs to the
    north-east (the zones' factors in the scenario)."""
    delivery = report(long_dir).section("delivery").rows
    rows = {r.label.split(":")[0]: r for r in delivery if "shipped → delivered" in r.label}
    assert list(rows) == ["Lagos and the FCT", *(z.replace("_", "-") for z in ZONES)]
    measured = [r for r in rows.values() if r.n >= 10 and r.se]
    assert len(measured) >= 3, rows
    for r in measured:
        assert abs(r.z) <= MAX_Z, r
    assert rows["Lagos and the FCT"].target < rows["south-west"].target < rows["north-west"].target
    assert rows["north-west"].target < rows["north-east"].target


# -- the command ------------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.sections: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        for k in ("src", "href"):
            if a.get(k):
                self.external.append(a[k])


def test_html_report(run_dir, tmp_path, capsys):
    page = tmp_path / "r" / "report.html"
    assert main(["report", str(run_dir), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "Funnel" in out and "INVALID LATENCY" in out
    p = _Page()
    p.feed(page.read_text(encoding="utf-8"))
    p.close()
    assert p.sections == ["events", "funnel", "payments", "latency", "orders", "delivery", "traffic", "basket"]
    assert p.tags.count("svg") == 9  # bars x5, lines x3, delivery ranges
    assert p.tags.count("rect") > 50 and "polyline" in p.tags
    assert p.external == []  # nothing to fetch: viewable offline
    assert [f.name for f in page.parent.iterdir()] == ["report.html"]  # written atomically, no temp left


def test_json_report_and_run_id(run_dir, capsys):
    run_id = manifest.committed(run_dir)[0].stem
    assert main(["report", str(run_dir), "--run-id", run_id, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == [run_id]
    funnel = next(s for s in doc["sections"] if s["key"] == "funnel")
    step = next(r for r in funnel["rows"] if r["label"] == "cart abandonment")
    assert step["deviation"] == pytest.approx(step["value"] - step["target"])
    # Each row's z and flag, as the tables colour them: a pipeline can gate on the report's `flagged`.
    from generator.report import flag_level

    summary = report(run_dir, run_id)
    assert doc["flag_level"] == pytest.approx(flag_level(summary)) and doc["flag_level"] >= 3
    rows = [r for sec in doc["sections"] for r in sec["rows"]]
    assert len(rows) == sum(len(sec.rows) for sec in summary.sections)
    for r, row in zip(rows, (row for sec in summary.sections for row in sec.rows), strict=True):
        assert r["z"] == (None if row.z is None else pytest.approx(row.z))
        assert r["flagged"] == (r["z"] is not None and abs(r["z"]) > doc["flag_level"])
    assert sum(r["z"] is not None for r in rows) > 50
    assert doc["flagged"] == sum(r["flagged"] for r in rows)


def test_incidents_are_shown(run_dir, tmp_path):
    """A manifest whose scenario carries incidents: the windows are shaded in the time charts, and the outage
    method's failure is compared inside and outside its window against targets with the outage's rate."""
    doc = manifest.read(manifest.committed(run_dir)[0])
    out = tmp_path / "inc"
    out.mkdir()
    (out / "events").symlink_to(run_dir / "events")
    raw = default_behaviour().raw
    start = doc["window"]["first_event_ts"][:10] + "T09:00:00+01:00"
    outage = {"kind": "payment_outage", "start": start, "end": start.replace("T09", "T15")}
    raw = raw | {"incidents": [outage | {"method": "CARD", "failure_rate": 0.85}]}
    manifest.write(out, doc | {"run_id": "with-incident", "scenario": raw})
    s = report(out)
    labels = [r.label for r in s.section("payments").rows]
    assert any("CARD outage" in x and "inside" in x for x in labels)
    inside = next(r for r in s.section("payments").rows if "failure per attempt inside" in r.label)
    outside = next(r for r in s.section("payments").rows if "failure per attempt outside" in r.label)
    assert inside.target > 2 * outside.target  # the model's target jumps with the outage
    page = tmp_path / "inc.html"
    assert main(["report", str(out), "--html", str(page)]) == 0
    assert "<title>payment_outage" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", ["missing", "empty", "unknown-run"])
def test_bad_input_exits_2(run_dir, tmp_path, capsys, case):
    args = {
        "missing": [str(tmp_path / "nope")],
        "empty": [str(tmp_path)],
        "unknown-run": [str(run_dir), "--run-id", "no-such-run"],
    }[case]
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gen: error:") and err.count("\n") == 1


def test_orjson_output_is_plain(summary):
    """The JSON summary holds only plain numbers and strings (no numpy scalars sneak through)."""
    doc = orjson.loads(orjson.dumps(summary.to_dict()))
    assert [s["key"] for s in doc["sections"]] == [s.key for s in summary.sections]


def test_runs_without_events_or_local_parts(tmp_path, capsys):
    """A quiet run (no event) is left out of the report; a missing part is an error naming it (exit 2). (Runs
    whose parts went to S3 with --no-keep-local: tests/test_upload.py.)"""
    args = ["run", "--out", str(tmp_path), "--customers", "50", "--workers", "1", "-q"]
    assert main([*args, "--duration", "1s", "--run-id", "quiet"]) == 0
    assert main([*args, "--events", "300", "--run-id", "busy"]) == 0
    assert main(["report", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == 300
    busy = manifest.read(manifest.manifest_path(tmp_path, "busy"))
    (tmp_path / busy["parts"][0]["path"]).unlink()
    assert main(["report", str(tmp_path)]) == 2
    assert f"{busy['parts'][0]['path']}: part of run 'busy' is missing" in capsys.readouterr().err


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_manifest_listing_other_row_counts_than_its_parts_is_refused(run_dir, tmp_path, capsys, delta):
    """The report sizes its arrays from the manifests' row counts; parts holding more or fewer rows than listed
    are a corrupted run (exit 2, one line), never a silently wrong report."""
    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)
    path = manifest.committed(out)[0]
    doc = json.loads(path.read_text())
    doc["parts"][0]["rows"] += delta
    path.write_text(json.dumps(doc))
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gen: error:") and err.count("\n") == 1 and "rows" in err, err


def _same_sessions(a: report_module.Sessions, b: report_module.Sessions) -> None:
    for name in ("open_ts", "platform", "failures", "method"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.reached.keys() == b.reached.keys()
    assert all(np.array_equal(a.reached[c], b.reached[c]) for c in b.reached)
    assert a.orphans == b.orphans


def _one_sort(fr: report_module.Frame) -> report_module.Sessions:
    """The sessions of one global sort of every session event (what the ranges must add up to)."""
    return report_module._sessions(fr, np.flatnonzero(fr.code <= report_module._ORDER))


def _ranges_hold_their_rows_in_order(fr: report_module.Frame, ranges: list[np.ndarray]) -> list[np.ndarray]:
    """Every session event's row is in one range, each range's rows ascend (ties in time then keep the rows'
    order, as in one stable sort), and the ranges are disjoint runs of customers in order; their customers."""
    assert np.array_equal(np.sort(np.concatenate(ranges)), np.flatnonzero(fr.code <= report_module._ORDER))
    assert all(np.all(np.diff(r.astype(np.int64)) > 0) for r in ranges)
    customers = [fr.customer[r] for r in ranges if r.size]
    assert all(a.max() < b.min() for a, b in itertools.pairwise(customers))
    return customers


def test_sessions_sorted_a_range_of_customers_at_a_time_are_the_same(run_dir, monkeypatch):
    """The session rebuild sorts one range of customers at a time (bounded temporaries); any chunking gives the
    sessions of one global sort, in the same order."""
    fr = load(run_dir).frame
    whole = _one_sort(fr)
    _same_sessions(report_module.sessions(fr), whole)
    monkeypatch.setattr(report_module, "SESSION_CHUNK", 7_000)
    monkeypatch.setattr(report_module, "SESSION_BLOCK", 5_000)  # several blocks, and customers counted 10 to a group
    assert int((fr.code <= report_module._ORDER).sum()) > 10 * 7_000, "several chunks"
    assert fr.customer.max() - fr.customer.min() > 5_000, "customers counted in groups"
    _ranges_hold_their_rows_in_order(fr, report_module._customer_ranges(fr))
    _same_sessions(report_module.sessions(fr), whole)


def _frame(ts: list[int], code: list[int], customer: list[int], method: list[int] | None = None):
    """A Frame of the columns the session rebuild reads (platforms numbered along the rows)."""
    none8 = np.zeros(0, np.int8)
    return report_module.Frame(
        ts=np.array(ts, np.int64), code=np.array(code, np.int8), customer=np.array(customer, np.int64),
        platform=(np.arange(len(ts)) % len(PLATFORMS)).astype(np.int8),
        latency=np.zeros(0, np.int32), slow=np.zeros(0, bool),
        method=np.array([-1] * len(ts) if method is None else method, np.int8), carrier=none8, carriers=[],
        order=np.zeros(0, np.int32), amount=np.full(len(ts), -1, np.int32),
    )  # fmt: skip


@st.composite
def _frames(draw) -> report_module.Frame:
    """A few rows over a few customers, some far apart (so that they are counted in groups), -1 (an id of another
    shape) among them; any event codes (-1, an unknown type, included), and times with many ties."""
    n = draw(st.integers(0, 60))
    pool = draw(st.lists(st.one_of(st.integers(-1, 12), st.integers(0, 10**9)), min_size=1, max_size=8))

    def column(values: st.SearchStrategy) -> list[int]:
        return draw(st.lists(values, min_size=n, max_size=n))

    customer, code = column(st.sampled_from(pool)), column(st.integers(-1, len(EVENT_TYPES) - 1))
    return _frame(column(st.integers(0, 4)), code, customer, column(st.integers(-1, len(PAYMENT_METHODS) - 1)))


@given(fr=_frames(), chunk=st.integers(1, 12), block=st.integers(1, 16))
@example(  # one customer heavier than a range, then two in one range, then groups with no session event
    fr=_frame([3, 1, 2, 0, 0, 1, 1, 2], [2, 0, 2, 0, 2, 0, 3, 9], [5, 5, 5, 7, 7, 8, 8, 40]), chunk=2, block=3
)
@example(  # four busy customers then sixteen with one event each: ranges spaced evenly over them would not do
    fr=_frame(list(range(40)), [0, 2, 3, 2, 0, 2] * 4 + [0] * 16, [*np.repeat(range(4), 6).tolist(), *range(4, 20)]),
    chunk=14,
    block=32,
)
def test_sessions_are_one_global_sorts_however_the_ranges_fall(fr, chunk, block):
    """Whatever the range and block sizes, and however unevenly the events fall on customers: the ranges hold
    their rows in order, there are no more of them than ceil(events / SESSION_CHUNK), and each holds fewer than
    SESSION_CHUNK events besides its first group of customers' (placed by event counts, not evenly over the
    customers' indices); and the sessions are those of one global sort, in the same order."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_module, "SESSION_CHUNK", chunk)
        mp.setattr(report_module, "SESSION_BLOCK", block)
        ranges = report_module._customer_ranges(fr)
        chunked = report_module.sessions(fr)
    customers = _ranges_hold_their_rows_in_order(fr, ranges)
    total = int((fr.code <= report_module._ORDER).sum())
    assert len(ranges) <= max(1, -(-total // chunk))
    if total:
        width = -(-(int(fr.customer.max()) - int(fr.customer.min()) + 1) // block)  # customers per counted group
        for c in customers:
            group = (c - fr.customer.min()) // width
            assert c.size - int((group == group.min()).sum()) < chunk
    _same_sessions(chunked, _one_sort(fr))


def test_marked_deviations_allow_for_how_many_statistics_the_report_compares():
    """With one statistic a deviation is marked beyond 3 standard errors; with many, beyond the level chance alone
    exceeds in one report in a hundred (3.64 for 37), so a 3.2 one is not marked and a 4.0 one is."""
    from generator.report import Row, Section, Summary, flag_level, flagged

    def summary(zs: list[float]) -> Summary:
        rows = [Row(f"r{i}", 0.5 + z * 0.005, 0.5, "share", n=10_000) for i, z in enumerate(zs)]
        return Summary(["r"], 1, 0, 1, "s", [], [Section("k", "t", rows, [], None)])

    assert flag_level(summary([0.0])) == 3.0
    many = summary([3.2, 4.0] + [0.0] * 35)
    level = flag_level(many)
    assert level == pytest.approx(3.642, abs=0.01)
    rows = many.sections[0].rows
    assert [flagged(r, level) for r in rows[:2]] == [False, True]
    assert flagged(rows[0])  # against the single-statistic level


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(300, 5_000))
def test_a_median_over_a_nights_gap_is_judged_by_the_share_delivered(seed, n):
    """Deliveries in daytime rounds: transit 7 or 8 days plus a time between 08:24 and 18:00, each day half the
    parcels, so the law's median sits at the night's gap and a sample median lands on either side of it, 0.6 days
    apart. The row's z is the share delivered by the target against a half (Greenwood): within 5, where the
    median's own density would put it dozens of standard errors out."""
    r = np.random.default_rng(seed)

    def law(at: np.ndarray) -> np.ndarray:
        return at + ((7 + r.integers(0, 2, at.size)) + r.uniform(0.35, 0.75, at.size)) * HOUR * 24

    shipped = np.zeros(n, np.int64)
    delivered = law(shipped).astype(np.int64)
    row = report_module._transit_row("median", shipped, delivered, int(delivered.max()) + 1, law)
    assert row.value is not None and row.se is not None
    assert abs(row.value - row.target) <= 5 * row.se + 1e-9, (row.value, row.target, row.se)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=st.floats(0.05, 0.95))
def test_a_share_of_customers_repeated_payments_has_a_clustered_error(seed, p):
    """A method's share of authorised payments: with one payment per customer the error is the binomial's (the
    data's residuals, or the model's sqrt(p(1 - p)/n) where they fall below it); when each customer pays k times
    with its own usual method it is sqrt(k) times the error that treats the payments as independent (exactly, on
    the same data), and never more than that; never below the binomial's."""
    r = np.random.default_rng(seed)

    def binomial(n: int) -> float:
        return math.sqrt(p * (1 - p) / n)

    once = np.arange(4_000)
    hit = r.random(once.size) < p
    sel = np.ones(once.size, bool)
    se = report_module._customer_clustered_se(once, sel, hit, p)
    assert se == pytest.approx(max(np.sqrt(((hit - p) ** 2).sum()) / once.size, binomial(once.size)))
    loyal = np.repeat(np.arange(1_000), 4)
    same = np.repeat(r.random(1_000) < p, 4)  # each customer always its own method
    clustered = report_module._customer_clustered_se(loyal, np.ones(loyal.size, bool), same, p)
    independent = np.sqrt(((same - p) ** 2).sum()) / loyal.size
    assert clustered == pytest.approx(max(2 * independent, binomial(loyal.size)))
    # whatever the payments, never above sqrt(k) times the independent error (Cauchy-Schwarz), the loyal case's
    fickle = r.random(loyal.size) < p  # each payment its own draw
    mixed = report_module._customer_clustered_se(loyal, np.ones(loyal.size, bool), fickle, p)
    assert mixed <= max(2 * np.sqrt(((fickle - p) ** 2).sum()) / loyal.size, binomial(loyal.size)) * (1 + 1e-12)
    # a selection drops the unselected payments, customers and all
    half = loyal < 500
    assert report_module._customer_clustered_se(loyal, half, same, p) == pytest.approx(
        max(2 * np.sqrt(((same[half] - p) ** 2).sum()) / half.sum(), binomial(int(half.sum())))
    )
    # a small sample that strays from p by chance: every payment a miss; the residuals alone give p/sqrt(n), below
    # the binomial's for p < 1/2
    miss = np.zeros(32, bool)
    assert report_module._customer_clustered_se(np.arange(32), np.ones(32, bool), miss, p) == pytest.approx(
        max(p / math.sqrt(32), binomial(32))
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), median=st.floats(40, 400), sigma=st.floats(0.2, 1.0))
@example(seed=1, median=50.25, sigma=0.3)  # the plain median is 50 or 51, a dozen of its errors from 50.25
def test_a_quantile_of_whole_milliseconds_is_judged_without_its_rounding(seed, median, sigma):
    """Latencies are whole ms: on a million events the sample median sits up to half a ms from the law's, which
    can be many of its standard errors. The row judges the median interpolated within its 1 ms class
    (`_whole_ms_quantile`): its z stays within 5 on the law itself, and a law 12 errors off is still caught (8 was
    caught at z 4.75 once: the sample itself strays by a few errors)."""
    r = np.random.default_rng(seed)
    n = 1_000_000
    x = median * np.exp(sigma * r.standard_normal(n))
    se = math.sqrt(0.25 / n) * median * sigma * math.sqrt(2 * math.pi)  # over the lognormal's density there
    for shift, within in ((0.0, True), (12 * se, False)):
        v = np.rint(x + shift)
        row = report_module.Row(
            "median", float(np.median(v)), median, "ms", n, se=se, estimate=report_module._whole_ms_quantile(v, 0.5)
        )
        assert row.z is not None
        assert (abs(row.z) <= 5) == within, (shift, row.value, row.estimate, row.z)
