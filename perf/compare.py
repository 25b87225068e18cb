"""Compare instance types from several benchmark results (one results.json per machine) and recommend one.

    python perf/compare.py [RESULTS.json...] [--from-s3 s3://BUCKET/PREFIX/perf/] [--prices perf/prices.toml]
                           [--out perf/out/compare]

For each machine: its best events/s (over its worker counts), the seconds a 500,000-event run takes at that rate,
and dollars per 100 million events at the on-demand price of its instance type (from prices.toml; a machine with
no known type, such as a development box, gets no price). The recommendation is the cheapest per event among the
priced machines, with the fastest named beside it. Prints a markdown table and writes compare.md and compare.png.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows(results: list[dict], prices: dict[str, float]) -> list[dict]:
    out = []
    for r in results:
        best = max(r["runs"], key=lambda x: x["events_per_second"])
        rate = best["events_per_second"]
        kind = r.get("instance_type")
        price = prices.get(kind) if kind else None
        out.append(
            {
                "machine": kind or f"{r['machine']['cpu']} ({r['machine']['cores']} cores)",
                "instance_type": kind,
                "workers": best["workers"],
                "events_per_second": rate,
                "seconds_for_500k": round(500_000 / rate, 2),
                "usd_per_hour": price,
                "usd_per_100m_events": round(price * (100_000_000 / rate) / 3600, 4) if price else None,
            }
        )
    return sorted(out, key=lambda x: -x["events_per_second"])


def recommend(table: list[dict]) -> str:
    priced = [t for t in table if t["usd_per_100m_events"] is not None]
    if not priced:
        return "No machine with a known instance type and price: no recommendation (add instance_type to results)."
    cheapest = min(priced, key=lambda t: t["usd_per_100m_events"])
    fastest = max(priced, key=lambda t: t["events_per_second"])
    text = (
        f"Cheapest per event: {cheapest['machine']} at ${cheapest['usd_per_100m_events']} per 100M events "
        f"({cheapest['events_per_second']:,} events/s)."
    )
    if fastest is not cheapest:
        text += (
            f" Fastest: {fastest['machine']} ({fastest['events_per_second']:,} events/s, "
            f"${fastest['usd_per_100m_events']} per 100M events)."
        )
    return text


def markdown(table: list[dict], read_for: dict) -> str:
    lines = [
        "| machine | workers | events/s | s for 500k events | USD/h | USD per 100M events |",
        "|---|---|---|---|---|---|",
    ]
    for t in table:
        price = f"{t['usd_per_hour']}" if t["usd_per_hour"] is not None else "n/a"
        per = f"{t['usd_per_100m_events']}" if t["usd_per_100m_events"] is not None else "n/a"
        rate = f"{t['events_per_second']:,}"
        lines.append(f"| {t['machine']} | {t['workers']} | {rate} | {t['seconds_for_500k']} | {price} | {per} |")
    lines += ["", recommend(table), "", f"Prices: {read_for.get('region')} on-demand, {read_for.get('date')}."]
    return "\n".join(lines) + "\n"


def chart(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.6 * len(table) + 1.5), dpi=110)
    ax.barh([t["machine"] for t in table], [t["events_per_second"] for t in table], color="tab:blue")
    ax.set_xlabel("events / s (best worker count)")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def fetch(url: str, into: Path) -> list[Path]:
    """Download every results.json under an s3://bucket/prefix/ URL (one per instance type) into `into`."""
    import boto3

    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/results.json"):
                target = into / obj["Key"].removeprefix(prefix).lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(target))
                found.append(target)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path)
    ap.add_argument("--from-s3", default="", help="also take every results.json under this s3:// URL")
    ap.add_argument("--prices", type=Path, default=HERE / "prices.toml")
    ap.add_argument("--out", type=Path, default=Path("perf/out/compare"))
    args = ap.parse_args()
    prices = tomllib.loads(args.prices.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    paths = list(args.results) + (fetch(args.from_s3, args.out / "ec2") if args.from_s3 else [])
    if not paths:
        raise SystemExit("compare.py: no results given (paths, or --from-s3 s3://bucket/prefix/perf/)")
    table = rows([json.loads(p.read_text()) for p in paths], prices["usd_per_hour"])
    text = markdown(table, prices.get("read_for", {}))
    (args.out / "compare.md").write_text(text)
    chart(table, args.out / "compare.png")
    print(text)


if __name__ == "__main__":
    main()
