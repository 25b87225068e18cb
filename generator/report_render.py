"""How a run report looks: rich tables for the terminal, and one self-contained HTML page with inline SVG charts
drawn here (no script, no network, no plotting library)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from rich.console import Console
from rich.table import Table

from generator.manifest import iso
from generator.parts import write_atomic
from generator.report import Row, Section, Summary, flag_level, flagged


def value_text(row: Row, v: float | None) -> str:
    if v is None:
        return "—"
    if row.unit == "share":
        return f"{100 * v:.2f}%"
    if row.unit == "ms":
        return f"{v:,.0f} ms"
    if row.unit == "days":
        return f"{v:.1f} d"
    if row.unit == "naira":
        return f"{v:,.0f}"  # totals are whole naira (a median of two may end in .5)
    if row.unit == "mean":
        return f"{v:.3f}"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def deviation_text(row: Row) -> str:
    d = row.deviation
    if d is None:
        return ""
    return f"{100 * d:+.2f} pp" if row.unit == "share" else f"{100 * d:+.1f}%"


def _n(row: Row) -> str:
    return f"{row.n:,}" if row.n is not None else ""


def print_tables(s: Summary, console: Console) -> None:
    level = flag_level(s)
    console.print(
        f"{len(s.runs)} run(s), {s.events:,} events, {iso(s.first_ts)} .. {iso(s.last_ts)}; targets: {s.scenario}; "
        f"deviations beyond {level:.1f} standard errors in red (chance alone, about one report in a hundred)",
        highlight=False,
    )
    for sec in s.sections:
        t = Table(title=sec.title, title_justify="left", caption=" ".join(sec.notes), caption_justify="left")
        for col, justify in (("statistic", "left"), ("value", "right"), ("target", "right"), ("deviation", "right")):
            t.add_column(col, justify=justify)
        t.add_column("n", justify="right")
        for r in sec.rows:
            dev = deviation_text(r)
            t.add_row(
                r.label,
                value_text(r, r.value),
                value_text(r, r.target),
                f"[red]{dev}[/]" if flagged(r, level) else dev,
                _n(r),
            )
        console.print(t)


# -- SVG --------------------------------------------------------------------------------------------------------

W = 680
BLUE, GREY, DARK, BAND = "#3b6ea8", "#b9c3cf", "#1d232b", "#f2a33a"


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _svg(height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
        f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


def _path(d: str, stroke: str, width: float = 1, extra: str = "") -> str:
    return f'<path d="{d}" stroke="{stroke}" stroke-width="{_num(width)}" fill="none"{extra}/>'


def _rect(x: float, y: float, w: float, h: float, fill: str, extra: str = "") -> str:
    return f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" fill="{fill}"{extra}/>'


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def _legend(y: float, items: list[tuple[str, str]]) -> list[str]:
    out, x = [], W - 10
    for label, swatch in reversed(items):
        out.append(_text(x, y + 4, label, "end", "small"))
        x -= 7 * len(label) + 8
        out.append(swatch.format(x=_num(x), y=_num(y)))
        x -= 22
    return out


_LEGEND_BAR = f'<rect x="{{x}}" y="{{y}}" width="12" height="8" transform="translate(0,-4)" fill="{BLUE}"/>'
_LEGEND_TARGET = f'<path d="M{{x}} {{y}}h14" stroke="{DARK}" stroke-width="2" stroke-dasharray="4 2"/>'
_LEGEND_BAND = (
    f'<rect x="{{x}}" y="{{y}}" width="12" height="8" transform="translate(0,-4)" fill="{BAND}" opacity=".35"/>'
)


def bars(labels: list[str], values: list, targets: list, fmt, label: str) -> str:
    """Horizontal bars of the realised values, a tick at each target."""
    left, right, row_h, top = 190, 90, 22, 24
    top_v = max([v for v in values + targets if v is not None] + [1e-12])
    scale = (W - left - right) / top_v
    body = _legend(10, [("realised", _LEGEND_BAR), ("target", _LEGEND_TARGET)])
    for i, (name, v, t) in enumerate(zip(labels, values, targets, strict=True)):
        y = top + i * row_h
        body.append(_text(left - 8, y + 15, name, "end"))
        if v is not None:
            body.append(f'<rect x="{left}" y="{y + 4}" width="{_num(v * scale)}" height="14" fill="{BLUE}"/>')
            body.append(_text(left + max(v, t or 0) * scale + 6, y + 15, fmt(v), "start", "small"))
        if t is not None:
            x = _num(left + t * scale)
            body.append(f'<path d="M{x} {y + 1}v20" stroke="{DARK}" stroke-width="2" stroke-dasharray="4 2"/>')
    return _svg(top + len(labels) * row_h + 6, body, label)


def columns(labels: list[str], values: list, targets: list, fmt, label: str) -> str:
    """Vertical bars (hours of the day), a tick at each target."""
    left, bottom, top, h = 50, 24, 24, 180
    top_v = nice(max([v for v in values + targets if v is not None] + [1e-12]))
    step = (W - left - 10) / len(labels)
    body = _legend(10, [("realised", _LEGEND_BAR), ("target", _LEGEND_TARGET)]) + _y_axis(left, top, h, top_v, fmt)
    for i, (name, v, t) in enumerate(zip(labels, values, targets, strict=True)):
        x = left + i * step
        if v:
            y = top + h - v / top_v * h
            body.append(_rect(x + 2, y, step - 4, top + h - y, BLUE))
        if t is not None:
            y = _num(top + h - t / top_v * h)
            body.append(
                f'<path d="M{_num(x)} {y}h{_num(step)}" stroke="{DARK}" stroke-width="2" stroke-dasharray="4 2"/>'
            )
        body.append(_text(x + step / 2, top + h + 16, name, "middle", "small"))
    return _svg(top + h + bottom, body, label)


def nice(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above v (a round top for an axis)."""
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= v * (1 - 1e-9))


