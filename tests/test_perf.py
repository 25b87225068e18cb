"""The benchmark harness and the naive baseline run (tiny sizes) and produce what they promise; no timings are
asserted here: speed is measured by perf/, not by tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from generator.schema import arrow_schema

PERF = Path(__file__).resolve().parents[1] / "perf"


def test_the_naive_baseline_writes_the_same_schema(tmp_path):
    out = tmp_path / "naive.parquet"
    done = subprocess.run(
        [sys.executable, str(PERF / "baselines" / "naive_faker.py"), "--events", "3000", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.schema.equals(arrow_schema()) and table.num_rows == 3000
    assert json.loads(done.stdout)["events"] == 3000


@pytest.mark.slow
def test_the_harness_writes_results_markdown_and_chart(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(PERF / "bench.py"),
            "--quick",
            "--events",
            "20000",
            "--max-workers",
            "2",
            "--naive-events",
            "2000",
            "--repeat",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["workers"] for r in results["runs"]] == [1, 2]
    assert results["repeat"] == 2
    assert all(r["fixed_seconds"] > 0 for r in results["runs"])
    assert "best of 2" in (tmp_path / "results.md").read_text()
    assert results["one_cpu_events_per_second"] > 0
    w1 = results["runs"][0]
    assert w1["scaling_efficiency"] == round(w1["events_per_second"] / results["one_cpu_events_per_second"], 3)
    for key in (
        "ceiling_events_per_second",
        "naive_events_per_second",
        "one_worker_vs_ceiling",
        "one_worker_vs_naive",
        "one_worker_cpu_seconds",
        "one_cpu_vs_ceiling",
        "one_cpu_vs_naive",
        "one_worker_vs_ceiling_by_cpu",
        "one_worker_vs_naive_by_cpu",
        "naive_events_per_cpu_second",
        "bytes_per_event",
    ):
        assert results[key] > 0, key
    assert {"cpu", "cores", "memory_gib", "python", "pyarrow", "numpy"} <= set(results["machine"])
    assert "| workers | events/s |" in (tmp_path / "results.md").read_text()
    assert "one worker by CPU time:" in (tmp_path / "results.md").read_text()
    assert "one worker confined to one CPU" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_tables_the_shipped_samples_and_prices_instance_types(tmp_path):
    sample = PERF / "results" / "dev-2core-amd-epyc" / "results.json"
    priced = json.loads(sample.read_text())
    faster = json.loads(sample.read_text())
    priced["instance_type"], faster["instance_type"] = "c7g.large", "c7i.2xlarge"
    for r in faster["runs"]:
        r["events_per_second"] *= 4
    paths = []
    for name, doc in (("a", priced), ("b", faster)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(doc))
    done = subprocess.run(
        [sys.executable, str(PERF / "compare.py"), str(sample), *map(str, paths), "--out", str(tmp_path / "cmp")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "cmp" / "compare.md").read_text()
    best = max(r["events_per_second"] for r in priced["runs"])
    expected = round(0.0725 * (100_000_000 / best) / 3600, 4)
    assert "| c7g.large |" in text and str(expected) in text and "n/a" in text
    assert "Cheapest per event:" in text and "Fastest: c7i.2xlarge" in text
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_fetches_results_from_s3(tmp_path, monkeypatch):
    import boto3
    from moto import mock_aws

    sys.path.insert(0, str(PERF))
    import compare

    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    sample = (PERF / "results" / "dev-2core-amd-epyc" / "results.json").read_bytes()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="perf-bucket")
        for kind in ("c7i.2xlarge", "c7g.2xlarge"):
            s3.put_object(Bucket="perf-bucket", Key=f"lake/perf/{kind}/results.json", Body=sample)
        s3.put_object(Bucket="perf-bucket", Key="lake/perf/notes.txt", Body=b"not a result")
        found = compare.fetch("s3://perf-bucket/lake/perf/", tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == [
        "c7g.2xlarge/results.json",
        "c7i.2xlarge/results.json",
    ]
    assert all(p.read_bytes() == sample for p in found)


def test_the_device_script_runs_the_harness_and_keeps_its_log(tmp_path):
    """perf/device.sh as a lent machine would run it, with this interpreter's packages instead of wheels."""
    env = dict(os.environ, PYTHON=sys.executable, SKIP_WHEELS="1", EVENTS="20000", MAX_WORKERS="1", OUT=str(tmp_path))
    done = subprocess.run(["bash", str(PERF / "device.sh")], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["events"] == 20_000 and [r["workers"] for r in results["runs"]] == [1]
    assert results["instance_type"] == "device-16-core"
    log = (tmp_path / "log").read_text()
    assert "pyarrow" in log and "one worker / ceiling" in log
