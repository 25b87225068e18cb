"""What the user sees while a run goes: a live rich dashboard on a terminal, plain log lines otherwise.

Both implement the coordinator's Listener and draw only in the parent process, on stderr, so stdout stays free
for the summary (or `--json`).
"""

from __future__ import annotations

import dataclasses
import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from generator.coordinator import Listener, RunPlan
from generator.manifest import iso
from generator.parts import ShardResult, SimResult


def counted(n: int, noun: str) -> str:
    """ "1 worker", "8 workers", "5,000,000 events"."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"


class _Tally(Listener):
    def started(self, run: RunPlan) -> None:
        self.run = run
        self.simulated_shards = 0
        self.t0 = time.perf_counter()
        self.events = 0
        self.bytes = 0
        self.shards = 0
        self.per_worker: dict[int, list[int]] = {}  # pid -> [shards, events, bytes]

    def simulated(self, result: SimResult) -> None:
        self.simulated_shards += 1

    def writing(self, events: int, end_us: int, exact: bool = True) -> None:
        self.run = dataclasses.replace(self.run, events=events)
        self.end = iso(end_us)
        self.exact = exact

    def shard_done(self, result: ShardResult) -> None:
        self.events += result.rows
        self.bytes += result.bytes
        self.shards += result.final  # a shard may report its early piece first
        w = self.per_worker.setdefault(result.pid, [0, 0, 0])
        w[0] += result.final
        w[1] += result.rows
        w[2] += result.bytes

    def voided(self, results: list[ShardResult]) -> None:
        for r in results:  # early pieces: never a shard's final one
            self.events -= r.rows
            self.bytes -= r.bytes
            w = self.per_worker[r.pid]
            w[1] -= r.rows
            w[2] -= r.bytes

    def upload_progress(self, bytes_sent: int, parts_done: int, in_flight: int) -> None:
        self.upload = (bytes_sent, parts_done, in_flight)

    def upload_line(self) -> str:
        if not getattr(self, "upload", None):
            return ""
        sent, done, in_flight = self.upload
        rate = sent / max(time.perf_counter() - self.t0, 1e-9)
        return f"uploaded {counted(done, 'file')} ({in_flight} in flight), {human_bytes(sent)}, {human_bytes(rate)}/s"

    def total(self) -> int:
        """The run's events as far as known: exact, or once every shard is written; else the estimate, raised to
        the count so far where the run outgrows it."""
        if self.shards == len(self.run.shards):
            return self.events
        return self.run.events if getattr(self, "exact", True) else max(self.run.events, self.events)

    def done_percent(self) -> int:
        """Whole per cent of the run written: 100 only once every shard is, however the estimate compares."""
        if self.shards == len(self.run.shards):
            return 100
        return min(99, int(100 * self.events / max(self.total(), 1)))

    def rate(self) -> float:
        return self.events / max(time.perf_counter() - self.t0, 1e-9)


class LiveDashboard(_Tally):
    """Overall and per-worker progress, events/s, ETA and bytes written, redrawn in place."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}", justify="right"),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.live: Live | None = None

    def started(self, run: RunPlan) -> None:
        super().started(run)
        self.sim_task = (
            None if run.by_time else self.progress.add_task("simulating", total=len(run.shards), unit="shards")
        )
        self.task = self.progress.add_task("writing", total=run.events, unit="events", start=False)
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.__enter__()

    def _render(self):
        t = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        for col in ("worker", "pid", "shards", "events", "written"):
            t.add_column(col, justify="right")
        for i, (pid, (shards, events, nbytes)) in enumerate(sorted(self.per_worker.items()), 1):
            t.add_row(str(i), str(pid), str(shards), f"{events:,}", human_bytes(nbytes))
        head = (
            f"run [bold]{self.run.run_id}[/]  ·  {counted(len(self.run.shards), 'shard')} on "
            f"{counted(self.run.workers, 'worker')}"
            f"{f'  ·  ends at {self.end}' if getattr(self, 'end', None) else ''}\n"
            f"[bold]{self.rate():,.0f}[/] events/s  ·  {human_bytes(self.bytes)} written  ·  "
            f"{self.shards}/{len(self.run.shards)} shards done"
        )
        return Group(head, self.progress, *([self.upload_line()] if self.upload_line() else []), t)

    def simulated(self, result: SimResult) -> None:
        super().simulated(result)
        self.progress.update(self.sim_task, completed=min(self.simulated_shards, len(self.run.shards)))
        if self.live:
            self.live.update(self._render())

    def writing(self, events: int, end_us: int, exact: bool = True) -> None:
        super().writing(events, end_us, exact)
        if self.sim_task is not None:  # (a run sized by time knows its end at once: no simulation step to show)
            self.progress.update(self.sim_task, completed=len(self.run.shards))
        self.progress.update(self.task, total=events)
        self.progress.start_task(self.task)

    def shard_done(self, result: ShardResult) -> None:
        super().shard_done(result)
        self.progress.update(self.task, completed=self.events, total=self.total())
        if self.live:
            self.live.update(self._render())

    def upload_progress(self, bytes_sent: int, parts_done: int, in_flight: int) -> None:
        super().upload_progress(bytes_sent, parts_done, in_flight)
        if self.live:
            self.live.update(self._render())

    def committing(self) -> None:
        self.progress.update(self.task, total=self.events, completed=self.events)  # an estimate becomes the count
        if not getattr(self, "upload", None):
            self.close()

    def close(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)
            self.live = None


class LogLines(_Tally):
    """One plain line at most every `every` seconds, and one at the end: for logs, pipes and CI."""

    def __init__(self, console: Console, every: float = 2.0):
        self.console = console
        self.every = every

    def started(self, run: RunPlan) -> None:
        super().started(run)
        self.last = 0.0
        self.console.print(
            f"gen: run {run.run_id}: {counted(run.events, 'event')} in {counted(len(run.shards), 'shard')} on "
            f"{counted(run.workers, 'worker')}",
            highlight=False,
            soft_wrap=True,
        )

    def simulated(self, result: SimResult) -> None:
        super().simulated(result)
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.console.print(
                f"gen: simulated {self.simulated_shards}/{len(self.run.shards)} shards", highlight=False, soft_wrap=True
            )

    def writing(self, events: int, end_us: int, exact: bool = True) -> None:
        super().writing(events, end_us, exact)
        about = "" if exact else "about "
        self.console.print(
            f"gen: the run ends at {self.end}; writing {about}{events:,} events", highlight=False, soft_wrap=True
        )

    def shard_done(self, result: ShardResult) -> None:
        super().shard_done(result)
        now = time.perf_counter()
        if now - self.last >= self.every or (result.final and self.shards == len(self.run.shards)):
            self.last = now
            self.console.print(
                f"gen: {self.events:,}/{self.total():,} events ({self.done_percent()}%), "
                f"{self.shards}/{len(self.run.shards)} shards, {self.rate():,.0f} events/s, "
                f"{human_bytes(self.bytes)} written",
                highlight=False,
                soft_wrap=True,  # one record a line, however long
            )

    def upload_progress(self, bytes_sent: int, parts_done: int, in_flight: int) -> None:
        super().upload_progress(bytes_sent, parts_done, in_flight)
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.console.print(f"gen: {self.upload_line()}", highlight=False, soft_wrap=True)

    def close(self) -> None: ...