def _y_axis(left: float, top: float, h: float, top_v: float, fmt) -> list[str]:
    out = []
    for k in range(5):
        y = top + h - k * h / 4
        out.append(f'<path d="M{left} {_num(y)}H{W - 10}" stroke="#e3e7ec"/>')
        out.append(_text(left - 6, y + 4, fmt(top_v * k / 4), "end", "small"))
    return out


def line(x: list[int], values: list, targets: list, bands: list[tuple[int, int, str]], fmt, label: str) -> str:
    """A time series (UTC), its target as a dashed line, incident windows shaded."""
    left, top, h, bottom = 60, 24, 170, 26
    if not x:
        return _svg(40, [_text(W / 2, 24, "no data", "middle")], label)
    lo = min([x[0]] + [b[0] for b in bands])
    hi = max([x[-1]] + [b[1] for b in bands])
    span = max(hi - lo, 1)
    top_v = nice(max([v for v in values + targets if v is not None] + [1e-12]))

    def px(t: float) -> float:
        return left + (t - lo) / span * (W - left - 20)

    def py(v: float) -> float:
        return top + h - v / top_v * h

    items = [("realised", _LEGEND_BAR), ("target", _LEGEND_TARGET)] + ([("incident", _LEGEND_BAND)] if bands else [])
    body = _legend(10, items) + _y_axis(left, top, h, top_v, fmt)
    for b0, b1, name in bands:
        body.append(
            f'<rect x="{_num(px(b0))}" y="{top}" width="{_num(max(px(b1) - px(b0), 1))}" height="{h}" fill="{BAND}" '
            f'opacity=".3"><title>{escape(name)}</title></rect>'
        )
    pts = " ".join(f"{_num(px(t))},{_num(py(v))}" for t, v in zip(x, values, strict=True) if v is not None)
    tgt = " ".join(f"{_num(px(t))},{_num(py(v))}" for t, v in zip(x, targets, strict=True) if v is not None)
    body.append(f'<polyline points="{tgt}" fill="none" stroke="{DARK}" stroke-width="1.5" stroke-dasharray="4 2"/>')
    body.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    if len(x) == 1:
        body.append(f'<circle cx="{_num(px(x[0]))}" cy="{_num(py(values[0]))}" r="3" fill="{BLUE}"/>')
    daily = span > 3 * 86_400_000_000
    for k in range(6):
        t = lo + span * k / 5
        d = datetime.fromtimestamp(t / 1e6, UTC)
        body.append(_text(px(t), top + h + 18, d.strftime("%b %d" if daily else "%b %d %H:%M"), "middle", "small"))
    return _svg(top + h + bottom, body, label)


