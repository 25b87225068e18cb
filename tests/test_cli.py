"""The `gen` command: bad input exits 2 with one line naming the value and writes nothing; the happy paths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from generator import __version__
from generator.cli import main
from generator.launch import wants_workers
from generator.manifest import FORMAT
from generator.schema import COLUMN_NAMES


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--events", "0"], "--events"),
        (["--events", "-5"], "--events"),
        (["--events", "abc"], "abc"),
        (["--events", "1.5"], "1.5"),
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "many"),
        (["--seed", "-1"], "--seed"),
        (["--start", "yesterday"], "yesterday"),
        (["--start", "2025-13-40"], "2025-13-40"),
        (["--partition-by", "week"], "week"),
        (["--latency-threshold-ms", "-1"], "-1"),
        (["--customers", "0"], "--customers"),
        (["--shard-size", "0"], "--shard-size"),
        (["--shard-size", "99999999999999999999"], "--shard-size: at most"),
        (["--workers", "99999999999999999999"], "--workers: at most"),
        (["--latency-threshold-ms", "99999999999999999999"], "--latency-threshold-ms: at most"),
        (["--start", "0100-01-01"], "0100-01-01"),
        (["--start", "1999-12-31T23:59:59Z", "--dry-run"], "2000-01-01 or later"),
        (["--run-id", "../escape"], "../escape"),
        (["--run-id=-x"], "--run-id: a letter or digit, then letters, digits"),
        (["--run-id", "."], "a letter or digit, then"),
        (["--run-id", ".."], "a letter or digit, then"),
        (["--run-id", ""], "--run-id: empty"),
        (["--out", ""], "--out: empty"),
        (["--customers", "1000000001"], "1000000001"),
        (["--start", "9999-12-31T23:00:00Z"], "9999-12-31T23:00:00Z"),
        (["--events", "1000000000", "--customers", "1"], "--events"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, named):
    out = tmp_path / "out"
    code = main(["run", "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("gen: error:"), err
    assert named in err
    assert "Traceback" not in err
    assert not out.exists()


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for out in (blocker, blocker / "below"):
        assert main(["run", "--out", str(out), "--events", "10", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and err.count("\n") == 1
    assert blocker.read_text() == "not a directory"


def test_existing_run_id_is_refused_and_kept(tmp_path, capsys):
    args = ["run", "--out", str(tmp_path), "--events", "500", "--customers", "2000", "--run-id", "x", "--quiet"]
    assert main(args) == 0
    before = (tmp_path / "_manifests" / "x.json").read_bytes()
    assert main(args) == 2
    assert "already committed" in capsys.readouterr().err
    assert (tmp_path / "_manifests" / "x.json").read_bytes() == before


def test_json_summary_and_validate(tmp_path, capsys):
    code = main(
        [
            "run",
            "--out",
            str(tmp_path),
            "--events",
            "3000",
            "--customers",
            "5000",
            "--workers",
            "2",
            "--shard-size",
            "1000",
            "--json",
            "--run-id",
            "j",
        ]
    )
    assert code == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["events"] == 3000 and summary["run_id"] == "j" and summary["parts"] >= 3
    assert sum(summary["counts_by_type"].values()) == 3000
    assert main(["validate", str(tmp_path)]) == 0
    assert "violations" not in capsys.readouterr().out
    assert main(["validate", str(tmp_path), "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["violations"] == 0 and doc["runs"] == ["j"] and doc["rows"] == 3000
    assert len(doc["rules"]) > 30 and all(r["violations"] == 0 and r["example"] is None for r in doc["rules"])
    assert {"schema", "event_id unique", "session events in funnel order"} <= {r["rule"] for r in doc["rules"]}


@pytest.mark.parametrize("damage", ["appended", "truncated"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_part_that_is_no_longer_parquet_is_a_violation_not_a_crash(tmp_path, capsys, damage, workers):
    """A part cut short or written past its end does not open as Parquet: `gen validate` reports it under its
    own rule (exit 1, the other runs' rules still checked; the run's counts short by its rows alone are not
    violations again), `gen report` refuses with one line naming the part."""
    args = ["run", "--out", str(tmp_path), "--events", "3000", "--customers", "2000", "--quiet", "--shard-size"]
    assert main([*args, "1000"]) == 0
    part = sorted((tmp_path / "events").rglob("*.parquet"))[0]
    if damage == "appended":
        part.write_bytes(part.read_bytes() + b"x")
    else:
        part.write_bytes(part.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["validate", str(tmp_path), "--workers", workers]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    row = next(line for line in captured.out.splitlines() if "parts read as Parquet" in line)
    assert "1 violations" in row, row
    assert "part sha256 matches manifest" in captured.out and "validation failed" in captured.err
    # The part's rows are not counted again as missing from the run's counts (4,635 violations before).
    for rule in ("counts by type match manifest", "total events match manifest"):
        line = next(line for line in captured.out.splitlines() if rule in line)
        assert line.rstrip(" │").endswith("ok"), line
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{part}: part of run" in err and "does not read as Parquet" in err, err


SEQUENCE_RULES = (
    "session events in funnel order",
    "a checkout follows an add to cart in its session",
    "total_amount fixed from CHECKOUT_STARTED to ORDER_PLACED",
    "order stages in time order",
)


def _rule_line(out: str, rule: str) -> str:
    return next(line for line in out.splitlines() if rule in line)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_part_is_one_violation_not_a_cascade(tmp_path, capsys, workers):
    """A part deleted from a committed run is one violation. The sessions and orders of its shard's customers
    that reach into its other parts are incomplete, not wrong: `gen validate` leaves those events out of the
    session and order rules and says how many; the other shards' sessions are still held to the rules (a part of
    another shard with its first row cut off is caught)."""
    args = ["run", "--out", str(tmp_path), "--events", "6000", "--customers", "3000", "--quiet", "--shard-size"]
    assert main([*args, "2000", "--run-id", "m"]) == 0
    doc = orjson.loads((tmp_path / "_manifests" / "m.json").read_bytes())
    by_shard: dict[int, list[dict]] = {}
    for p in doc["parts"]:
        by_shard.setdefault(p["shard"], []).append(p)
    shard, parts = next((s, ps) for s, ps in sorted(by_shard.items()) if len(ps) > 1)
    gone = max(parts, key=lambda p: p["rows"])
    (tmp_path / gone["path"]).unlink()
    capsys.readouterr()
    assert main(["validate", str(tmp_path), "--workers", workers]) == 1
    captured = capsys.readouterr()
    assert "gen: validation failed: 1 violations" in captured.err, captured.out
    assert "1 violations" in _rule_line(captured.out, "parts listed in the manifest exist")
    for rule in SEQUENCE_RULES:
        assert _rule_line(captured.out, rule).rstrip(" │").endswith("ok"), captured.out
    left = sum(p["rows"] for p in parts) - gone["rows"]
    assert f"not checked against the session and order rules: {left:,} events" in captured.out, captured.out
    assert main(["validate", str(tmp_path), "--workers", workers, "--json"]) == 1
    captured = capsys.readouterr()
    doc = orjson.loads(captured.out)
    assert captured.err == "gen: validation failed: 1 violations\n"
    assert not doc["ok"] and doc["violations"] == 1 and doc["unchecked_sequence_events"] == left
    bad = [r for r in doc["rules"] if r["violations"]]
    assert bad == [{"rule": "parts listed in the manifest exist", "violations": 1, "example": gone["path"]}]

    # Another shard's part loses its first rows (sessions begun with OPEN): those are still violations.
    import pyarrow.parquet as pq

    other = next(p for s, ps in sorted(by_shard.items()) if s != shard for p in ps if p["rows"] > 10)
    path = tmp_path / other["path"]
    pq.write_table(pq.read_table(path).slice(5), path)
    assert main(["validate", str(tmp_path), "--workers", workers]) == 1
    captured = capsys.readouterr()
    assert "violations" in _rule_line(captured.out, "session events in funnel order"), captured.out
    assert f"{left:,} events" in captured.out


def test_unwritable_html_report_is_refused_before_reading(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "o"), "--events", "800", "--customers", "2000", "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "file").write_text("not a folder")
    for html in ("", str(tmp_path / "file" / "r.html"), str(tmp_path)):
        assert main(["report", str(tmp_path / "o"), "--html", html]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1 and "--html: cannot write" in captured.err
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_a_directory_the_file_system_refuses_is_bad_input(tmp_path, capsys):
    """/proc passes the permission bits' check (as root) but refuses to create anything in it."""
    assert main(["run", "--out", "/proc/gen-out", "--events", "100", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out: cannot write to '/proc/gen-out'" in err, err
    assert main(["run", "--out", str(tmp_path / "o"), "--events", "800", "--customers", "2000", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "o"), "--html", "/proc/gen-report.html"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--html: cannot" in err and "Traceback" not in err, err


def test_validate_fails_on_a_tampered_part(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--events", "800", "--customers", "2000", "--quiet"]) == 0
    part = next((tmp_path / "events").rglob("*.parquet"))
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    assert main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "sha256" in captured.out and "validation failed" in captured.err


def test_validate_whose_worker_died_fails_with_one_line(tmp_path, capsys, monkeypatch):
    from generator import validate

    def died(*args):
        raise validate.WorkerDied("a worker process died (terminated abruptly)")

    monkeypatch.setattr(validate, "validate", died)
    assert main(["validate", str(tmp_path), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "gen: validation failed: a worker process died" in err and "Traceback" not in err
    assert err.count("\n") == 1, err


def test_validate_refuses_a_foreign_manifest(tmp_path, capsys):
    (tmp_path / "_manifests").mkdir()
    (tmp_path / "_manifests" / "x.json").write_text('{"hello": "world"}')
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"not a manifest of this generator (expected format {FORMAT!r}, got no format field)" in err, err
    (tmp_path / "_manifests" / "x.json").write_text('{"format": "temu-ng-events/1"}')
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(expected format {FORMAT!r}, got format 'temu-ng-events/1')" in err, err
    assert main(["validate", str(tmp_path / "empty")]) == 2


def test_schema_json_lists_the_sixteen_columns(capsys):
    assert main(["schema", "--json"]) == 0
    cols = orjson.loads(capsys.readouterr().out)
    assert len(cols) == 16 and cols[0]["type"] == "uuid" and cols[1]["type"] == "timestamp[us, tz=UTC]"
    assert main(["schema"]) == 0
    assert "tz=UTC]" in capsys.readouterr().out, "type shown in full, not eaten as markup"


def test_schema_spark_is_one_ddl_line_and_the_forms_exclude_each_other(capsys):
    assert main(["schema", "--spark"]) == 0
    ddl = capsys.readouterr().out
    assert ddl.count("\n") == 1
    columns = [c.split(" ", 1) for c in ddl.strip().split(", ")]
    assert [n for n, _ in columns] == list(COLUMN_NAMES)
    types = dict(columns)
    assert types["event_id"] == "BINARY", "Spark reads the UUID as its 16 bytes"
    assert (types["event_ts"], types["latency_ms"], types["total_amount"]) == ("TIMESTAMP", "INT", "DECIMAL(12,2)")
    assert main(["schema", "--glue", "--spark"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "gen: error: --spark: choose one of --json, --glue, --spark and --athena, not --glue and --spark"
    ]


def test_schema_table_shows_a_condition_as_one_phrase(monkeypatch, capsys):
    """A column set on a condition rather than on event types (error_code) shows the condition as written, not
    split into its characters; columns set on event types list them."""
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr("generator.cli.out_console", Console(file=screen, width=400, color_system=None))
    assert main(["schema"]) == 0
    rows = {line.split("│")[2].strip(): [c.strip() for c in line.split("│")[1:-1]] for line in _table_rows(screen)}
    assert rows["error_code"][4] == "latency_ms > the run's latency threshold", rows["error_code"]
    assert rows["payment_method"][4] == "PAYMENT_AUTHORIZED, ORDER_PLACED"
    assert rows["event_id"][4] == "all"


def _table_rows(screen) -> list[str]:
    return [line for line in screen.getvalue().splitlines() if line.startswith("│")]


def test_plain_log_lines_when_not_a_terminal(tmp_path):
    """Off a terminal a log line is never wrapped, however long (a long run id, a deep --out), and the summary
    table's title holds the whole run id."""
    run_id = "a-run-id-long-enough-that-eighty-columns-would-wrap-the-lines-x"
    out = tmp_path / ("deep-" * 12)
    args = ["run", "--out", str(out), "--events", "2000", "--customers", "3000", "--workers", "1", "--run-id", run_id]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "generator", *args, "--shard-size", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("gen: ") for line in done.stderr.splitlines()), done.stderr
    assert f"gen: run {run_id}: 2,000 events in 1 shard on 1 worker\n" in done.stderr
    assert f"run {run_id}\n" in done.stdout, "the summary's title on one line"
    lines = done.stdout.splitlines()
    assert any(re.match(r"\d+ parts?, .* events/s in .*; window \S+ \.\. \S+$", line) for line in lines), done.stdout
    assert f"manifest: {out}/_manifests/{run_id}.json" in lines
    assert "\x1b[" not in done.stderr and "\x1b[" not in done.stdout, "no control codes off a terminal"
    assert "gen: 2,000/2,000 events (100%)" in done.stderr
    doc = json.loads(next((out / "_manifests").glob("*.json")).read_text())
    assert f"gen: the run ends at {doc['window']['end']}; writing 2,000 events" in done.stderr, (
        "end known, then written"
    )
    assert "ORDER_PLACED" in done.stdout and "manifest:" in done.stdout


def test_dry_run_checks_options_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "--out", str(out), "--events", "500000", "--workers", "8", "--bucket", "my-events", "--dry-run"]
    assert main(args) == 0
    plan = orjson.loads(capsys.readouterr().out)
    assert plan["shards"] == 10 and plan["workers"] == 8 and plan["bucket"] == "my-events"
    assert not out.exists()
    assert main([*args[:-3], "--bucket", "Bad_Name", "--dry-run"]) == 2


@pytest.mark.parametrize("size", [{"events": 6_000}, {"events": None, "duration_us": 3_600_000_000}])
def test_the_live_dashboard_follows_both_steps_of_a_run(tmp_path, size):
    """On a terminal: shards simulated (runs of exactly N events), then where the run ends and the writing, per
    worker, up to every event the run wrote."""
    import io

    from rich.console import Console

    from generator.coordinator import run
    from generator.dashboard import LiveDashboard

    from .conftest import small_config

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    board = LiveDashboard(console)
    try:
        doc = run(small_config(tmp_path, workers=2, **size), board).manifest
    finally:
        board.close()
    text = screen.getvalue()
    assert f"ends at {doc['window']['end']}" in text
    assert f"{doc['events']:,}/{doc['events']:,}" in text, "the bar ends at the run's own count, in thousands"
    assert ("simulating" in text) == (size["events"] is not None)
    assert "worker" in text and "written" in text


@pytest.mark.parametrize(
    ("argv", "cpus", "bucket_env", "expected"),
    [
        (["run"], 8, "", True),  # one worker per CPU by default
        (["run"], 1, "", False),
        (["run", "--workers", "1"], 8, "", False),  # generated in the coordinator itself
        (["run", "--workers=1"], 8, "", False),
        (["run", "--workers", "4", "--events", "10"], 1, "", True),
        (["run", "--workers", "1", "--bucket", "b"], 8, "", True),  # uploads keep generation in a worker
        (["run", "--workers", "1"], 8, "b", True),
        (["run", "--dry-run"], 8, "", False),
        (["run", "--help"], 8, "", False),
        (["validate", "shards"], 8, "", True),  # runs checked a shard per worker
        (["validate", "shards", "--workers", "1"], 8, "", False),
        (["validate", "shards", "--all", "--workers", "1"], 8, "", False),
        (["validate", "shards", "--all"], 8, "", True),
        (["validate", "shards"], 8, "b", True),
        (["schema"], 8, "", False),
        ([], 8, "", False),
    ],
)
def test_the_worker_server_starts_early_only_for_runs_with_workers(monkeypatch, argv, cpus, bucket_env, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))  # the CPUs it may use
    monkeypatch.setenv("GEN_BUCKET", bucket_env)
    assert wants_workers(argv) is expected


def test_gen_starts_its_worker_server_before_the_cli_imports(tmp_path):
    """The console entry point has the forkserver importing the generator while the coordinator imports its own
    modules, and the run commits."""
    code = (
        "import sys\n"
        "import generator.launch as launch\n"
        "started = []\n"
        "real = launch.start_worker_server\n"
        "def spy():\n"
        "    started.append('generator.cli' in sys.modules)\n"
        "    real()\n"
        "launch.start_worker_server = spy\n"
        f"sys.argv = ['gen', 'run', '--workers', '2', '--events', '3000', '--out', {str(tmp_path)!r}, '--quiet']\n"
        "try:\n"
        "    launch.entry()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert started[:1] == [False], started  # the first start; pools only find it running later\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "_manifests").glob("*.json"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--athena", "http://bucket/x"], "--athena: an s3://BUCKET/PREFIX/ location, got 'http://bucket/x'"),
        (["--athena", "s3://Bad_Bucket/x"], "--athena: not a valid S3 bucket name: 'Bad_Bucket'"),
        (["--athena", "s3://b-1/x", "--database", "Temu-NG"], "--database: lower-case letters, digits and '_'"),
        (["--database", "x"], "--database: goes with --athena"),
        (["--athena", "s3://b-1/x", "--spark"], "--athena: choose one of --json, --glue, --spark and --athena"),
    ],
)
def test_bad_athena_locations_exit_2_with_one_line(capsys, args, said):
    assert main(["schema", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and said in captured.err, captured.err


def test_athena_ddl_for_a_bucket_without_prefix(capsys):
    assert main(["schema", "--athena", "s3://events-1"]) == 0
    out = capsys.readouterr().out
    assert "LOCATION 's3://events-1/events/'" in out and "LOCATION 's3://events-1/committed/'" in out
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `events_committed` (" in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--events", ""], "--events: empty"),
        (["--duration", ""], "--duration: empty"),
        (["--duration="], "--duration: empty"),
        (["--workers="], "--workers: empty"),
        (["--seed="], "--seed: empty"),
        (["--start="], "--start: empty"),
        (["--partition-by="], "--partition-by: empty"),
        (["--scenario="], "--scenario: empty"),
        (["--latency-threshold-ms="], "--latency-threshold-ms: empty"),
        (["--customers="], "--customers: empty"),
        (["--shard-size="], "--shard-size: empty"),
        (["--bucket", ""], "--bucket: empty"),
        (["--bucket", "b-1", "--prefix="], "--prefix: empty"),
        (["--bucket", "b-1", "--endpoint-url="], "--endpoint-url: empty"),
        (["--bucket", "b-1", "--region="], "--region: empty"),
        (["--no-keep-local"], "--no-keep-local: needs --bucket"),
        (["--prefix", "lake"], "--prefix: needs --bucket"),
        (["--endpoint-url", "http://127.0.0.1:9000"], "--endpoint-url: needs --bucket"),
        (["--region", "eu-west-1"], "--region: needs --bucket"),
        (["--bucket", "b-1", "--endpoint-url", "notaurl"], "(such as http://127.0.0.1:9000), got 'notaurl'"),
    ],
)
def test_an_empty_value_is_refused_not_read_as_left_out(tmp_path, capsys, monkeypatch, args, said):
    """An empty value (an unset shell variable) is bad input, as are S3 options without a bucket; checked before
    anything is planned, so --dry-run refuses them too."""
    monkeypatch.delenv("GEN_BUCKET", raising=False)
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "--quiet", "--dry-run", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("gen: error: ")
    assert said in captured.err, captured.err
    assert "Traceback" not in captured.err and "Invalid endpoint" not in captured.err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["validate", ""], "OUT: empty"),
        (["validate", "shards", "--run-id="], "--run-id: empty"),
        (["validate", "shards", "--workers="], "--workers: empty"),
        (["runs", ""], "OUT: empty"),
        (["report", ""], "OUT: empty"),
        (["report", "shards", "--run-id", ""], "--run-id: empty"),
        (["upload", "--run-id", ""], "--run-id: empty"),
        (["upload", "--run-id", "x", "--out="], "--out: empty"),
        (["pull", "--bucket", ""], "--bucket: empty"),
        (["scenario", "show", "--scenario="], "--scenario: empty"),
        (["schema", "--athena="], "--athena: empty"),
        (["schema", "--athena", "s3://b-1/x", "--database="], "--database: empty"),
    ],
)
def test_every_command_refuses_an_empty_value(capsys, argv, said):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and said in captured.err, captured.err


