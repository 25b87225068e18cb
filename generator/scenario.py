"""Scenario files: a TOML file laid over the built-in `scenarios/default.toml`, validated once, here, before anything
is generated, then turned into the `Behaviour` the core simulates.

A scenario names only what it changes: tables merge key by key, and arrays (the hourly curve, the incidents)
replace the default's. Every key, type, range, mix and incident is checked; the first problem raises
`ScenarioError` naming the file, the dotted key and what is wrong.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from generator.config import MAX_CUSTOMERS, ConfigError
from generator.core.behaviour import (
    FULFILMENT_STAGES,
    OPERATORS,
    REGIONS,
    ZONES,
    Behaviour,
    default_behaviour,
    default_scenario,
    instant_us,
    parse_promotion_start,
)
from generator.core.faults import FAULT_KINDS
from generator.schema import EVENT_TYPES, PAYMENT_METHODS, PLATFORMS, SESSION_EVENTS

MIX_TOLERANCE = 1e-6
INCIDENT_KINDS = ("payment_outage", "latency_degradation", "flash_sale", "carrier_delay")
_DEFAULT_SOURCE = "scenarios/default.toml"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScenarioError(ConfigError):
    """A scenario file is unreadable or invalid; the message names the file, the key and the problem."""


# A check returns None when the value is fine, else the problem (the key is added by the caller).
Check = Callable[[object], str | None]


def _show(v: object) -> str:
    """A value as the TOML file has it (true, 09:00:00, [1, 2]), strings quoted."""
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, date | time):
        return v.isoformat()
    if isinstance(v, list):
        return f"[{', '.join(_show(x) for x in v)}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_show(x)}" for k, x in v.items()) + "}"
    return str(v)


def _kind(v: object) -> str:
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "an array", dict: "a table"}
    kinds |= {datetime: "a date-time", date: "a date", time: "a time of day"}
    return kinds.get(type(v), type(v).__name__)


def _number(v: object) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"expected a number, got {_show(v)} ({_kind(v)})"
    if not math.isfinite(v):
        return f"{v} is not a finite number"
    return None


def _probability(v: object) -> str | None:
    problem = _number(v)
    if problem is None and not 0 <= v <= 1:
        return f"{v} is not a probability in [0, 1]"
    return problem


def _non_negative(v: object) -> str | None:
    problem = _number(v)
    if problem is None and v < 0:
        return f"{v} must not be negative"
    return problem


def _factor_from_one(v: object) -> str | None:
    problem = _number(v)
    if problem is None and not 1 <= v <= 20:
        return f"{v} is not a factor from 1 to 20"
    return problem


def _positive(v: object) -> str | None:
    problem = _number(v)
    if problem is None and v <= 0:
        return f"{v} must be above 0"
    return problem


def _whole(lo: int, hi: int | None = None) -> Check:
    def check(v: object) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected a whole number, got {_show(v)} ({_kind(v)})"
        if v < lo or (hi is not None and v > hi):
            return f"{v} is outside {lo}..{hi}" if hi is not None else f"{v} must be at least {lo}"
        return None

    return check


def _boolean(v: object) -> str | None:
    if not isinstance(v, bool):
        return f"expected true or false, got {_show(v)} ({_kind(v)})"
    return None


def _text(v: object) -> str | None:
    if not isinstance(v, str) or not v:
        return f"expected a non-empty string, got {_show(v)} ({_kind(v)})"
    return None


def _one_of(names: tuple[str, ...], what: str) -> Check:
    def check(v: object) -> str | None:
        if v not in names:
            return f"unknown {what} {_show(v)} (one of {', '.join(names)})"
        return None

    return check


def _hourly(v: object) -> str | None:
    if not isinstance(v, list) or len(v) != 24:
        return f"expected an array of 24 numbers (one per hour, WAT), got {_show(v)}"
    for i, x in enumerate(v):
        if (problem := _non_negative(x)) is not None:
            return f"hour {i}: {problem}"
    if sum(v) <= 0:
        return "all 24 hours are 0: no traffic at all"
    return None


def _payday_curve(v: object) -> str | None:
    if not isinstance(v, list) or not 1 <= len(v) <= 28:
        return f"expected an array of 1 to 28 numbers (one per day from the payday on), got {_show(v)}"
    for i, x in enumerate(v):
        if (problem := _non_negative(x)) is not None:
            return f"day {i}: {problem}"
    return None


def _pickups(v: object) -> str | None:
    if not isinstance(v, list) or len(v) > 24 or any(_number(x) is not None for x in v):
        return f"expected an array of at most 24 times of day, hours in WAT ([]: any time), got {_show(v)}"
    if any(not 0 <= x < 24 for x in v):
        return f"expected hours in WAT from 0 to under 24, got {v}"
    return None


def _dates(v: object) -> str | None:
    if not isinstance(v, list):
        return f"expected an array of dates (YYYY-MM-DD, in WAT), got {_show(v)}"
    for i, x in enumerate(v):
        if isinstance(x, datetime) or not isinstance(x, date | str):
            return f"item {i}: expected a date (YYYY-MM-DD), got {_show(x)}"
        if isinstance(x, str):
            try:
                date.fromisoformat(x)
            except ValueError:
                return f"item {i}: {x!r} is not a date (YYYY-MM-DD)"
    return None


def _promotion_start(v: object) -> str | None:
    if not isinstance(v, str):
        return f'expected a month and day ("MM-DD") or "black-friday" with an offset, got {_show(v)} ({_kind(v)})'
    try:
        parse_promotion_start(v)
    except ValueError as e:
        return str(e)
    return None


_PROMOTION: dict[str, Check] = {
    "name": _text,
    "start": _promotion_start,
    "days": _whole(1, 366),
    "traffic_factor": _positive,
    "conversion_factor": _positive,
}


def _promotions(v: object) -> str | None:
    """`calendar.promotions`: an array of tables ([[calendar.promotions]]), each checked key by key (a problem
    raises naming the item's key, as an incident's does)."""
    if not isinstance(v, list):
        return f"expected an array of tables ([[calendar.promotions]]), got {_show(v)}"
    unknown = f"unknown key (a promotion's: {', '.join(_PROMOTION)})"
    for i, item in enumerate(v):
        _check_table(item, _PROMOTION, f"calendar.promotions[{i}]", unknown)
    return None


def _regions(v: object) -> str | None:
    if not isinstance(v, list) or not v or any(not isinstance(x, str) for x in v):
        return f"expected a non-empty array of regions ({', '.join(REGIONS)}), got {_show(v)}"
    unknown = [x for x in v if x not in REGIONS]
    if unknown:
        return f"{unknown[0]!r} is not a region ({', '.join(REGIONS)})"
    return None


def _opening(v: object) -> str | None:
    expected = "expected [opening, closing] hours in WAT with 0 <= opening <= closing <= 24 ([0, 0]: closed)"
    if not isinstance(v, list) or len(v) != 2 or any(_number(x) is not None for x in v):
        return f"{expected}, got {_show(v)}"
    if not 0 <= v[0] <= v[1] <= 24:
        return f"{expected}, got {v}"
    return None


def _instant(v: object) -> str | None:
    if not isinstance(v, date | str):  # a time of day (09:00:00), a number: no instant
        return f"expected an ISO 8601 date-time (UTC when no offset), got {_show(v)} ({_kind(v)})"
    try:
        instant_us(v)
    except ValueError as e:
        return f"expected an ISO 8601 date-time (UTC when no offset): {e}"
    return None


_GAP_EVENTS = SESSION_EVENTS[1:]  # a gap before every session event but the OPEN that starts it
_ANY = "*"  # a table whose keys are names the scenario chooses (carriers)
_OPTIONAL = frozenset({"regions"})  # keys that may be left out: a carrier's regions (default: everywhere)

# Every key a scenario may hold, declared once: a check per value, a nested dict per table.
SPEC: dict = {
    "population": {"customers": _whole(1, MAX_CUSTOMERS), "sessions_per_day": _positive, "activity_shape": _positive},
    "platform": {
        "mix": dict.fromkeys(PLATFORMS, _probability),
        "loyalty": _probability,
        "region_factor": {region: dict.fromkeys(PLATFORMS, _positive) for region in REGIONS},
    },
    "traffic": {
        "hourly_wat": _hourly,
        "weekend_hourly_wat": _hourly,
        "weekend_factor": _non_negative,
        "payday_factor": _non_negative,
        "payday_from_day": _whole(1, 31),
        "payday_curve": _payday_curve,
        "ramp_start": _instant,
        "ramp_days": _non_negative,
        "ramp_first_factor": _positive,
        "ramp_sign_ups": _boolean,
    },
    "funnel": {
        "login": _probability,
        "bounce": _probability,
        "extra_views_mean": _non_negative,
        "extra_views_shape": _positive,
        "add_to_cart": _probability,
        "add_to_cart_factor": dict.fromkeys(PLATFORMS, _non_negative),
        "propensity_sigma": _non_negative,
        "add_more": _probability,
        "carted_views_factor": _factor_from_one,
        "cart_anywhere": _boolean,
        "checkout": _probability,
        "abandon_at_payment": _probability,
        "abandon_free_shipping": _probability,
    },
    "payment": {
        "mix": dict.fromkeys(PAYMENT_METHODS, _probability),
        "failure": dict.fromkeys(PAYMENT_METHODS, _probability),
        "loyalty": _probability,
        "outages": {
            "per_week": _non_negative,
            "hours_median": _positive,
            "failure_rate": _probability,
            "mix": dict.fromkeys(PAYMENT_METHODS, _probability),
        },
        "retry": _probability,
        "switch_method": _probability,
        "max_attempts": _whole(1, 20),
        "ussd_max_ngn": _positive,
        "region_factor": dict.fromkeys(REGIONS, dict.fromkeys(PAYMENT_METHODS, _positive)),
        "platform_factor": dict.fromkeys(PLATFORMS, dict.fromkeys(PAYMENT_METHODS, _positive)),
    },
    "basket": {
        "item_median_ngn": _positive,
        "item_sigma": _non_negative,
        "charm": _probability,
        # a basket is clipped to max_ngn, and total_amount is a decimal(12, 2): at most 9,999,999,999.99 naira
        "min_ngn": _whole(0, 9_999_999_999),
        "max_ngn": _whole(1, 9_999_999_999),
        "free_shipping_ngn": _positive,
        "top_up": _probability,
        "top_up_gap_ngn": _non_negative,
        "region_factor": dict.fromkeys(REGIONS, _positive),
        "platform_factor": dict.fromkeys(PLATFORMS, _positive),
    },
    "fulfilment": {
        "packed_hours_median": _non_negative,
        "shipped_hours_median": _non_negative,
        "hours_sigma": _non_negative,
        "transit_sigma": _non_negative,
        "pickups_wat": _pickups,
        "pickup_minutes": _non_negative,
        "delivery_rounds": _boolean,
        "failed_attempt": _probability,
        "tracking_permuted": _boolean,
        "outside_hubs_factor": _positive,
        "zone_factor": dict.fromkeys(ZONES, _positive),
        "hours_wat": {
            stage: dict.fromkeys(("weekdays", "saturday", "sunday"), _opening) for stage in FULFILMENT_STAGES
        },
        "carriers": {
            _ANY: {
                "share": _probability,
                "transit_days": _non_negative,
                "tracking_prefix": _text,
                # at least 12 digits keep tracking numbers unique per order; 10**19 still fits 64 bits
                "tracking_digits": _whole(12, 19),
                "regions": _regions,  # where it delivers (default: everywhere)
            }
        },
    },
    "session": {
        "gap_sigma": _non_negative,
        "gap_seconds": dict.fromkeys(_GAP_EVENTS, _non_negative),
        "retry_pause_seconds": _non_negative,
        "authorization_factor": dict.fromkeys(PAYMENT_METHODS, _positive),
    },
    "latency": {
        "network_ms": dict.fromkeys(OPERATORS, _non_negative),
        "peak_load": _non_negative,
        "customer_sigma": _non_negative,
        "fulfilment_round_trip": _boolean,
        "server_median_ms": dict.fromkeys(PLATFORMS, _positive),
        "server_factor": dict.fromkeys(EVENT_TYPES, _positive),
        "sigma": dict.fromkeys(PLATFORMS, _non_negative),
        "threshold_ms": _whole(0, 2**31 - 1),  # latency_ms is a 32-bit integer
    },
    "faults": dict.fromkeys(FAULT_KINDS, _probability),
    "calendar": {"public_holidays": _dates, "promotions": _promotions},
}
_MIXES = ("platform.mix", "payment.mix", "payment.outages.mix")
_INCIDENT_PARAMS: dict[str, dict[str, Check]] = {
    "payment_outage": {"method": _one_of(PAYMENT_METHODS, "payment method"), "failure_rate": _probability},
    "latency_degradation": {"platform": _one_of(PLATFORMS, "platform"), "factor": _positive},
    "flash_sale": {"traffic_factor": _positive, "conversion_factor": _positive},
    "carrier_delay": {"carrier": _text, "extra_days": _non_negative},  # the carrier is checked against the scenario's
}


class _Invalid(Exception):
    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")


# Keys a scenario file of an earlier version may still name, and what took their place.
_REPLACED = {
    "basket.median_ngn": "replaced in 0.3.0 by item_median_ngn, the median item price (a basket sums its items')",
    "basket.sigma": "replaced in 0.3.0 by item_sigma, the spread of item prices (a basket sums its items')",
    "latency.floor_ms": "replaced in 0.4.0 by network_ms, each mobile operator's round trip (and peak_load)",
    "latency.median_ms": "replaced in 0.4.0 by server_median_ms, the server time's median (the round trip adds to it)",
}


def _check_table(doc: object, spec: dict, key: str, unknown: str = "unknown key") -> None:
    if not isinstance(doc, dict):
        raise _Invalid(key, f"expected a table, got {_show(doc)} ({_kind(doc)})")
    for name, value in doc.items():
        where = f"{key}.{name}" if key else name
        rule = spec.get(name, spec.get(_ANY))
        if rule is None:
            raise _Invalid(where, _REPLACED.get(where, unknown))
        if isinstance(rule, dict):
            _check_table(value, rule, where)
        elif (problem := rule(value)) is not None:
            raise _Invalid(where, problem)
    for name in spec:
        if name != _ANY and name not in doc and name not in _OPTIONAL:
            raise _Invalid(f"{key}.{name}" if key else name, "missing")


def _get(doc: dict, dotted: str) -> dict:
    for part in dotted.split("."):
        doc = doc[part]
    return doc


def _check_sums(doc: dict) -> None:
    shares = {k: list(_get(doc, k).values()) for k in _MIXES}
    carriers = doc["fulfilment"]["carriers"]
    shares["fulfilment.carriers"] = [c["share"] for c in carriers.values()]
    for region in REGIONS:
        if not any(c["share"] > 0 and region in c.get("regions", REGIONS) for c in carriers.values()):
            raise _Invalid("fulfilment.carriers", f"no carrier with a share delivers to {region}")
    for key, values in shares.items():
        total = math.fsum(values)
        if abs(total - 1) > MIX_TOLERANCE:
            raise _Invalid(key, f"shares sum to {total:.6g}, not 1")
    total = math.fsum(doc["faults"].values())
    if total > 1 + MIX_TOLERANCE:  # one draw per event picks at most one fault
        raise _Invalid("faults", f"rates sum to {total:.6g}, above 1 (an event gets at most one fault)")
    traffic = doc["traffic"]
    if traffic.get("ramp_sign_ups", False) and traffic["ramp_first_factor"] > 1:
        raise _Invalid(
            "traffic.ramp_first_factor",
            f"{traffic['ramp_first_factor']} is above 1: with ramp_sign_ups it is the share of the customers signed up "
            "before ramp_start",
        )
    basket = doc["basket"]
    if basket["min_ngn"] > basket["max_ngn"]:
        raise _Invalid("basket.min_ngn", f"{basket['min_ngn']} is above max_ngn {basket['max_ngn']}")
    for stage, days in doc["fulfilment"]["hours_wat"].items():
        if all(opening >= closing for opening, closing in days.values()):
            raise _Invalid(f"fulfilment.hours_wat.{stage}", "closed every day: its events could never happen")


def _check_incidents(items: object, carriers: tuple[str, ...]) -> list[dict]:
    """The incidents with start and end as UTC datetimes."""
    if not isinstance(items, list):
        raise _Invalid("incidents", f"expected an array of tables ([[incidents]]), got {_show(items)}")
    out = []
    for i, inc in enumerate(items):
        key = f"incidents[{i}]"
        if not isinstance(inc, dict):
            raise _Invalid(key, f"expected a table, got {_show(inc)} ({_kind(inc)})")
        kind = inc.get("kind")
        if kind is None:
            raise _Invalid(f"{key}.kind", "missing")
        if kind not in INCIDENT_KINDS:
            raise _Invalid(f"{key}.kind", f"unknown incident kind {_show(kind)} (one of {', '.join(INCIDENT_KINDS)})")
        params = _INCIDENT_PARAMS[kind]
        spec: dict[str, Check] = {"kind": _text, "start": _instant, "end": _instant, **params}
        if kind == "carrier_delay":
            spec["carrier"] = _one_of(carriers, "carrier")
        _check_table(inc, spec, key, f"unknown key for a {kind} incident (its keys: {', '.join(spec)})")
        start, end = (_EPOCH + timedelta(microseconds=instant_us(inc[k])) for k in ("start", "end"))
        if end <= start:
            raise _Invalid(f"{key}.end", f"{end.isoformat()} is not after start {start.isoformat()}")
        out.append(inc | {"start": start, "end": end})
    return out


def merge(base: dict, over: dict) -> dict:
    """`over` laid on `base`: tables merge key by key, anything else (arrays included) replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def validated(doc: dict, source: str) -> dict:
    """`doc` (a whole scenario, defaults included) checked; returned with `incidents` normalised (start and end
    as UTC datetimes, [] when none). Raises ScenarioError naming `source`, the key and the problem."""
    try:
        _check_table({k: v for k, v in doc.items() if k != "incidents"}, SPEC, "")
        _check_sums(doc)
        incidents = _check_incidents(doc.get("incidents", []), tuple(doc["fulfilment"]["carriers"]))
    except _Invalid as e:
        raise ScenarioError(f"{source}: {e}") from None
    calendar = doc.get("calendar", {})
    if "public_holidays" in calendar:  # as dates, sorted, each once (a string in a stored manifest too)
        days = {x if isinstance(x, date) else date.fromisoformat(x) for x in calendar["public_holidays"]}
        doc = doc | {"calendar": calendar | {"public_holidays": sorted(days)}}
    return doc | {"incidents": incidents}