def ranges(rows: list[dict], label: str) -> str:
    """Per carrier: realised p10-p90 with the median, over the target's p10-p90 and median."""
    left, row_h, top = 150, 30, 30
    top_v = max([v for r in rows for v in r["values"] + r["targets"] if v is not None] + [1.0]) * 1.05
    scale = (W - left - 20) / top_v
    body = _legend(10, [("realised p10-p50-p90", _LEGEND_BAR), ("target", _LEGEND_TARGET)])
    for k in range(0, int(top_v) + 1, max(1, int(top_v) // 8)):
        x = _num(left + k * scale)
        body.append(f'<path d="M{x} {top - 4}V{top + len(rows) * row_h}" stroke="#e3e7ec"/>')
        body.append(_text(left + k * scale, top + len(rows) * row_h + 14, f"{k} d", "middle", "small"))
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        body.append(_text(left - 8, y + 4, r["label"], "end"))
        t10, t50, t90 = r["targets"]
        body.append(_path(f"M{_num(left + t10 * scale)} {_num(y - 5)}H{_num(left + t90 * scale)}", GREY, 8))
        body.append(_path(f"M{_num(left + t50 * scale)} {_num(y - 10)}v10", DARK, 2, ' stroke-dasharray="3 1"'))
        known = [v for v in r["values"] if v is not None]
        if len(known) > 1:
            body.append(
                _path(f"M{_num(left + known[0] * scale)} {_num(y + 5)}H{_num(left + known[-1] * scale)}", BLUE, 3)
            )
        for v in known:
            body.append(f'<circle cx="{_num(left + v * scale)}" cy="{_num(y + 5)}" r="3.5" fill="{BLUE}"/>')
        if len(known) < 3:
            missing = "/".join(f"p{q}" for q, v in zip((10, 50, 90), r["values"], strict=True) if v is None)
            body.append(_text(W - 12, y + 9, f"{missing} not reached yet", "end", "small"))
    return _svg(top + len(rows) * row_h + 22, body, label)


# -- the page ---------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;max-width:980px;margin:24px auto;
padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin:32px 0 8px;border-bottom:1px solid #d5dbe2}
.meta,.note{color:#56606b}.note{font-size:13px;max-width:900px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eceff3;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f4f6f8}.bad{color:#b3261e;font-weight:600}
svg{display:block;margin:10px 0;max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#1d232b}svg text.small{font-size:11px;fill:#56606b}
"""


def _pct(v: float) -> str:
    return f"{100 * v:.3g}%" if v else "0"


def _charts(sec: Section, s: Summary) -> list[str]:
    c = sec.chart
    bands = [(i.start, i.end, f"{i.kind} {i.params}") for i in s.incidents]
    out = []
    if sec.key in ("events", "traffic"):
        draw = columns if c.get("vertical") else bars
        out.append(draw(c["labels"], c["values"], c["targets"], _pct, sec.title))
    elif sec.key in ("funnel", "orders"):
        out.append(bars(c["labels"], c["values"], c["targets"], lambda v: f"{v:,.0f}", sec.title))
    elif sec.key == "latency":
        out.append(bars(c["labels"], c["values"], c["targets"], lambda v: f"{v:,.0f} ms", "latency percentiles"))
        ot = c["over_time"]
        targets = [ot["target"]] * len(ot["x"])
        out.append("<h3>INVALID LATENCY over time</h3>")
        out.append(line(ot["x"], ot["values"], targets, bands, _pct, "INVALID LATENCY over time"))
    elif sec.key == "payments":
        out.append(f"<h3>Failure rate per attempt, per {c['width']} (UTC)</h3>")
        out.append(line(c["x"], c["values"], c["targets"], bands, _pct, "payment failure rate over time"))
    elif sec.key == "delivery":
        out.append(ranges(c["rows"], sec.title))
    if sec.key == "traffic":
        ot = c["over_time"]
        out.append("<h3>Sessions over time (UTC)</h3>")
        out.append(line(ot["x"], ot["values"], ot["targets"], bands, lambda v: f"{v:,.0f}", "sessions over time"))
    return out


def html_page(s: Summary) -> str:
    level = flag_level(s)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>gen report: {escape(', '.join(s.runs))}</title><style>{_CSS}</style></head><body>",
        "<h1>Event log report</h1>",
        f'<p class="meta">{len(s.runs)} run(s): {escape(", ".join(s.runs))}<br>{s.events:,} events, '
        f"{escape(iso(s.first_ts))} .. {escape(iso(s.last_ts))}<br>Targets: {escape(s.scenario)}. Deviations more "
        f"than {level:.1f} standard errors from a target are <span class=bad>marked</span> (chance alone exceeds "
        "that in about one report in a hundred).</p>",
    ]
    if s.incidents:
        items = "".join(
            f"<li>{escape(i.kind)} {escape(iso(i.start))} .. {escape(iso(i.end))} {escape(str(i.params))}</li>"
            for i in s.incidents
        )
        parts.append(f"<h2>Incidents</h2><ul>{items}</ul>")
    for sec in s.sections:
        parts.append(f'<section id="{sec.key}"><h2>{escape(sec.title)}</h2>')
        parts.extend(_charts(sec, s))
        parts.append("<table><tr><th>statistic</th><th>value</th><th>target</th><th>deviation</th><th>n</th></tr>")
        for r in sec.rows:
            cls = ' class="bad"' if flagged(r, level) else ""
            parts.append(
                f"<tr><td>{escape(r.label)}</td><td>{escape(value_text(r, r.value))}</td>"
                f"<td>{escape(value_text(r, r.target))}</td><td{cls}>{escape(deviation_text(r))}</td>"
                f"<td>{escape(_n(r))}</td></tr>"
            )
        parts.append("</table>")
        parts.extend(f'<p class="note">{escape(n)}</p>' for n in sec.notes)
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(s: Summary, path: Path) -> None:
    write_atomic(path, html_page(s).encode("utf-8"))
