"""The benchmark harness: whole `gen run` processes at 1, 2, 4, ... workers, the naive Faker baseline, and
pyarrow's write ceiling, side by side on one machine, in one invocation.

    python perf/bench.py [--events 5000000] [--max-workers N] [--repeat R] [--out perf/out] [--quick]

Writes results.json (with the machine), results.md and chart.png (events/s against workers, the ceiling and the
baseline as lines) to --out. With --repeat R each measure is the best of R, taken in R rounds over every worker
count (so a noisy spell of a shared machine spreads over all of them). Reports, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_core import byte_compiled, ceiling, machine, whole_run  # noqa: E402

from generator.config import RunConfig  # noqa: E402

# A run this small costs what every run costs whatever its size (start-up, workers, the default population's
# warm start, commit, exit): the part of `seconds` that more workers cannot shorten.
FIXED_EVENTS = 10_000


def worker_counts(max_workers: int) -> list[int]:
    counts, w = [], 1
    while w < max_workers:
        counts.append(w)
        w *= 2
    return [*counts, max_workers]


def naive(events: int, workdir: Path) -> dict:
    """The baseline as a whole process from start to exit, like the `gen run` figures it is compared with."""
    out = workdir / "naive.parquet"
    cmd = [sys.executable, str(HERE / "baselines" / "naive_faker.py"), "--events", str(events), "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return inner | {
        "process_seconds": round(seconds, 3),
        "events_per_second": round(events / seconds),
        "events_per_cpu_second": round(events / cpu),
    }


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot([r["workers"] for r in runs], [r["events_per_second"] for r in runs], "o-", label="gen run (whole process)")
    ax.axhline(results["ceiling_events_per_second"], color="tab:green", ls="--", label="pyarrow write ceiling")
    ax.axhline(results["naive_events_per_second"], color="tab:red", ls=":", label="naive Faker loop")
    ax.set_xlabel("workers")
    ax.set_ylabel("events / s")
    ax.set_xticks([r["workers"] for r in runs])
    ax.set_title(f"{results['events']:,} events on {results['machine']['cpu']} ({results['machine']['cores']} cores)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# Benchmark: {results['events']:,} events"
        + (f", best of {results['repeat']}" if results.get("repeat", 1) > 1 else ""),
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, pyarrow {m['pyarrow']}, "
        f"numpy {m['numpy']}, generator {m['generator']}",
        "",
        "| workers | events/s | per worker | scaling efficiency | seconds | fixed cost | peak RSS per worker |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['workers']} | {r['events_per_second']:,} | {r['events_per_second_per_worker']:,} | "
            f"{r['scaling_efficiency']:.0%} | {r['seconds']:.2f} | {r['fixed_seconds']:.2f} | "
            f"{r['peak_worker_rss_mib']} MiB |"
        )
    lines += [
        "",
        "- pyarrow write ceiling (same rows and writer settings, one file): "
        f"{results['ceiling_events_per_second']:,} events/s",
        f"- naive Faker loop ({results['naive_events']:,} events): {results['naive_events_per_second']:,} events/s",
        f"- one worker / ceiling: {results['one_worker_vs_ceiling']:.2f}; one worker / naive: "
        f"{results['one_worker_vs_naive']:.1f}x",
        *(
            [
                f"- one worker confined to one CPU (its parts written in line): {results['one_cpu_seconds']:.2f} s, "
                f"{results['one_cpu_events_per_second']:,} events/s: {results['one_cpu_vs_ceiling']:.2f} x ceiling, "
                f"{results['one_cpu_vs_naive']:.1f}x naive. Scaling efficiency is measured against this rate: one "
                "worker with more CPUs writes its parts on a second thread",
                f"- one worker by CPU time: {results['one_worker_events_per_cpu_second']:,} events per CPU-second "
                f"({results['one_worker_cpu_seconds']:.2f} CPU-s): {results['one_worker_vs_ceiling_by_cpu']:.2f} x "
                f"ceiling, {results['one_worker_vs_naive_by_cpu']:.1f}x naive by CPU time",
            ]
            if "one_cpu_seconds" in results
            else []
        ),
        f"- bytes per event: {results['bytes_per_event']}",
        f"- fixed cost: the seconds of a {FIXED_EVENTS:,}-event run with as many workers (start-up, workers, warm "
        "start, commit, exit). With T the seconds and F the fixed cost, w workers at best take F_w + (T_1 - F_1) / w, "
        "so scaling efficiency stays under T_1 / (T_1 - F_1 + w F_w): measure scaling with enough events to make F "
        "small",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--naive-events", type=int, default=0, help="events for the naive baseline (default N/25)")
    ap.add_argument("--out", type=Path, default=Path("perf/out"))
    ap.add_argument("--repeat", type=int, default=1, help="best of this many rounds (default 1)")
    ap.add_argument("--quick", action="store_true", help="300,000 events, at most 2 workers: under a minute")
    ap.add_argument("--instance-type", default=None, help="the EC2 instance type measured (for perf/compare.py)")
    args = ap.parse_args()
    byte_compiled()
    if args.quick:
        args.events = min(args.events, 300_000)
        args.max_workers = min(args.max_workers, 2)
    naive_events = args.naive_events or max(args.events // 25, 1000)
    args.out.mkdir(parents=True, exist_ok=True)

    repeat = max(args.repeat, 1)
    rounds: dict[int, list[tuple[float, float, int]]] = {}  # workers -> (seconds, peak RSS, bytes) of each round
    fixed: dict[int, list[float]] = {}  # workers -> seconds of a run of FIXED_EVENTS in each round
    one_cpu: list[float] = []  # seconds of a one-worker run confined to one CPU, in each round
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for _ in range(repeat):
            one_cpu.append(whole_run(args.events, Path(tmp), one_cpu=True).seconds)
            for w in worker_counts(args.max_workers):
                rounds.setdefault(w, []).append(whole_run(args.events, Path(tmp), workers=w))
                fixed.setdefault(w, []).append(whole_run(FIXED_EVENTS, Path(tmp), workers=w).seconds)
        base = min((naive(naive_events, Path(tmp)) for _ in range(repeat)), key=lambda r: r["process_seconds"])
        cfg = RunConfig(events=args.events, workers=1, out=args.out, run_id="bench").gen()
        ceil = ceiling(cfg, Path(tmp), repeat)
    runs = []
    for w, measured in rounds.items():
        seconds = min(m.seconds for m in measured)
        runs.append(
            {
                "workers": w,
                "seconds": round(seconds, 3),
                "events_per_second": round(args.events / seconds),
                "peak_worker_rss_mib": max(m[1] for m in measured),  # the largest of any round
                "bytes": measured[0][2],
                "fixed_seconds": round(min(fixed[w]), 3),
            }
        )
    # Scaling is measured against one worker on one CPU: one worker with the machine to itself also writes its
    # parts on a second thread (`parts.WriteBehind`), so it is not the one-core unit that w workers multiply.
    one = round(args.events / min(one_cpu))
    for r in runs:
        r["events_per_second_per_worker"] = round(r["events_per_second"] / r["workers"])
        r["scaling_efficiency"] = round(r["events_per_second"] / (r["workers"] * one), 3)
    ceiling_rate = round(args.events / ceil["one_file_s"])
    results = {
        "machine": machine(),
        "instance_type": args.instance_type,
        "events": args.events,
        "repeat": repeat,
        "runs": runs,
        "ceiling_events_per_second": ceiling_rate,
        "naive_events": naive_events,
        "naive_events_per_second": base["events_per_second"],
        "one_worker_vs_ceiling": round(runs[0]["events_per_second"] / ceiling_rate, 3),
        "one_worker_vs_naive": round(runs[0]["events_per_second"] / base["events_per_second"], 1),
        "one_cpu_seconds": round(min(one_cpu), 3),
        "one_cpu_events_per_second": one,
        "one_cpu_vs_ceiling": round(one / ceiling_rate, 3),
        "one_cpu_vs_naive": round(one / base["events_per_second"], 1),
        # By CPU time: the one-worker run's events per CPU-second of its process, against the baseline's.
        "one_worker_cpu_seconds": round(min(rounds[1], key=lambda m: m.seconds).cpu_seconds, 3),
        "naive_events_per_cpu_second": base["events_per_cpu_second"],
        "bytes_per_event": round(runs[0]["bytes"] / args.events, 2),
    }
    results["one_worker_events_per_cpu_second"] = round(args.events / results["one_worker_cpu_seconds"])
    results["one_worker_vs_ceiling_by_cpu"] = round(results["one_worker_events_per_cpu_second"] / ceiling_rate, 3)
    results["one_worker_vs_naive_by_cpu"] = round(
        results["one_worker_events_per_cpu_second"] / base["events_per_cpu_second"], 1
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    chart(results, args.out / "chart.png")
    print(markdown(results))
    print(f"written: {args.out / 'results.json'}, {args.out / 'results.md'}, {args.out / 'chart.png'}")


if __name__ == "__main__":
    main()