def _read(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: cannot read the scenario: {getattr(e, 'strerror', None) or e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from None


def effective_scenario(path: str | Path | None = None) -> dict:
    """The scenario a run would simulate: the file at `path` over the defaults (the defaults alone for None),
    validated."""
    if path is None:
        return validated(default_scenario(), _DEFAULT_SOURCE)
    return validated(merge(default_scenario(), _read(path)), str(path))


def load_scenario(path: str | Path | None = None) -> Behaviour:
    """The behaviour of the scenario at `path` (the built-in default for None), validated before anything runs;
    raises ScenarioError (a ConfigError: exit code 2)."""
    if path is None:
        return default_behaviour()
    return Behaviour.from_dict(effective_scenario(path))


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_table(header: str, table: dict, lines: list[str]) -> None:
    lines += ["", f"[{header}]"]
    nested = []
    for k, v in table.items():
        if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
            nested.append((f"{header}.{_toml_key(k)}", v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for h, sub in nested:
        _toml_table(h, sub, lines)


def to_toml(doc: dict, source: str = "") -> str:
    """An effective scenario as TOML text (it reads back as the same scenario)."""
    lines = [f"# Effective scenario: {source or 'the built-in default'} (defaults fill what it leaves out)"]
    for k, v in doc.items():
        if k != "incidents":
            _toml_table(_toml_key(k), v, lines)
    if not doc.get("incidents"):
        lines += ["", "# no incidents"]
    for inc in doc.get("incidents", []):
        lines += ["", "[[incidents]]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in inc.items())]
    return "\n".join(lines) + "\n"
