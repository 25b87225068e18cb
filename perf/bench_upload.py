"""Upload benchmark: against a local S3 server (moto's, on loopback), generation alone vs upload alone vs the
pipelined run, to show that uploads overlap generation.

    python perf/bench_upload.py [--events 5000000] [--workers N] [--quick] [--out perf/out]

Each phase is a whole `gen` process timed from start to exit. The S3 server runs in this process, so on a
small machine it competes with the generator for the same cores: figures are for comparison on one machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from bench_core import byte_compiled
from moto.server import ThreadedMotoServer

BUCKET = "bench-events"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], env: dict) -> tuple[float, dict | None]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    try:
        return seconds, json.loads(done.stdout)
    except json.JSONDecodeError:
        return seconds, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="1,000,000 events")
    ap.add_argument("--out", type=Path, default=Path("perf/out"))
    args = ap.parse_args()
    byte_compiled()
    if args.quick:
        args.events = 1_000_000
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
    ).create_bucket(Bucket=BUCKET)
    gen = [sys.executable, "-m", "generator"]
    common = ["--events", str(args.events), "--workers", str(args.workers), "--json", "--run-id", "bench"]
    s3 = ["--bucket", BUCKET, "--endpoint-url", endpoint]
    try:
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            gen_s, doc = timed([*gen, "run", *common, "--out", f"{tmp}/local", "--quiet"], env)
            up_s, _ = timed(
                [*gen, "upload", "--run-id", "bench", "--out", f"{tmp}/local", *s3, "--prefix", "alone"], env
            )
            pipe_s, _ = timed([*gen, "run", *common, "--out", f"{tmp}/pipe", "--quiet", *s3, "--prefix", "piped"], env)
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        server.stop()
    longer = max(gen_s, up_s)
    results = {
        "events": args.events,
        "workers": args.workers,
        "bytes": doc["bytes"] if doc else None,
        "generation_alone_s": round(gen_s, 3),
        "upload_alone_s": round(up_s, 3),
        "pipelined_s": round(pipe_s, 3),
        "pipelined_vs_longer_phase": round(pipe_s / longer, 3),
        "pipelined_vs_sum": round(pipe_s / (gen_s + up_s), 3),
    }
    (args.out / "upload_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{args.events:,} events, {args.workers} workers, local S3 server (moto) on loopback\n")
    print("| phase | seconds |\n|---|---|")
    print(f"| generation alone (`gen run`) | {gen_s:.2f} |")
    print(f"| upload alone (`gen upload` of the same parts) | {up_s:.2f} |")
    print(f"| pipelined (`gen run --bucket`) | {pipe_s:.2f} |")
    print(
        f"\npipelined / longer phase = {results['pipelined_vs_longer_phase']:.2f} (target <= 1.3); "
        f"pipelined / sum = {results['pipelined_vs_sum']:.2f}"
    )


if __name__ == "__main__":
    main()
