"""The `gen` command: thin commands that parse options, build the config, call the library and map the outcome
to an exit code (0 success, 1 a failed run or validation, 2 bad input with one line naming it)."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table
from typer._click.core import ParameterSource
from typer._click.exceptions import NoArgsIsHelpError

from generator import __version__, schema
from generator.config import (
    DEFAULT_PARTITIONING,
    DEFAULT_SEED,
    DEFAULT_START,
    MAX_WORKERS,
    PARTITIONINGS,
    ConfigError,
    RunConfig,
    parse_duration,
    parse_start,
    parse_whole,
    writable,
)
from generator.core.behaviour import default_behaviour
from generator.launch import usable_cpus

app = typer.Typer(
    name="gen",
    help="Synthetic Nigerian e-commerce event logs for Temu's Nigeria launch, written as Parquet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

WIDE = 200  # columns a table may take off a terminal when COLUMNS does not say


class Screen(Console):
    """A rich console that, off a terminal (a pipe, a file, CI's log), never wraps a line, so that a log keeps one
    record a line, and lays tables out COLUMNS wide (else WIDE), so that no name is cut; on a terminal, rich's own."""

    def print(self, *objects, soft_wrap: bool | None = None, **kwargs) -> None:
        if soft_wrap is None and not self.is_terminal and all(isinstance(o, str) for o in objects):
            soft_wrap = True  # a plain line; a table keeps its layout (a centred title)
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(WIDE, size.height)
        return size

    @size.setter
    def size(self, value: tuple[int, int]) -> None:
        Console.size.fset(self, value)


out_console = Screen()
err_console = Screen(stderr=True)


class UserError(Exception):
    """Bad input found after parsing: exit code 2, one line."""


def _given(option: str, what: str, omitted: str | None = None, kind: type = str):
    """The parser of an option whose empty value (an unset shell variable, say) is refused rather than read as
    the option left out: `what` to give instead, and what leaving the option out does. An empty environment
    variable (GEN_BUCKET=) is another matter: it counts as unset, as click reads it, and never reaches here."""

    def parse(text: str | Path):
        if not str(text).strip():
            raise UserError(f"{option}: empty; give {what}" + (f" (or omit {option} {omitted})" if omitted else ""))
        return kind(text)

    return parse


def _directory(option: str, omitted: str = "for ./shards"):
    return _given(option, "a directory", omitted, Path)


_nonempty_run_id = _given("--run-id", "a run id", "for one made of the UTC time")

# The S3 options `run`, `pull` and `upload` share (each also from its environment variable; an empty one counts as
# unset).
Bucket = Annotated[
    str | None, typer.Option(envvar="GEN_BUCKET", help="S3 bucket.", parser=_given("--bucket", "a bucket name"))
]
Prefix = Annotated[
    str | None,
    typer.Option(
        envvar="GEN_PREFIX",
        help="Key prefix in the bucket.",
        parser=_given("--prefix", "a key prefix", "for the bucket's root"),
    ),
]
EndpointUrl = Annotated[
    str | None,
    typer.Option(
        envvar="GEN_ENDPOINT_URL",
        help="S3 endpoint (default: AWS for the region).",
        parser=_given("--endpoint-url", "a URL", "for AWS"),
    ),
]
Region = Annotated[
    str | None,
    typer.Option(
        envvar="GEN_REGION",
        help="AWS region (default: the AWS chain's).",
        parser=_given("--region", "a region", "for the AWS chain's"),
    ),
]


@app.command()
def run(
    ctx: typer.Context,
    events: Annotated[
        str | None,
        typer.Option(
            metavar="INTEGER",
            help="Exactly this many events.",
            show_default="500000",
            parser=_given("--events", "a number of events", "for 500,000"),
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            help="Size the run by time instead: every event of a window this long (1h, 30m, 1d).",
            parser=_given("--duration", "a length such as 1h", "to size the run by --events"),
        ),
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            metavar="INTEGER",
            help="Worker processes.",
            show_default="the CPU count",
            parser=_given("--workers", "a number of workers", "for one per CPU"),
        ),
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(
            metavar="INTEGER",
            help="Seed: the same seed and options give the same bytes.",
            show_default=f"{DEFAULT_SEED}, or the timeline's",
            parser=_given("--seed", "a seed", "for the timeline's or the default"),
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="Start of the window, ISO 8601 (UTC if no offset).",
            show_default=f"where OUT's timeline ends, or {DEFAULT_START}",
            parser=_given("--start", "an ISO 8601 time", f"for where OUT's timeline ends, or {DEFAULT_START}"),
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output root.", metavar="PATH", parser=_directory("--out"))] = Path(
        "shards"
    ),
    scenario: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Scenario file (TOML) over scenarios/default.toml: behaviour, incidents.",
            show_default="the timeline's last, or the default",
            parser=_given("--scenario", "a TOML file", "for the timeline's last or the default", Path),
        ),
    ] = None,
    partition_by: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help=f"Partitioning: {', '.join(PARTITIONINGS)}.",
            show_default=f"{DEFAULT_PARTITIONING}, or the timeline's",
            parser=_given("--partition-by", f"one of {', '.join(PARTITIONINGS)}", "for the timeline's or the default"),
        ),
    ] = None,
    latency_threshold_ms: Annotated[
        str | None,
        typer.Option(
            metavar="INTEGER",
            help="error_code is 'INVALID LATENCY' above this latency.",
            show_default=f"{default_behaviour().latency_threshold_ms}, or the timeline's",
            parser=_given("--latency-threshold-ms", "a number of milliseconds", "for the timeline's or the default"),
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(help="Run id (default: UTC time and a random suffix).", metavar="TEXT", parser=_nonempty_run_id),
    ] = None,
    customers: Annotated[
        str | None,
        typer.Option(
            metavar="INTEGER",
            help="Size of the customer population.",
            show_default=f"{default_behaviour().customers}, or the timeline's",
            parser=_given("--customers", "a number of customers", "for the timeline's or the default"),
        ),
    ] = None,
    shard_size: Annotated[
        str,
        typer.Option(
            metavar="INTEGER",
            help="Events per shard, the unit of work (default: about 50,000 rows per daily part, 50k-200k).",
            parser=_given("--shard-size", "a number of events", "for auto"),
        ),
    ] = "auto",
    bucket: Annotated[
        str | None,
        typer.Option(
            envvar="GEN_BUCKET",
            help="Also upload the run to this S3 bucket (an empty GEN_BUCKET counts as unset).",
            parser=_given("--bucket", "a bucket name", "to keep the run local"),
        ),
    ] = None,
    prefix: Prefix = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    keep_local: Annotated[
        bool, typer.Option("--keep-local/--no-keep-local", help="Keep local parts after a verified upload.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the options and print the plan; generate and write nothing.")
    ] = False,
) -> None:
    """Generate the next window of OUT's timeline; with --bucket, upload it as shards finish.

    Writes Parquet parts under events/, the state the next run continues from under _state/, then the manifest under
    _manifests/. The first run in OUT starts at --start; each later one continues where the last ended. AWS
    credentials come from the standard chain."""
    from generator import timeline
    from generator.coordinator import run as run_generator
    from generator.dashboard import LiveDashboard, LogLines

    if events is not None and duration is not None:
        raise UserError("--duration: give either --events or --duration, not both")
    if not bucket:
        given = _from_command_line(ctx, prefix=prefix, endpoint_url=endpoint_url, region=region)
        if not keep_local and ctx.get_parameter_source("keep_local") is ParameterSource.COMMANDLINE:
            given.insert(0, "--no-keep-local")
        if given:
            raise UserError(f"{given[0]}: needs --bucket (or GEN_BUCKET); without one the run stays local")
        prefix = endpoint_url = region = None  # from the environment: for runs that upload only
    cfg = RunConfig(
        events=None if duration is not None else parse_whole("--events", events or "500000"),
        duration_us=parse_duration(duration) if duration is not None else None,
        workers=parse_whole("--workers", workers) if workers is not None else usable_cpus(),
        seed=parse_whole("--seed", seed) if seed is not None else None,
        start=parse_start(start) if start is not None else None,
        out=out,
        partition_by=partition_by,
        latency_threshold_ms=parse_whole("--latency-threshold-ms", latency_threshold_ms)
        if latency_threshold_ms is not None
        else None,
        run_id=run_id or "",
        customers=parse_whole("--customers", customers) if customers is not None else None,
        shard_size=None if shard_size == "auto" else parse_whole("--shard-size", shard_size),
        scenario=scenario,
    )
    # Conflicts with OUT's timeline, and a damaged one, are refused before anything is written.
    history = timeline.load(out)
    history.state_bytes()
    resolved = cfg.resolve(history.last, history.began)
    if dry_run:
        from generator.core.shard import plan, window_days

        if bucket:
            from generator.uploader import S3Target

            S3Target(bucket, prefix or "", endpoint_url, region)  # the name is checked, S3 not called
        shards = plan(resolved.gen())
        doc = {
            "run_id": resolved.run_id,
            "options": resolved.options(),
            "continues": resolved.previous,
            "shards": len(shards),
            "workers": min(resolved.workers, len(shards)),
            "expected_window_days": round(window_days(resolved.gen()), 3),
            "out": str(cfg.out),
            "bucket": bucket or None,
            "prefix": prefix or None,
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    uploader = _uploader(bucket, prefix, endpoint_url, region) if bucket else None
    if uploader:
        _same_timeline(out, history.runs, uploader)
    listener = None
    if not quiet:
        listener = LiveDashboard(err_console) if err_console.is_terminal else LogLines(err_console)
    try:
        summary = run_generator(cfg, listener, uploader=uploader, keep_local=keep_local)
    except KeyboardInterrupt:
        raise Interrupted(_redo_hint(cfg, uploader)) from None
    except Terminated:
        raise Terminated(_redo_hint(cfg, uploader)) from None
    finally:
        if listener is not None:
            listener.close()
    doc = summary.manifest
    if json:
        brief = {k: doc[k] for k in ("run_id", "events", "bytes", "shards", "window", "counts_by_type")}
        brief |= {
            "parts": len(doc["parts"]),
            "seconds": round(summary.seconds, 3),
            "manifest": str(summary.manifest_path),
        }
        brief["events_per_second"] = round(doc["events"] / max(summary.seconds, 1e-9))
        brief["peak_worker_rss_mib"] = round(summary.peak_worker_rss_kib / 1024, 1)
        if "s3" in doc:
            brief["s3"] = {k: doc["s3"][k] for k in ("bucket", "prefix")} | {"objects": len(doc["s3"]["checksums"])}
            brief["uploaded_bytes"] = summary.uploaded_bytes
        sys.stdout.write(orjson.dumps(brief).decode() + "\n")
    elif not quiet:
        _summary_table(doc, summary.seconds, summary.manifest_path, summary.uploaded_bytes)


def _from_command_line(ctx: typer.Context, **options) -> list[str]:
    """The flags of these options given on the command line (not from the environment), as typed."""
    return [
        f"--{name.replace('_', '-')}"
        for name, value in options.items()
        if value is not None and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]


def _uploader(bucket: str, prefix: str | None, endpoint_url: str | None, region: str | None):
    from generator.uploader import S3Target, Uploader

    uploader = Uploader(S3Target(bucket, prefix or "", endpoint_url, region))
    uploader.preflight()
    return uploader


def _same_timeline(out: Path, runs: list[dict], uploader) -> None:
    """A run with --bucket continues the timeline S3 holds, whole: OUT must hold the same runs (a run S3 lacks
    would leave a gap there that no machine could pull; one OUT lacks would fork it)."""
    try:
        remote = uploader.remote_runs()
    except Exception:
        uploader.close()
        raise
    here = [d["run_id"] for d in runs]
    behind, ahead = remote - set(here), [r for r in here if r not in remote]
    where, url = str(out), uploader.target.url()
    if behind and ahead:
        uploader.close()
        raise UserError(
            f"--bucket: the timeline in {where!r} and the one in {url} went separate ways (run {ahead[0]!r} is only "
            f"here, {sorted(behind)[0]!r} only there); `gen pull` into a fresh --out continues the one in S3"
        )
    if behind:
        uploader.close()
        raise UserError(
            f"--bucket: {url} holds {len(behind)} run(s) that {where!r} lacks (e.g. {sorted(behind)[-1]!r}); run "
            "`gen pull` with the same --out, --bucket and --prefix first, so this run continues that timeline "
            "instead of forking it"
        )
    if ahead:
        uploader.close()
        raise UserError(
            f"--bucket: run(s) {', '.join(repr(r) for r in ahead[:3])} of the timeline in {where!r} are not in {url}; "
            f"upload them first, oldest first (`gen upload --run-id {ahead[0]} --out {where}` with the same "
            "--bucket and --prefix), so the timeline in S3 has no gap"
        )


def _redo_hint(cfg: RunConfig, uploader) -> str:
    if uploader is None:
        return ""
    from generator.manifest import manifest_path

    if manifest_path(cfg.out, cfg.run_id).exists():
        return (
            f"; the run is committed locally: finish the upload with gen upload --run-id {cfg.run_id} --out {cfg.out}"
        )
    return f"; nothing was committed. Redo it with --run-id {cfg.run_id} (same seed and options give the same bytes)"


@app.command()
def pull(
    out: Annotated[
        Path, typer.Option(help="Output root to bring up to date.", metavar="PATH", parser=_directory("--out"))
    ] = Path("shards"),
    bucket: Bucket = None,
    prefix: Prefix = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
) -> None:
    """Bring OUT up to date with the timeline committed in S3, so the next run here continues it.

    Takes the manifests of the runs OUT lacks and the last run's state (the parts stay in S3). On a machine that
    does not hold the timeline, run it before `gen run --bucket`."""
    from generator import timeline

    if not bucket:
        raise UserError("--bucket: required (or GEN_BUCKET)")
    uploader = _uploader(bucket, prefix, endpoint_url, region)
    try:
        with timeline.lock(out):
            try:
                pulled = timeline.pull(out, uploader.remote_runs(), uploader.fetch)
            except OSError as e:  # a full or read-only disk: each file written is whole; pulling again finishes
                from generator.coordinator import RunError

                raise RunError(f"could not write into {str(out)!r}: {e}; run `gen pull` again to finish") from None
    finally:
        uploader.close()
    last = timeline.load(out).last
    where = f"ends at {last['window']['end']} (run {last['run_id']!r})" if last else "is empty"
    out_console.print(
        f"pulled {len(pulled)} run(s) from {uploader.target.url()}; the timeline {where}", highlight=False
    )


@app.command()
def upload(
    run_id: Annotated[
        str, typer.Option(help="The committed local run to upload.", parser=_given("--run-id", "a committed run's id"))
    ],
    out: Annotated[
        Path, typer.Option(help="Output root holding the run.", metavar="PATH", parser=_directory("--out"))
    ] = Path("shards"),
    bucket: Bucket = None,
    prefix: Prefix = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
) -> None:
    """Finish uploading a locally committed run: objects already in S3 with the right checksum are skipped, the
    manifest is written last."""
    from generator.coordinator import upload_committed
    from generator.manifest import ManifestError, manifest_path

    if not bucket:
        raise UserError("--bucket: required (or GEN_BUCKET)")
    if not manifest_path(out, run_id).is_file():
        raise ManifestError(f"--run-id: no committed run {run_id!r} in {str(out)!r}")
    uploader = _uploader(bucket, prefix, endpoint_url, region)
    again = f"; the run is committed locally: run gen upload --run-id {run_id} --out {out} again to finish"
    try:
        doc = upload_committed(out, run_id, uploader)
    except KeyboardInterrupt:
        raise Interrupted(again) from None
    except Terminated:
        raise Terminated(again) from None
    out_console.print(f"uploaded {_uploaded(doc)} to {uploader.target.url()}", highlight=False)


def _uploaded(doc: dict) -> str:
    """What a run's upload put in S3, said as files of each kind: "8 parts, the state and the manifest" (its
    state and list of injected faults are objects too, but no parts)."""
    from generator.dashboard import counted
    from generator.sidecar import FAULTS_DIR
    from generator.timeline import STATE_DIR

    objects = doc["s3"]["checksums"]
    kinds = [counted(sum(not k.startswith((f"{STATE_DIR}/", f"{FAULTS_DIR}/")) for k in objects), "part")]
    kinds += ["the state"] * any(k.startswith(f"{STATE_DIR}/") for k in objects)
    kinds += ["the list of injected faults"] * any(k.startswith(f"{FAULTS_DIR}/") for k in objects)
    return f"{', '.join(kinds)} and the manifest"


def _summary_table(doc: dict, seconds: float, path: Path, uploaded: int = 0) -> None:
    from generator.dashboard import human_bytes

    title = f"run {doc['run_id']}"
    t = Table(title=title, show_footer=True, min_width=len(title))  # the run id on one line
    t.add_column("event type", footer="total")
    t.add_column("events", justify="right", footer=f"{doc['events']:,}")
    t.add_column("share", justify="right", footer="100%")
    for k, v in doc["counts_by_type"].items():
        t.add_row(k, f"{v:,}", f"{100 * v / max(doc['events'], 1):.2f}%")
    out_console.print(t)
    out_console.print(
        f"{len(doc['parts'])} parts, {human_bytes(doc['bytes'])}, {doc['events'] / max(seconds, 1e-9):,.0f} events/s "
        f"in {seconds:.2f} s; window {doc['window']['start']} .. {doc['window']['end']}\n"
        f"manifest: {path}",
        highlight=False,
    )
    if "s3" in doc:
        s3 = doc["s3"]
        where = f"s3://{s3['bucket']}/{s3['prefix'] + '/' if s3['prefix'] else ''}"
        rate = human_bytes(uploaded / max(seconds, 1e-9))
        out_console.print(
            f"uploaded {_uploaded(doc)} ({human_bytes(uploaded)}, {rate}/s over the run) to {where}", highlight=False
        )


@app.command()
def validate(
    out: Annotated[
        Path, typer.Argument(help="Output root holding _manifests/ and events/.", parser=_directory("OUT"))
    ] = Path("shards"),
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Only this run (default: every committed run).",
            parser=_given("--run-id", "a run id", "for every committed run"),
        ),
    ] = None,
    whole: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Check the timeline as one: contiguous windows, and sessions, orders and event ids across runs.",
        ),
    ] = False,
    workers: Annotated[
        str | None,
        typer.Option(
            help="Processes checking blocks of customers side by side (default: one per CPU).",
            parser=_given("--workers", "a number of workers", "for one per CPU"),
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
) -> None:
    """Re-read committed runs through their manifests and check every rule of the event model."""
    from generator.validate import WorkerDied
    from generator.validate import validate as validate_out

    if run_id and whole:
        raise UserError("--all: checks every run; leave out --run-id")
    n = parse_whole("--workers", workers) if workers is not None else usable_cpus()
    if not 1 <= n <= MAX_WORKERS:
        raise UserError(f"--workers: must be a whole number from 1 to {MAX_WORKERS:,}, got {n}")
    try:
        report = validate_out(out, run_id, whole, n)
    except KeyboardInterrupt:
        raise Interrupted("; the validation stopped before it finished") from None
    except Terminated:
        raise Terminated("; the validation stopped before it finished") from None
    except WorkerDied as e:
        err_console.print(
            f"gen: validation failed: {e}; it stopped before it finished", highlight=False, markup=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
    if json:
        sys.stdout.write(orjson.dumps(_validation_doc(report)).decode() + "\n")
    else:
        _print_validation(report)
    if not report.ok:
        err_console.print(f"gen: validation failed: {sum(report.violations.values()):,} violations", highlight=False)
        raise typer.Exit(1)


def _print_validation(report) -> None:
    """`gen validate`'s table, one line per rule, then what was not checked."""
    t = Table(title=f"{len(report.runs)} run(s), {report.rows:,} rows")
    t.add_column("rule")
    t.add_column("result", justify="right")
    for rule in report.checked:
        bad = report.violations.get(rule, 0)
        t.add_row(
            rule,
            "[green]ok[/]" if not bad else f"[red]{bad:,} violations[/]  {report.examples.get(rule, '')}",
        )
    for kind, n in report.expected.items():  # data faults the runs' sidecars list: not violations
        t.add_row(f"fault {kind}", f"[yellow]{n:,} injected (expected)[/]")
    out_console.print(t)
    if report.unchecked:
        out_console.print(
            f"not checked against the session and order rules: {report.unchecked:,} events, whose customers' shard "
            "has a part missing or unreadable (their sessions and orders are incomplete here)",
            highlight=False,
        )
    if report.only_in_s3:
        out_console.print(
            f"not checked here (no parts in this directory; they are in S3): {', '.join(report.only_in_s3)}",
            highlight=False,
        )


def _validation_doc(report) -> dict:
    """`gen validate --json`: whether every rule held, each rule checked with its violations and first example,
    the faults the runs' sidecars list (expected, not violations), and what was not checked."""
    return {
        "ok": report.ok,
        "runs": report.runs,
        "rows": report.rows,
        "violations": sum(report.violations.values()),
        "rules": [
            {"rule": rule, "violations": report.violations.get(rule, 0), "example": report.examples.get(rule) or None}
            for rule in report.checked
        ],
        "expected_faults": dict(report.expected),
        "unchecked_sequence_events": report.unchecked,
        "only_in_s3": report.only_in_s3,
    }


@app.command()
def runs(
    out: Annotated[Path, typer.Argument(help="Output root holding _manifests/.", parser=_directory("OUT"))] = Path(
        "shards"
    ),
    json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON lines.")] = False,
    parts: Annotated[
        bool, typer.Option("--parts", help="Print every committed part instead, one path a line (--json: records).")
    ] = False,
    s3: Annotated[bool, typer.Option("--s3", help="With --parts: the parts' s3:// URIs (runs uploaded).")] = False,
) -> None:
    """List the committed runs of OUT's timeline, oldest first: window, events, parts and bytes. With --parts, the
    committed runs' part files (with --s3, where they are in S3): what a reader that must see committed runs only
    reads, since a prefix in S3 can also hold the parts of a run still uploading or never committed."""
    from generator import timeline
    from generator.dashboard import human_bytes

    if not out.is_dir():
        raise UserError(f"OUT: no such directory: {str(out)!r}")
    if s3 and not parts:
        raise UserError("--s3: only with --parts")
    docs = timeline.committed_runs(out)
    if parts:
        _print_parts(out, docs, s3, json)
        return
    rows = [
        {
            "run_id": d["run_id"],
            "ordinal": d["timeline"]["ordinal"],
            "start": d["window"]["start"],
            "end": d["window"]["end"],
            "events": d["events"],
            "parts": len(d["parts"]),
            "bytes": d["bytes"],
            "carried_out": d["timeline"]["carried_out"],
            "s3": f"s3://{d['s3']['bucket']}/{d['s3']['prefix']}" if "s3" in d else None,
        }
        for d in docs
    ]
    if json:
        sys.stdout.write("".join(orjson.dumps(r).decode() + "\n" for r in rows))
        return
    t = Table(title=f"{len(rows)} committed run(s) in {escape(str(out))}")
    for col in ("#", "run id", "window start", "window end", "events", "parts", "size", "pending after"):
        right = col in ("#", "events", "parts", "size", "pending after")
        t.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in rows:
        t.add_row(
            str(r["ordinal"]),
            escape(r["run_id"]),
            r["start"],
            r["end"],
            f"{r['events']:,}",
            str(r["parts"]),
            human_bytes(r["bytes"]),
            f"{r['carried_out']:,}",
        )
    out_console.print(t)
    problems = timeline.chain_problems(out, docs)
    if problems:
        err_console.print(f"gen: warning: {problems[0]}", highlight=False, markup=False)


def _print_parts(out: Path, docs: list[dict], s3: bool, json: bool) -> None:
    lines = []
    for d in docs:
        if s3 and "s3" not in d:
            raise UserError(f"--s3: run {d['run_id']!r} was not uploaded (its parts are only under {str(out)!r})")
        if not s3 and d["parts"] and not any((out / p["path"]).exists() for p in d["parts"]):
            raise UserError(f"--parts: run {d['run_id']!r} has no parts under {str(out)!r} (pulled, or uploaded with "
                            "--no-keep-local): add --s3 for their S3 URIs")  # fmt: skip
        where = d.get("s3", {})
        root = f"s3://{where.get('bucket')}/{where['prefix'] + '/' if where.get('prefix') else ''}" if s3 else None
        for p in d["parts"]:
            path = root + p["path"] if s3 else str(out / p["path"])
            if json:
                record = {"run_id": d["run_id"], "path": path} | {k: p[k] for k in ("rows", "bytes", "sha256")}
                lines.append(orjson.dumps(record).decode())
            else:
                lines.append(path)
    sys.stdout.write("".join(line + "\n" for line in lines))


@app.command("schema")
def show_schema(
    json: Annotated[bool, typer.Option("--json", help="Print the schema as JSON.")] = False,
    glue: Annotated[bool, typer.Option("--glue", help="Print the Glue table's columns as JSON.")] = False,
    spark: Annotated[
        bool, typer.Option("--spark", help="Print the schema as a Spark DDL string, for spark.read.schema().")
    ] = False,
    athena: Annotated[
        str | None,
        typer.Option(
            "--athena",
            metavar="S3_URL",
            help="Print CREATE EXTERNAL TABLE statements for Athena over s3://BUCKET/PREFIX/: events (every part) "
            "and events_committed (the committed runs' parts only).",
            parser=_given("--athena", "an s3://BUCKET/PREFIX/ location"),
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="With --athena: the Glue database the tables go in.",
            parser=_given("--database", "a Glue database", "for the default database"),
        ),
    ] = None,
) -> None:
    """Print the event schema and its column rules (--glue: as terraform/glue_columns.json holds them)."""
    flags = (("--json", json), ("--glue", glue), ("--spark", spark), ("--athena", bool(athena)))
    chosen = [flag for flag, on in flags if on]
    if len(chosen) > 1:
        raise UserError(f"{chosen[1]}: choose one of --json, --glue, --spark and --athena, not {' and '.join(chosen)}")
    if database and not athena:
        raise UserError("--database: goes with --athena")
    if athena:
        from generator.athena import ddl
        from generator.uploader import S3Target

        bucket, _, prefix = athena.removeprefix("s3://").partition("/")
        if not athena.startswith("s3://"):
            raise UserError(f"--athena: an s3://BUCKET/PREFIX/ location, got {athena!r}")
        if database and not re.fullmatch(r"[a-z0-9_]{1,255}", database):
            raise UserError(f"--database: lower-case letters, digits and '_', got {database!r}")
        try:
            target = S3Target(bucket, prefix)
        except ConfigError as e:
            raise UserError(str(e).replace("--bucket", "--athena", 1)) from None
        sys.stdout.write(ddl(target.url(), database or ""))
        return
    if spark:
        sys.stdout.write(schema.spark_ddl() + "\n")
        return
    if glue:
        sys.stdout.write(orjson.dumps(schema.glue_columns(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    doc = schema.describe()
    if json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    t = Table(title="event schema (one row = one event)")
    for col in ("#", "column", "type", "nullable", "populated on", "values"):
        t.add_column(col)
    for i, c in enumerate(doc, 1):
        # Either the event types the column is set on, or one phrase saying when ("all", or a condition).
        on = c["populated_on"] if isinstance(c["populated_on"], str) else ", ".join(c["populated_on"])
        row = (str(i), c["name"], c["type"], "yes" if c["nullable"] else "no", on, ", ".join(c["values"] or []))
        t.add_row(*(escape(x) for x in row))
    out_console.print(t)


@app.command()
def report(
    out: Annotated[
        Path, typer.Argument(help="Output root holding _manifests/ and events/.", parser=_directory("OUT"))
    ] = Path("shards"),
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Only this run (default: every committed run together).",
            parser=_given("--run-id", "a run id", "for every committed run"),
        ),
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Also write the report as one self-contained HTML file.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON instead of tables.")] = False,
) -> None:
    """Summarise committed runs, each statistic next to the scenario's target: event mix, funnel, payments,
    latency, orders by state, delivery time by carrier, traffic by hour of day (WAT) and basket totals."""
    from generator.report import report as summarise
    from generator.report_render import print_tables, write_html

    if html is not None and (html.is_dir() or not writable(html.parent)):
        raise UserError(f"--html: cannot write a file at {str(html)!r}")
    summary = summarise(out, run_id)
    if json:
        sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
    else:
        print_tables(summary, out_console)
    if html is not None:
        try:
            write_html(summary, html)
        except OSError as e:  # allowed by the permission bits, refused by the file system (/proc, read-only)
            raise UserError(f"--html: cannot write {str(html)!r} ({e.strerror or e})") from None
        if not json:
            out_console.print(f"wrote {html}", highlight=False)


scenario_app = typer.Typer(
    help="Scenarios: the behaviour a run simulates (scenarios/default.toml unless --scenario names another).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("show")
def scenario_show(
    scenario: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Scenario file (TOML) laid over the defaults.",
            show_default="the built-in default",
            parser=_given("--scenario", "a TOML file", "for the built-in default", Path),
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the scenario as JSON.")] = False,
) -> None:
    """Print the effective scenario: the defaults with the file's values over them, validated, incidents last."""
    from generator.scenario import effective_scenario, to_toml

    doc = effective_scenario(scenario)
    if json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(to_toml(doc, str(scenario) if scenario else ""))


@app.command()
def version() -> None:
    """Print the generator's version."""
    out_console.print(__version__)


def _print_version(asked: bool) -> None:
    if asked:
        out_console.print(f"gen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option("--version", help="Print gen and its version, then exit.", callback=_print_version, is_eager=True),
    ] = None,
) -> None:
    """Synthetic Nigerian e-commerce event logs for Temu's Nigeria launch, written as Parquet."""


def _committed_note(e: BaseException) -> str:
    """What the interrupted command leaves behind, said in its last line."""
    return (e.args[0] if e.args else "") or "; nothing was committed"


class Interrupted(BaseException):
    """Ctrl-C during a run (raised past typer, which would otherwise turn it into a silent exit 130)."""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (workers stopped, staging removed, no manifest)."""


def _terminated(signum, frame) -> None:
    raise Terminated()


_HELP_WIDTH = os.environ.get("TERMINAL_WIDTH")  # the user's, if set (typer's help width)


def _help_width() -> None:
    """Help off a terminal is laid out as wide as the tables, so that no option's name is cut. typer reads the
    width from TERMINAL_WIDTH when it first formats help or an error (its `rich_utils`, whose import costs a run
    40-80 ms: a run that prints neither never imports it), then from the module."""
    width = int(_HELP_WIDTH) if _HELP_WIDTH else (None if out_console.is_terminal else out_console.width)
    loaded = sys.modules.get("typer.rich_utils")
    if loaded is not None:
        loaded.MAX_WIDTH = width
    elif width is None:
        os.environ.pop("TERMINAL_WIDTH", None)
    else:
        os.environ["TERMINAL_WIDTH"] = str(width)


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input exits 2 with one line; a failed run exits 1; tracebacks only for bugs."""
    from generator.coordinator import RunError
    from generator.manifest import ManifestError

    command = typer.main.get_command(app)
    _help_width()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = command.main(args=argv, prog_name="gen", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `gen`, `gen scenario`: the help, and exit 2 as typer's own would
        if e.format_message():  # (rich has printed it already)
            out_console.print(e.format_message(), highlight=False, markup=False)
        return 2
    except typer.TyperException as e:  # typer's own usage errors: a bad option value, an unknown option
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        err_console.print(f"gen: error: {message}", highlight=False, markup=False, soft_wrap=True)
        return int(getattr(e, "exit_code", 2))
    except (ConfigError, ManifestError, UserError) as e:
        err_console.print(f"gen: error: {e}", highlight=False, markup=False, soft_wrap=True)
        return 2
    except RunError as e:
        err_console.print(f"gen: run failed: {e}", highlight=False, markup=False, soft_wrap=True)
        return 1
    except Terminated as e:
        err_console.print(f"gen: terminated{_committed_note(e)}", highlight=False, markup=False, soft_wrap=True)
        return 143
    except Interrupted as e:
        err_console.print(f"gen: interrupted{_committed_note(e)}", highlight=False, markup=False, soft_wrap=True)
        return 130
    return code if isinstance(code, int) else 0


def entry() -> None:
    sys.exit(main())
