"""Scenario files: the defaults validate, partial files fall back to them, the shipped examples load, and every kind
of invalid file is refused by `gen scenario show` with exit code 2 and one line naming the file and the key."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.cli import main
from generator.config import ConfigError
from generator.core.behaviour import Behaviour, default_behaviour, default_scenario
from generator.scenario import (
    SPEC,
    ScenarioError,
    effective_scenario,
    load_scenario,
    to_toml,
    validated,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("payment-outage", "black-friday", "carrier-delay", "launch")


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _leaves(spec: dict, prefix: str = ""):
    for k, v in spec.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_default_scenario_validates_and_matches_the_spec():
    doc = default_scenario()
    assert validated(doc, "default.toml")["incidents"] == []
    # Every declared key is in default.toml (validation also refuses any key it does not declare).
    for dotted in _leaves(SPEC):
        node, parts = doc, dotted.split(".")
        for i, part in enumerate(parts):
            if part == "*":  # a carrier that has the key (an optional one, `regions`, is on some only)
                after = parts[i + 1] if i + 1 < len(parts) else None
                node = next(v for v in node.values() if after is None or after in v)
            else:
                node = node[part]
        assert node is not None, dotted


def test_the_repo_root_scenarios_are_the_packaged_ones():
    root = REPO / "scenarios"
    assert root.is_symlink()
    names = {p.name for p in root.glob("*.toml")}
    assert names == {"default.toml", *(f"{e}.toml" for e in EXAMPLES)}
    packaged = REPO / "generator" / "scenarios" / "default.toml"
    assert tomllib.loads((root / "default.toml").read_text()) == tomllib.loads(packaged.read_text())


def test_the_readme_states_each_default_carriers_tracking_number_width():
    """The README's tracking number formats follow scenarios/default.toml (a carrier's digits changed there must
    be changed in the README too)."""
    readme = " ".join((REPO / "README.md").read_text().split())
    carriers = default_behaviour().carriers
    for name, prefix, digits in zip(carriers.names, carriers.tracking_prefix, carriers.tracking_digits, strict=True):
        assert f"{name} `{prefix}` + {digits} digits" in readme, name


def test_no_file_and_an_empty_file_are_the_defaults(tmp_path):
    assert load_scenario(None) is default_behaviour()
    b = load_scenario(write(tmp_path, "# nothing changed\n"))
    d = default_behaviour()
    assert not b.incidents
    for name in (
        "method_mix",
        "method_failure",
        "platform_mix",
        "hourly_wat",
        "latency_server_ms",
        "latency_network_ms",
        "gap_seconds",
    ):
        np.testing.assert_array_equal(getattr(b, name), getattr(d, name))
    assert (b.checkout, b.customers, b.carriers.names) == (d.checkout, d.customers, d.carriers.names)


def test_a_partial_file_falls_back_key_by_key(tmp_path):
    text = """
[funnel]
checkout = 0.5

[payment.failure]
CARD = 0.3

[fulfilment.carriers.Speedaf]
transit_days = 9.0

[traffic]
hourly_wat = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
              1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0]