def test_an_empty_environment_variable_counts_as_unset(tmp_path, capsys, monkeypatch):
    """GEN_BUCKET= keeps the run local, as click reads environment variables; S3 settings from the environment
    without a bucket are for runs that upload, and ignored by one that does not."""
    monkeypatch.setenv("GEN_BUCKET", "")
    monkeypatch.setenv("GEN_PREFIX", "lake")
    monkeypatch.setenv("GEN_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert main(["run", "--out", str(tmp_path / "o"), "--events", "100", "--dry-run"]) == 0
    plan = orjson.loads(capsys.readouterr().out)
    assert plan["bucket"] is None and plan["prefix"] is None


def test_bare_gen_prints_help_without_an_empty_error(capsys):
    """`gen` and `gen scenario` alone print their help and exit 2, as typer's (click 8.2's) own do, with no error
    line; -h is --help, and --version names the command and its version."""
    for argv in ([], ["scenario"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "Usage: gen" in captured.out and captured.err == "", captured.err
    for argv in (["-h"], ["run", "-h"], ["scenario", "show", "-h"]):
        assert main(argv) == 0
        assert "Usage: gen" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"gen {__version__}\n"
    assert not wants_workers(["run", "-h"])


def test_off_a_terminal_help_and_tables_are_not_cut(tmp_path, capsys, monkeypatch):
    """With stdout a pipe (and COLUMNS unset), help and tables are laid out WIDE: no option, column name or type
    cut short, no run id split over lines."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["run", "--help"]) == 0
    assert "--latency-threshold-ms " in capsys.readouterr().out
    assert main(["schema"]) == 0
    rows = {line.split("│")[2].strip(): line for line in capsys.readouterr().out.splitlines() if "│" in line}
    assert "payment_method" in rows and "decimal128(12, 2)" in rows["total_amount"], rows.get("total_amount")
    run_id = "a-run-id-long-enough-that-a-narrow-table-would-fold-it"
    args = ["run", "--out", str(tmp_path), "--events", "800", "--customers", "2000", "--quiet", "--run-id", run_id]
    assert main(args) == 0
    assert main(["runs", str(tmp_path)]) == 0
    assert f"│ {run_id} │" in capsys.readouterr().out
    part = sorted((tmp_path / "events").rglob("*.parquet"))[-1]
    part.write_bytes(part.read_bytes() + b"x")
    assert main(["validate", str(tmp_path), "--workers", "1"]) == 1
    assert str(part.relative_to(tmp_path)) in capsys.readouterr().out, "the broken part named in full"


def test_on_a_terminal_lines_wrap_as_before():
    import io

    from generator.cli import Screen

    screen = io.StringIO()
    console = Screen(file=screen, force_terminal=True, width=40, color_system=None)
    console.print("word " * 20, highlight=False)
    assert max(len(line) for line in screen.getvalue().splitlines()) <= 40
    piped = io.StringIO()
    Screen(file=piped).print("word " * 60, highlight=False)
    assert piped.getvalue().count("\n") == 1


def test_progress_off_a_terminal_never_passes_100_percent():
    """A run sized by time writes about the events it expected: the shown total grows with the count (99% at
    most until the last shard is written, then the count itself and 100%)."""
    import io

    from rich.console import Console

    from generator.coordinator import RunPlan
    from generator.dashboard import LogLines
    from generator.parts import ShardResult

    screen = io.StringIO()
    lines = LogLines(Console(file=screen, width=400), every=0.0)
    lines.started(RunPlan("r", shards=(0, 1, 2), workers=1, events=100, by_time=True))
    lines.writing(100, 0, exact=False)
    for shard, rows in enumerate((60, 50, 10)):
        lines.shard_done(ShardResult(shard, 1, rows, 1000, (), (), 0.1, 0))
    progress = [line for line in screen.getvalue().splitlines() if " events (" in line]
    assert [line.split(",", 1)[0] for line in progress] == ["gen: 60/100 events (60%)", "gen: 110/110 events (99%)",
                                                            "gen: 120/120 events (100%)"]  # fmt: skip


def test_the_upload_summary_counts_parts_apart_from_the_state():
    from generator.cli import _uploaded

    doc = {"s3": {"checksums": {"events/dt=2025-11-01/a.parquet": "x", "events/dt=2025-11-02/b.parquet": "y"}}}
    doc["s3"]["checksums"]["_state/r.parquet"] = "z"
    assert _uploaded(doc) == "2 parts, the state and the manifest"
    doc["s3"]["checksums"]["_faults/r.parquet"] = "w"
    assert _uploaded(doc) == "2 parts, the state, the list of injected faults and the manifest"


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ("[population]\ncustomers = true\n", "population.customers: expected a whole number, got true (a boolean)"),
        (
            '[[incidents]]\nkind = "payment_outage"\nstart = 09:00:00\nend = 2025-11-01T10:00:00\n',
            "incidents[0].start: expected an ISO 8601 date-time (UTC when no offset), got 09:00:00 (a time of day)",
        ),
    ],
)
def test_scenario_errors_show_values_as_toml_writes_them(tmp_path, capsys, toml, said):
    path = tmp_path / "s.toml"
    path.write_text(toml)
    assert main(["scenario", "show", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "datetime" not in err and "True" not in err, err
