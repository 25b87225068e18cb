"""Run settings, validated once at the boundary: a bad value raises ConfigError naming it, before any write."""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from generator.core.behaviour import Behaviour, default_behaviour
from generator.core.events import DAY, HOUR, SECOND
from generator.core.population import CUSTOMER_ID_DIGITS, CUSTOMER_ID_PREFIX, IDENTITY_SCHEME
from generator.core.shard import MAX_SHARDS, MAX_WINDOW_DAYS, GenConfig, auto_shard_size, shard_count, window_days
from generator.launch import usable_cpus

PARTITIONINGS = ("date", "hour", "none")
DEFAULT_PARTITIONING = "date"
DEFAULT_START = "2025-11-01T00:00:00Z"  # a fixed instant, so a default run is reproducible; see README
DEFAULT_SEED = 42
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A user-supplied value is invalid; the message names it. Maps to exit code 2."""


def parse_whole(flag: str, text: str) -> int:
    """A whole number given on the command line (underscores allowed: 500_000)."""
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(f"{flag}: not a whole number: {text!r}") from None


EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_START = datetime(9000, 1, 1, tzinfo=UTC)
MAX_CUSTOMERS = 10**CUSTOMER_ID_DIGITS
MAX_WORKERS = 4096
MAX_SHARD_SIZE = 10_000_000  # events in one shard: a worker holds a shard's columns (a few hundred bytes an event)
MAX_LATENCY_THRESHOLD_MS = 2**31 - 1  # latency_ms is a 32-bit integer


def parse_start(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"--start: not an ISO 8601 date or time: {text!r}") from None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    if t >= LATEST_START:  # a window (at most ten years) and its orders' fulfilment stay inside year 9999
        raise ConfigError(f"--start: must be before {LATEST_START:%Y-%m-%d}, got {text!r}")
    if t < EARLIEST_START:  # an e-commerce log of this century (and a year ISO 8601 writes in four digits)
        raise ConfigError(f"--start: must be {EARLIEST_START:%Y-%m-%d} or later, got {text!r}")
    return t


DEFAULT_START_TIME = parse_start(DEFAULT_START)
_DURATION = re.compile(r"(\d+)\s*([wdhms])")
_UNIT = {"w": 7 * DAY, "d": DAY, "h": HOUR, "m": 60 * SECOND, "s": SECOND}


def parse_duration(text: str) -> int:
    """A length of time such as 1h, 30m, 1d, 2w or 1h30m, in microseconds."""
    t = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ConfigError(f"--duration: not a duration like 1h, 30m, 1d or 1h30m: {text!r}")
    us = sum(int(n) * _UNIT[u] for n, u in parts)
    if us < SECOND:
        raise ConfigError(f"--duration: must be at least one second, got {text!r}")
    return us


def iso_us(ts_us: int) -> str:
    """An instant in microseconds as ISO 8601 UTC, to the microsecond when it has them."""
    t = datetime.fromtimestamp(ts_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{t}.{ts_us % 1_000_000:06d}Z" if ts_us % 1_000_000 else f"{t}Z"


def to_us(t: datetime) -> int:
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def writable(path: Path) -> bool:
    """Whether `path` can be created: its nearest existing ancestor is a directory this process may write in."""
    p = path
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class RunConfig:
    """A run's settings. Options left None are the timeline's: a run into a directory that already holds runs
    continues them (it starts where the last one ended, with its seed, population, threshold and partition
    layout); the first run of a directory takes the defaults. `resolve` fills them in."""

    events: int | None = 500_000  # exactly this many events; None with a duration
    workers: int = dataclasses.field(default_factory=usable_cpus)  # the CPUs this process may use
    seed: int | None = None
    start: datetime | None = None
    out: Path = Path("shards")
    partition_by: str | None = None  # None: the timeline's layout, or "date" for the first run
    latency_threshold_ms: int | None = None
    run_id: str = ""
    customers: int | None = None
    shard_size: int | None = None  # None: chosen from the event target and the population (auto_shard_size)
    duration_us: int | None = None  # size the run by time instead of events
    scenario: Path | None = None  # a scenario file; None: the timeline's last scenario, or the built-in default
    # Filled by `resolve` from the timeline in `out`.
    ordinal: int = 0
    previous: str | None = None
    orders_before: int = 0
    resolved: bool = False
    behaviour: Behaviour = dataclasses.field(default_factory=default_behaviour, compare=False, repr=False)

    def __post_init__(self) -> None:
        def positive(value: object, flag: str) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{flag}: must be a whole number of at least 1, got {value!r}")

        if (self.events is None) == (self.duration_us is None):
            raise ConfigError("--events: give either --events or --duration")
        if self.events is not None:
            positive(self.events, "--events")
        if self.duration_us is not None:
            positive(self.duration_us, "--duration")
        positive(self.workers, "--workers")
        if self.workers > MAX_WORKERS:
            raise ConfigError(f"--workers: at most {MAX_WORKERS:,}, got {self.workers}")
        if self.customers is not None:
            positive(self.customers, "--customers")
            if self.customers > MAX_CUSTOMERS:
                raise ConfigError(
                    f"--customers: at most {MAX_CUSTOMERS:,} (a customer_id is {CUSTOMER_ID_PREFIX} and "
                    f"{CUSTOMER_ID_DIGITS} digits), got {self.customers}"
                )
        if self.shard_size is not None and not self.resolved:
            positive(self.shard_size, "--shard-size")
            if self.shard_size > MAX_SHARD_SIZE:
                raise ConfigError(f"--shard-size: at most {MAX_SHARD_SIZE:,} events, got {self.shard_size}")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed < 2**63):
            raise ConfigError(f"--seed: must be a whole number from 0 to 2**63-1, got {self.seed!r}")
        if self.latency_threshold_ms is not None and (
            not isinstance(self.latency_threshold_ms, int) or self.latency_threshold_ms < 0
        ):
            raise ConfigError(f"--latency-threshold-ms: must be 0 or more, got {self.latency_threshold_ms!r}")
        if self.latency_threshold_ms is not None and self.latency_threshold_ms > MAX_LATENCY_THRESHOLD_MS:
            raise ConfigError(
                f"--latency-threshold-ms: at most {MAX_LATENCY_THRESHOLD_MS} (latency_ms is a 32-bit integer), "
                f"got {self.latency_threshold_ms}"
            )
        if self.partition_by is not None and self.partition_by not in PARTITIONINGS:
            raise ConfigError(f"--partition-by: must be one of {', '.join(PARTITIONINGS)}, got {self.partition_by!r}")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())
        elif not _RUN_ID.match(self.run_id):
            raise ConfigError(
                "--run-id: a letter or digit, then letters, digits, '.', '_' or '-' (at most 64 in all), got "
                f"{self.run_id!r}"
            )
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out: not a directory: {str(self.out)!r}")
        if not writable(self.out):
            raise ConfigError(f"--out: cannot write to {str(self.out)!r}")
        if self.duration_us is not None and self.duration_us > MAX_WINDOW_DAYS * DAY:
            raise ConfigError("--duration: at most ten years")

    def resolve(self, last: dict | None, began: str | None = None) -> RunConfig:
        """These settings for a run following `last` (the manifest of the directory's last run, or None for the
        first; `began`: where the timeline's first run started): unset timeline options are taken from it, set
        ones must agree with it, and the run starts where it ended. Raises ConfigError naming the option on a
        conflict."""
        if self.scenario is not None:
            from generator.scenario import load_scenario  # it needs ConfigError from here

            b = load_scenario(self.scenario)
        elif last is not None and last.get("scenario"):
            b = Behaviour.from_dict(last["scenario"])
        else:
            b = default_behaviour()
        fill: dict[str, object] = {"resolved": True, "behaviour": b}
        if last is None:
            fill |= {
                "seed": DEFAULT_SEED if self.seed is None else self.seed,
                "customers": b.customers if self.customers is None else self.customers,
                "latency_threshold_ms": (
                    b.latency_threshold_ms if self.latency_threshold_ms is None else self.latency_threshold_ms
                ),
                "start": DEFAULT_START_TIME if self.start is None else self.start,
                "partition_by": DEFAULT_PARTITIONING if self.partition_by is None else self.partition_by,
                "ordinal": 0,
                "previous": None,
                "orders_before": 0,
            }
        else:
            opts, end = last["options"], last["window"]["end"]
            scheme = last.get("identity_scheme", 1)
            if scheme != IDENTITY_SCHEME:
                raise ConfigError(
                    f"--out: the timeline in {str(self.out)!r} was written by generator "
                    f"{last.get('generator_version', '?')}, whose customers have other identities (scheme {scheme}, "
                    f"this generator's {IDENTITY_SCHEME}): a run here would change their names, phones and addresses; "
                    "continue it with that generator, or use another --out for a new timeline"
                )
            for name, flag in (
                ("seed", "--seed"),
                ("customers", "--customers"),
                ("latency_threshold_ms", "--latency-threshold-ms"),
            ):
                mine = getattr(self, name)
                if mine is not None and mine != opts[name]:
                    raise ConfigError(
                        f"{flag}: {mine} differs from {opts[name]}, the timeline's in {str(self.out)!r}; a run "
                        "there continues it (use another --out for a new timeline)"
                    )
                fill[name] = opts[name]
            # The parts of every run sit in one layout, so that one glob or hive dataset reads them all. (A
            # timeline written before this was enforced may mix layouts: a run continues its last run's.)
            layout = opts["partition_by"]
            if self.partition_by is not None and self.partition_by != layout:
                raise ConfigError(
                    f"--partition-by: {self.partition_by} differs from {layout}, the layout of the timeline in "
                    f"{str(self.out)!r}; a run there continues it in the same layout, so that one glob reads every "
                    "run (omit --partition-by, or use another --out for a new timeline)"
                )
            fill["partition_by"] = layout
            end_time = parse_start(end)
            if self.start is not None and self.start != end_time:
                given = iso_us(to_us(self.start))
                if began is not None and self.start < parse_start(began):
                    raise ConfigError(
                        f"--start: {given} is before the beginning of the timeline in {str(self.out)!r}, which "
                        f"starts at {began} and ends at {end} (run {last['run_id']!r}); a run there continues it: "
                        "omit --start to continue from its end, or use another --out for a new timeline"
                    )
                where = "inside the window" if self.start < end_time else "after the end"
                raise ConfigError(
                    f"--start: {given} is {where} of the timeline in {str(self.out)!r}, which ends at {end} "
                    f"(run {last['run_id']!r}); omit --start to continue from there"
                )
            fill |= {
                "start": end_time,
                "ordinal": last["timeline"]["ordinal"] + 1,
                "previous": last["run_id"],
                "orders_before": last["timeline"]["orders_after"],
            }
        cfg = dataclasses.replace(self, **fill)
        events = cfg.gen().planned_events
        if cfg.shard_size is None:
            object.__setattr__(cfg, "shard_size", auto_shard_size(events, cfg.customers, b))
        if shard_count(events, cfg.customers, cfg.shard_size) > MAX_SHARDS:
            raise ConfigError(f"--events: {events} makes more than {MAX_SHARDS} shards; raise --shard-size")
        if window_days(cfg.gen()) > MAX_WINDOW_DAYS:
            raise ConfigError(
                f"--events: {events} events from {cfg.customers} customers would span more than ten years; "
                "use more --customers"
            )
        return cfg

    @property
    def start_us(self) -> int:
        return to_us(self.start or DEFAULT_START_TIME)

    def gen(self) -> GenConfig:
        """The part of the settings that decides the bytes of the parts (workers and paths do not)."""
        if not self.resolved:
            return self.resolve(None).gen()
        return GenConfig(
            seed=self.seed,
            events=self.events,
            start_us=self.start_us,
            shard_size=self.shard_size or 1,
            latency_threshold_ms=self.latency_threshold_ms,
            customers=self.customers,
            end_us=None if self.duration_us is None else self.start_us + self.duration_us,
            warm=self.ordinal == 0,
            behaviour=self.behaviour,
        )

    @property
    def scenario_doc(self) -> dict:
        """The effective scenario, as the manifest records it (a later run without --scenario continues it)."""
        return self.behaviour.raw

    def options(self) -> dict[str, object]:
        """The effective options, as recorded in the manifest."""
        cfg = self if self.resolved else self.resolve(None)
        return {
            "events": cfg.events,
            "duration": None if cfg.duration_us is None else iso_duration(cfg.duration_us),
            "workers": cfg.workers,
            "seed": cfg.seed,
            "start": iso_us(cfg.start_us),
            "partition_by": cfg.partition_by,
            "latency_threshold_ms": cfg.latency_threshold_ms,
            "customers": cfg.customers,
            "shard_size": cfg.shard_size,
            "scenario": None if cfg.scenario is None else str(cfg.scenario),
        }


def iso_duration(us: int) -> str:
    """A duration in microseconds as text gen accepts back (e.g. 1d2h30m)."""
    out, rest = [], us // SECOND
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