"""
    b, d = load_scenario(write(tmp_path, text)), default_behaviour()
    assert b.checkout == 0.5 and b.add_to_cart == d.add_to_cart and b.login == d.login
    doc = effective_scenario(tmp_path / "x.toml")
    assert doc["payment"]["failure"] == default_scenario()["payment"]["failure"] | {"CARD": 0.3}
    assert doc["payment"]["mix"] == default_scenario()["payment"]["mix"]
    speedaf = b.carriers.names.index("Speedaf")
    assert b.carriers.transit_days[speedaf] == 9.0
    assert b.carriers.share[speedaf] == d.carriers.share[speedaf]  # the rest of its table kept
    assert b.carriers.tracking_prefix == d.carriers.tracking_prefix
    assert b.hourly_wat[-1] == 2.0 and b.hourly_wat[0] == 1.0  # arrays replace, whole


def test_a_new_carrier_needs_all_its_keys_and_the_shares_rebalanced(tmp_path):
    new = 'Kwik = { share = 0.05, transit_days = 3.0, tracking_prefix = "KWK", tracking_digits = 12 }'
    ok = write(tmp_path, f'[fulfilment.carriers]\n{new}\n"NIPOST EMS" = {{ share = 0.0 }}\n')
    assert "Kwik" in load_scenario(ok).carriers.names
    unbalanced = write(tmp_path, f"[fulfilment.carriers]\n{new}\n", "u.toml")
    with pytest.raises(ScenarioError, match=r"fulfilment\.carriers: shares sum to 1\.05, not 1"):
        load_scenario(unbalanced)
    partial = write(tmp_path, "[fulfilment.carriers]\nKwik = { share = 0.0, transit_days = 3.0 }\n", "p.toml")
    with pytest.raises(ScenarioError, match=r"fulfilment\.carriers\.Kwik\.tracking_prefix: missing"):
        load_scenario(partial)


@pytest.mark.parametrize("name", EXAMPLES)
def test_shipped_examples_load_with_their_incidents(name):
    path = REPO / "scenarios" / f"{name}.toml"
    doc = effective_scenario(path)
    kinds = {i["kind"] for i in doc["incidents"]}
    assert (
        kinds
        == {
            "payment-outage": {"payment_outage"},
            "black-friday": {"flash_sale", "latency_degradation", "payment_outage"},
            "carrier-delay": {"carrier_delay"},
            "launch": {"flash_sale"},
        }[name]
    )
    for inc in doc["incidents"]:
        assert inc["end"] > inc["start"] and inc["start"].utcoffset().total_seconds() == 0
    assert load_scenario(path).incidents
    # Each example explains its story in a comment before its first table.
    text = path.read_text()
    assert text.startswith("# ") and len(text.split("[[incidents]]")[0].splitlines()) >= 5


def test_black_friday_is_on_28_november_2025_in_wat():
    doc = effective_scenario(REPO / "scenarios" / "black-friday.toml")
    sale = next(i for i in doc["incidents"] if i["kind"] == "flash_sale")
    assert sale["start"].isoformat() == "2025-11-27T23:00:00+00:00"  # midnight WAT
    assert (sale["end"] - sale["start"]).total_seconds() == 86_400


@pytest.mark.parametrize("name", ["default", *EXAMPLES])
def test_show_prints_toml_that_reads_back_as_the_same_scenario(tmp_path, capsys, name):
    path = REPO / "scenarios" / f"{name}.toml"
    assert main(["scenario", "show", "--scenario", str(path)]) == 0
    again = write(tmp_path, capsys.readouterr().out)
    assert effective_scenario(again) == effective_scenario(path)


def test_show_json_without_a_file_is_the_default(capsys):
    assert main(["scenario", "show", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["incidents"] == [] and doc["funnel"] == default_scenario()["funnel"]


def test_show_json_writes_incident_instants_in_utc(capsys):
    assert main(["scenario", "show", "--json", "--scenario", str(REPO / "scenarios" / "payment-outage.toml")]) == 0
    (outage,) = orjson.loads(capsys.readouterr().out)["incidents"]
    assert outage == {
        "kind": "payment_outage",
        "start": "2025-11-03T08:00:00+00:00",
        "end": "2025-11-03T14:00:00+00:00",
        "method": "CARD",
        "failure_rate": 0.85,
    }


INCIDENT = '[[incidents]]\nkind = "payment_outage"\nstart = "2025-11-03T08:00:00Z"\nend = "2025-11-03T14:00:00Z"\n'
# A promotion's table with its name and `start`; a case adds one of the other keys after it, the rest stay missing
# (the first problem found is the case's own: a bad start, then keys in SPEC order).
PROMOTION = '[[calendar.promotions]]\nname = "11.11"\nstart = {start}\n'
ELEVEN = PROMOTION.format(start='"11-11"')
INVALID = [
    # (file text, the key the message names, the problem it states)
    ("[funnle]\ncheckout = 0.3\n", "funnle", "unknown key"),
    ("[funnel]\nchekout = 0.3\n", "funnel.chekout", "unknown key"),
    ("[payment.mix]\nBITCOIN = 0.0\n", "payment.mix.BITCOIN", "unknown key"),
    ("seed = 3\n", "seed", "unknown key"),
    ('[population]\ncustomers = "many"\n', "population.customers", "expected a whole number, got 'many'"),
    ("[population]\ncustomers = 1.5\n", "population.customers", "expected a whole number"),
    ("[population]\ncustomers = 1_000_000_001\n", "population.customers", "1000000001 is outside 1..1000000000"),
    ('[funnel]\ncheckout = "0.3"\n', "funnel.checkout", "expected a number, got '0.3' (a string)"),
    ("[funnel]\ncheckout = true\n", "funnel.checkout", "expected a number"),
    ('[fulfilment.carriers.DHL]\nregions = ["lagos"]\n', "fulfilment.carriers.DHL.regions", "'lagos' is not a region"),
    ("[fulfilment.carriers.DHL]\nregions = []\n", "fulfilment.carriers.DHL.regions", "expected a non-empty array"),
    (
        "[fulfilment.carriers]\n"
        + "".join(f'"{c}" = {{ regions = ["lagos_fct"] }}\n' for c in ("Speedaf", "DHL", "GIG Logistics"))
        + "".join(f'"{c}" = {{ regions = ["lagos_fct"] }}\n' for c in ("Red Star Express", "NIPOST EMS")),
        "fulfilment.carriers",
        "no carrier with a share delivers to south_west",
    ),
    ('[latency]\nfulfilment_round_trip = "no"\n', "latency.fulfilment_round_trip", "expected true or false, got 'no'"),
    ("[funnel]\ncheckout = nan\n", "funnel.checkout", "not a finite number"),
    ("[fulfilment]\npickups_wat = [11, 24]\n", "fulfilment.pickups_wat", "from 0 to under 24"),
    ('[fulfilment]\npickups_wat = "11:00"\n', "fulfilment.pickups_wat", "expected an array of at most 24 times"),
    ("[fulfilment]\npickup_minutes = -5\n", "fulfilment.pickup_minutes", "-5"),
    ("[latency]\nthreshold_ms = 99999999999999\n", "latency.threshold_ms", "is outside 0..2147483647"),
    ("[basket]\nmax_ngn = 10_000_000_000\n", "basket.max_ngn", "is outside 1..9999999999"),
    ("funnel = 3\n", "funnel", "expected a table"),
    ("[payment.failure]\nCARD = 1.7\n", "payment.failure.CARD", "1.7 is not a probability in [0, 1]"),
    ("[funnel]\nbounce = -0.1\n", "funnel.bounce", "not a probability"),
    ("[basket]\nmedian_ngn = 12000\n", "basket.median_ngn", "replaced in 0.3.0 by item_median_ngn"),
    ("[funnel]\nextra_views_shape = 0\n", "funnel.extra_views_shape", "must be above 0"),
    ("[funnel]\nabandon_at_payment = 1.01\n", "funnel.abandon_at_payment", "1.01 is not a probability in [0, 1]"),
    ("[platform.mix]\nANDROID = 0.8\n", "platform.mix", "shares sum to 1.1, not 1"),
    ("[payment.mix]\nTRANSFER = 0.5\n", "payment.mix", "shares sum to 1.04, not 1"),
    ("[payment]\nussd_max_ngn = 0\n", "payment.ussd_max_ngn", "0 must be above 0"),
    ('[payment]\nussd_max_ngn = "100k"\n', "payment.ussd_max_ngn", "expected a number, got '100k'"),
    ("[payment.region_factor.north_west]\nUSSD = -2\n", "payment.region_factor.north_west.USSD", "above 0"),
    ("[payment.region_factor]\nnorth = { USSD = 2.0 }\n", "payment.region_factor.north", "unknown key"),
    ("[payment.platform_factor.IOS]\nBITCOIN = 1.0\n", "payment.platform_factor.IOS.BITCOIN", "unknown key"),
    ("[payment.platform_factor]\nWEB = 2.0\n", "payment.platform_factor.WEB", "expected a table, got 2.0"),
    ('[payment.platform_factor.WEB]\nPAYPAL = "x"\n', "payment.platform_factor.WEB.PAYPAL", "expected a number"),
    ("[fulfilment.carriers.DHL]\nshare = 0.2\n", "fulfilment.carriers", "shares sum to 1.08, not 1"),
    ("[fulfilment]\npacked_hours_median = -3\n", "fulfilment.packed_hours_median", "-3 must not be negative"),
    ("[fulfilment.zone_factor]\nnorth_east = 0\n", "fulfilment.zone_factor.north_east", "must be above 0"),
    ("[funnel.add_to_cart_factor]\nWEB = -0.4\n", "funnel.add_to_cart_factor.WEB", "must not be negative"),
    ('[calendar]\npublic_holidays = ["25/12/2025"]\n', "calendar.public_holidays", "'25/12/2025' is not a date"),
    ("[calendar]\npublic_holidays = [2025-12-25T09:00:00Z]\n", "calendar.public_holidays", "item 0: expected a date"),
    ("[calendar]\npublic_holidays = 2025-12-25\n", "calendar.public_holidays", "expected an array of dates"),
    ("[calendar]\nholidays = [2025-12-25]\n", "calendar.holidays", "unknown key"),
    ("[traffic]\npayday_curve = []\n", "traffic.payday_curve", "expected an array of 1 to 28 numbers"),
    ("[traffic]\npayday_curve = " + str([0.5] * 29) + "\n", "traffic.payday_curve", "1 to 28 numbers"),
    ("[traffic]\npayday_curve = [0.5, -1.0]\n", "traffic.payday_curve", "day 1: -1.0 must not be negative"),
    ('[traffic]\npayday_curve = [0.5, "x"]\n', "traffic.payday_curve", "day 1: expected a number"),
    ("[traffic]\nweekend_hourly_wat = [1.0, 2.0]\n", "traffic.weekend_hourly_wat", "array of 24 numbers"),
    ("[traffic]\nweekend_hourly_wat = " + str([0.0] * 24) + "\n", "traffic.weekend_hourly_wat", "all 24 hours are 0"),
    ('[calendar]\npromotions = "11-11"\n', "calendar.promotions", "expected an array of tables"),
    ("[calendar]\npromotions = [1.5]\n", "calendar.promotions[0]", "expected a table"),
    (PROMOTION.format(start='"11/11"'), "calendar.promotions[0].start", "neither a month and day (MM-DD)"),
    (PROMOTION.format(start='"02-29"'), "calendar.promotions[0].start", "not a day of every year"),
    (PROMOTION.format(start='"13-01"'), "calendar.promotions[0].start", "not a day of every year"),
    (PROMOTION.format(start='"black-friday+x"'), "calendar.promotions[0].start", "black-friday with an offset"),
    (PROMOTION.format(start="2025-11-11"), "calendar.promotions[0].start", "expected a month and day"),
    (ELEVEN + "days = 0\n", "calendar.promotions[0].days", "outside 1..366"),
    (ELEVEN + "traffic_factor = -1.6\n", "calendar.promotions[0].traffic_factor", "above 0"),
    (
        ELEVEN + 'conversion_factor = "high"\n',
        "calendar.promotions[0].conversion_factor",
        "a number",
    ),
    (ELEVEN + "discount = 0.5\n", "calendar.promotions[0].discount", "unknown key"),
    ('[[calendar.promotions]]\nname = "11.11"\nstart = "11-11"\n', "calendar.promotions[0].days", "missing"),
    ('[traffic]\nramp_start = "next week"\n', "traffic.ramp_start", "expected an ISO 8601 date-time"),
    ("[traffic]\nramp_days = -3\n", "traffic.ramp_days", "must not be negative"),
    ("[traffic]\nramp_first_factor = 0\n", "traffic.ramp_first_factor", "must be above 0"),
    ('[traffic]\nramp_sign_ups = "yes"\n', "traffic.ramp_sign_ups", "expected true or false"),
    ("[traffic]\nramp_sign_ups = true\nramp_first_factor = 1.5\n", "traffic.ramp_first_factor", "above 1"),
    ("[funnel.add_to_cart_factor]\nANDRIOD = 1.0\n", "funnel.add_to_cart_factor.ANDRIOD", "unknown key"),
    ("[fulfilment.zone_factor]\nmiddle_belt = 1.2\n", "fulfilment.zone_factor.middle_belt", "unknown key"),
    ("[latency.server_median_ms]\nWEB = -420\n", "latency.server_median_ms.WEB", "must be above 0"),
    ("[latency.network_ms]\nMTN = -5\n", "latency.network_ms.MTN", "must not be negative"),
    ("[latency.network_ms]\nMTM = 80\n", "latency.network_ms.MTM", "unknown key"),
    ("[latency]\npeak_load = -0.5\n", "latency.peak_load", "must not be negative"),
    ("[latency]\ncustomer_sigma = -0.3\n", "latency.customer_sigma", "must not be negative"),
    ("[latency]\nfloor_ms = 60\n", "latency.floor_ms", "replaced in 0.4.0 by network_ms"),
    ("[latency.median_ms]\nWEB = 420\n", "latency.median_ms", "replaced in 0.4.0 by server_median_ms"),
    ("[session.gap_seconds]\nUSER_LOGIN = -6\n", "session.gap_seconds.USER_LOGIN", "must not be negative"),
    ("[fulfilment.carriers.DHL]\ntransit_days = -1.0\n", "fulfilment.carriers.DHL.transit_days", "negative"),
    ("[traffic]\nhourly_wat = [1.0, 2.0]\n", "traffic.hourly_wat", "array of 24 numbers"),
    ("[traffic]\npayday_from_day = 40\n", "traffic.payday_from_day", "outside 1..31"),
    ("[basket]\nmin_ngn = 3000000\n", "basket.min_ngn", "above max_ngn"),
    ("[basket]\nitem_median_ngn = 0\n", "basket.item_median_ngn", "must be above 0"),
    ("[basket]\nitem_sigma = -0.5\n", "basket.item_sigma", "must not be negative"),
    ("[basket]\ncharm = 1.5\n", "basket.charm", "1.5 is not a probability in [0, 1]"),
    ('[basket]\ncharm = "half"\n', "basket.charm", "expected a number, got 'half'"),
    ("[basket]\nsigma = 0.85\n", "basket.sigma", "replaced in 0.3.0 by item_sigma"),
    ("[fulfilment.hours_wat.DELIVERED]\nsunday = [20, 8]\n", "fulfilment.hours_wat.DELIVERED.sunday", "got [20, 8]"),
    ("[fulfilment.hours_wat.PACKED]\nsunday = [8, 25]\n", "fulfilment.hours_wat.PACKED.sunday", "<= closing <= 24"),
    ("[fulfilment.hours_wat.PACKED]\nsaturday = [6]\n", "fulfilment.hours_wat.PACKED.saturday", "[opening, closing]"),
    ('[fulfilment.hours_wat.SHIPPED]\nweekdays = ["8", "18"]\n', "fulfilment.hours_wat.SHIPPED.weekdays", "got ['8'"),
    ("[fulfilment.hours_wat.SHIPPED]\nweekdays = 8\n", "fulfilment.hours_wat.SHIPPED.weekdays", "got 8"),
    ("[fulfilment.hours_wat.DELIVERED]\nholidays = [0, 0]\n", "fulfilment.hours_wat.DELIVERED.holidays", "unknown key"),
    ("[fulfilment.hours_wat.RETURNED]\nweekdays = [8, 18]\n", "fulfilment.hours_wat.RETURNED", "unknown key"),
    (
        "[fulfilment.hours_wat.DELIVERED]\nweekdays = [0, 0]\nsaturday = [9, 9]\n",
        "fulfilment.hours_wat.DELIVERED",
        "closed every day",
    ),
    ('[incidents]\nkind = "flash_sale"\n', "incidents", "expected an array of tables"),
    (INCIDENT + 'method = "CARD"\nfailure_rate = 1.5\n', "incidents[0].failure_rate", "not a probability"),
    (INCIDENT + 'method = "BITCOIN"\nfailure_rate = 0.9\n', "incidents[0].method", "unknown payment method"),
    (INCIDENT + 'method = "CARD"\n', "incidents[0].failure_rate", "missing"),
    (INCIDENT + 'method = "CARD"\nfailure_rate = 0.9\nbank = "GTB"\n', "incidents[0].bank", "unknown key"),
    (INCIDENT + 'method = "CARD"\nfailure_rate = "high"\n', "incidents[0].failure_rate", "expected a number"),
    (
        '[[incidents]]\nkind = "payment_outage"\nstart = "2025-11-03T14:00:00Z"\nend = "2025-11-03T08:00:00Z"\n'
        'method = "CARD"\nfailure_rate = 0.9\n',
        "incidents[0].end",
        "is not after start",
    ),
    (
        '[[incidents]]\nkind = "flash_sale"\nstart = 2025-11-28T00:00:00Z\nend = 2025-11-28T00:00:00Z\n'
        "traffic_factor = 2.0\nconversion_factor = 1.5\n",
        "incidents[0].end",
        "is not after start",
    ),
    (
        '[[incidents]]\nkind = "flash_sale"\nstart = "28/11/2025"\nend = 2025-11-29T00:00:00Z\n'
        "traffic_factor = 2.0\nconversion_factor = 1.5\n",
        "incidents[0].start",
        "ISO 8601",
    ),
    (
        '[[incidents]]\nkind = "flash_sale"\nstart = 2025-11-28\nend = 2025-11-29\ntraffic_factor = -2.0\n'
        "conversion_factor = 1.5\n",
        "incidents[0].traffic_factor",
        "must be above 0",
    ),
    ('[[incidents]]\nkind = "meteor"\nstart = 2025-11-28\nend = 2025-11-29\n', "incidents[0].kind", "unknown incident"),
    ("[[incidents]]\nstart = 2025-11-28\nend = 2025-11-29\n", "incidents[0].kind", "missing"),
    (
        '[[incidents]]\nkind = "latency_degradation"\nstart = 2025-11-28\nend = 2025-11-29\nplatform = "IPAD"\n'
        "factor = 2.0\n",
        "incidents[0].platform",
        "unknown platform 'IPAD'",
    ),
    (
        '[[incidents]]\nkind = "carrier_delay"\nstart = 2025-11-28\nend = 2025-11-29\ncarrier = "FedEx"\n'
        "extra_days = 2.0\n",
        "incidents[0].carrier",
        "unknown carrier 'FedEx'",
    ),
    (
        '[[incidents]]\nkind = "carrier_delay"\nstart = 2025-11-28\nend = 2025-11-29\ncarrier = "DHL"\n'
        "extra_days = -2.0\n",
        "incidents[0].extra_days",
        "must not be negative",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), INVALID, ids=[f"{k}:{p}" for _, k, p in INVALID])
def test_an_invalid_scenario_exits_2_with_one_line_naming_file_and_key(tmp_path, capsys, text, key, problem):
    path = write(tmp_path, text)
    assert main(["scenario", "show", "--scenario", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"gen: error: {path}: {key}: "), lines[0]
    assert problem in lines[0], lines[0]


def test_the_message_is_exactly_file_key_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "x.toml").write_text("[payment.failure]\nCARD = 1.7\n")
    with pytest.raises(ConfigError) as e:
        load_scenario("scenarios/x.toml")
    assert str(e.value) == "scenarios/x.toml: payment.failure.CARD: 1.7 is not a probability in [0, 1]"


@pytest.mark.parametrize(
    ("text", "problem"), [("[funnel\ncheckout = 0.3\n", "not valid TOML"), (None, "cannot read the scenario")]
)
def test_unreadable_files_exit_2(tmp_path, capsys, text, problem):
    path = tmp_path / "x.toml"
    if text is not None:
        path.write_text(text)
    assert main(["scenario", "show", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"gen: error: {path}: {problem}"), err


def _probability_keys() -> list[str]:
    out = []
    for dotted in _leaves(SPEC):
        node = SPEC
        for part in dotted.split("."):
            node = node[part]
        if getattr(node, "__name__", "") == "_probability" and "*" not in dotted and ".mix." not in dotted:
            out.append(dotted)
    return out


def _toml_for(dotted: str, value: float) -> str:
    *table, key = dotted.split(".")
    return f"[{'.'.join(table)}]\n{key} = {value!r}\n"


@given(
    key=st.sampled_from(_probability_keys()),
    value=st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not 0 <= v <= 1),
)
def test_any_probability_outside_0_1_is_refused_by_name(tmp_path_factory, key, value):
    path = write(tmp_path_factory.mktemp("p"), _toml_for(key, value))
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert str(e.value) == f"{path}: {key}: {value!r} is not a probability in [0, 1]"


@given(key=st.sampled_from(_probability_keys()), value=st.floats(0, 1))
def test_any_probability_inside_0_1_is_taken(tmp_path_factory, key, value):
    doc = effective_scenario(write(tmp_path_factory.mktemp("p"), _toml_for(key, value)))
    node = doc
    for part in key.split("."):
        node = node[part]
    assert node == value


@given(st.lists(st.floats(0.01, 10), min_size=3, max_size=3), st.floats(-1e-3, 1e-3))
def test_a_mix_sums_to_one_within_tolerance(tmp_path_factory, weights, error):
    total = math.fsum(weights)
    shares = [w / total for w in weights]
    shares[shares.index(max(shares))] += error  # the largest share (at least 1/3) stays a probability
    text = "[platform.mix]\n" + "".join(
        f"{p} = {s!r}\n" for p, s in zip(("ANDROID", "IOS", "WEB"), shares, strict=True)
    )
    path = write(tmp_path_factory.mktemp("m"), text)
    if abs(math.fsum(shares) - 1) <= 1e-6:
        assert load_scenario(path).platform_mix.sum() == pytest.approx(1, abs=1.1e-6)  # summed in another order
    else:
        with pytest.raises(ScenarioError, match=r": platform\.mix: shares sum to"):
            load_scenario(path)


def test_public_holidays_read_from_a_scenario_an_older_manifest_and_a_stored_one():
    """The default calendar's dates are WAT day numbers, sorted; a scenario recorded before the calendar has none;
    one stored in a manifest (dates as JSON strings) reads back as the same days."""
    days = default_behaviour().holidays
    assert days.size >= 20 and (np.diff(days) > 0).all()
    assert np.datetime64("2025-12-25") in days.astype("datetime64[D]")
    doc = default_scenario()
    del doc["calendar"]
    assert Behaviour.from_dict(doc).holidays.size == 0
    stored = orjson.loads(orjson.dumps(effective_scenario()))
    assert isinstance(stored["calendar"]["public_holidays"][0], str)
    assert np.array_equal(Behaviour.from_dict(stored).holidays, days)
    assert np.array_equal(Behaviour.from_dict(validated(stored, "stored")).holidays, days)


@given(
    t=st.integers(1_761_951_600_000_000 - 10 * 86_400_000_000, 1_761_951_600_000_000 + 60 * 86_400_000_000),
    days=st.sampled_from([0.0, 1.0, 42.0]),
    first=st.floats(0.05, 3.0),
)
def test_a_launch_ramp_multiplies_the_traffic_curve(t, days, first):
    """With a ramp, each hour's intensity is the flat curve's times the ramp's factor: `ramp_first_factor` before
    `ramp_start`, growing linearly to 1 over `ramp_days`, 1 after; an older scenario (no keys) has no ramp."""
    from generator.core.sessions import intensity, ramp_factor

    flat = default_behaviour()
    doc = default_scenario()
    doc["traffic"] |= {"ramp_days": days, "ramp_first_factor": first}
    b = Behaviour.from_dict(doc)
    start = 1_761_951_600_000_000  # 2025-11-01T00:00 WAT, the default ramp_start
    hours = np.array([t // 3_600_000_000 * 3_600_000_000])
    factor = ramp_factor(b, hours)[0]
    assert intensity(b, hours)[0] == pytest.approx(intensity(flat, hours)[0] * factor)
    grown = min(max((hours[0] - start) / (days * 86_400_000_000), 0.0), 1.0) if days else float(hours[0] >= start)
    assert factor == pytest.approx(first + (1 - first) * grown)
    old = default_scenario()
    for key in ("ramp_start", "ramp_days", "ramp_first_factor"):
        del old["traffic"][key]
    assert ramp_factor(Behaviour.from_dict(old), hours)[0] == 1.0


def test_working_hours_fall_back_day_by_day_and_take_half_hours(tmp_path):
    """A scenario opening Sunday deliveries from 11:00 to 17:30 changes that day of that stage only."""
    path = write(tmp_path, "[fulfilment.hours_wat.DELIVERED]\nsunday = [11, 17.5]\n")
    b = load_scenario(path)
    d = default_behaviour()
    hour = 3_600_000_000
    assert b.hours_wat[2, 6].tolist() == [11 * hour, 17 * hour + hour // 2]
    assert np.array_equal(b.hours_wat[2, :6], d.hours_wat[2, :6]) and np.array_equal(b.hours_wat[:2], d.hours_wat[:2])
    assert d.hours_wat[2, 6, 0] == d.hours_wat[2, 6, 1], "closed on Sundays by default"
    shown = write(tmp_path, to_toml(effective_scenario(path)), "shown.toml")  # `gen scenario show` reads back
    assert effective_scenario(shown) == effective_scenario(path)


def test_to_toml_quotes_names_with_spaces():
    text = to_toml(effective_scenario())
    assert '"GIG Logistics" = { share = 0.18' in text and "# no incidents" in text
