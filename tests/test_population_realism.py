"""Customer identities read as Nigerian: first names follow the religion of the surname's ethnic group (and, for
the Yoruba, the state), the Middle Belt's own peoples and the Ebira carry their own names in their own states, and a
street named after a place belongs to the customer's own city. Checked against the reference data itself
(`nigeria.json`), over large customer samples and random customers."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from functools import lru_cache
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.core.nigeria import Nigeria, default_pools, state_label, zipf_weights
from generator.core.population import _email_digits, identities


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("generator").joinpath("data/en/nigeria.json").read_text())


def _unique_surnames(group: str) -> set[str]:
    """Surnames of `group` that no other group uses, so a name's surname tells its group."""
    groups = _data()["groups"]
    others = set().union(*(set(v["last"]) for g, v in groups.items() if g != group))
    return set(groups[group]["last"]) - others


def _pool(name: str) -> set[str]:
    pool = _data()["first_name_pools"][name]
    return set(pool["first_male"] + pool["first_female"])


def _unique_first_names(group: str) -> set[str]:
    """First names of `group` that no other group and neither cross-group pool uses (Bitrus, Rifkatu, Gyang; not
    Ladi or Danjuma, which Hausa Muslims carry too)."""
    groups = _data()["groups"]
    others = set().union(*(set(v["first_male"] + v["first_female"]) for g, v in groups.items() if g != group))
    own = set(groups[group]["first_male"] + groups[group]["first_female"])
    return own - others - _pool("christian_english") - _pool("muslim_arabic")


def test_every_state_mix_is_a_distribution_over_the_listed_groups():
    d = _data()
    for g, v in d["groups"].items():
        assert sum(v["religion"].values()) == pytest.approx(1.0, abs=1e-9), g
        assert all(0 <= x <= 1 for x in v["native_first_names"].values()), g
        for key in ("first_male", "first_female", "last"):
            assert all(x.isascii() and x.replace("-", "").isalpha() for x in v[key]), (g, key)
    for s in d["states"]:
        assert set(s["groups"]) <= set(d["groups"]) and min(s["groups"].values()) > 0, s["name"]
        assert sum(s["groups"].values()) == pytest.approx(1.0, abs=1e-9), s["name"]
        for g, mix in s.get("religion", {}).items():
            assert g in s["groups"] and sum(mix.values()) == pytest.approx(1.0, abs=1e-9), (s["name"], g)


@pytest.fixture(scope="module")
def customers() -> dict[str, np.ndarray]:
    ids = identities(11, np.arange(300_000), default_pools())
    names = ids["name"].to_pylist()
    return {
        "first": np.array([n.split(" ", 1)[0] for n in names]),
        "last": np.array([n.split(" ", 1)[1] for n in names]),
        "state": np.array([a.rsplit(", ", 1)[1] for a in ids["address"].to_pylist()]),
        "address": ids["address"].to_pylist(),
        "email": ids["email"].to_pylist(),
        "phone": ids["phone_number"].to_pylist(),
    }


def _shares(customers, group: str, states: list[str] | None = None) -> tuple[int, float, float]:
    """(count, Arabic/Muslim share, English/Christian share) of first names among `group`'s surnames."""
    mask = np.isin(customers["last"], list(_unique_surnames(group)))
    if states is not None:
        mask &= np.isin(customers["state"], [state_label(s) for s in states])
    first = customers["first"][mask]
    return (
        int(mask.sum()),
        np.isin(first, list(_pool("muslim_arabic"))).mean(),
        np.isin(first, list(_pool("christian_english"))).mean(),
    )


def test_first_names_follow_the_religion_of_the_surnames_group(customers):
    n, arabic, _ = _shares(customers, "igbo")
    assert n > 20_000 and arabic < 0.03, "Igbo are overwhelmingly Christian"
    for group in ("hausa_fulani", "kanuri"):
        n, _, english = _shares(customers, group)
        assert n > 1_000 and english < 0.04, f"{group} are overwhelmingly Muslim"
    for group in ("ijaw", "efik_ibibio", "urhobo_isoko", "tiv"):
        n, arabic, english = _shares(customers, group)
        assert n > 1_000 and arabic < 0.05 and english > 0.3, f"{group} are mostly Christian"
    n, arabic, english = _shares(customers, "middle_belt")
    assert n > 5_000 and arabic < 0.25 and english > 0.2, "the Middle Belt's peoples are mostly Christian"
    n, arabic, english = _shares(customers, "ebira")
    assert n > 800 and 0.25 < arabic < 0.5 and 0.08 < english < 0.25, "the Ebira are mostly Muslim, many Christian"
    n, arabic, english = _shares(customers, "yoruba")
    assert n > 20_000 and 0.12 < arabic < 0.40 and 0.12 < english < 0.40, "Yoruba are both Christian and Muslim"


def test_yoruba_first_names_follow_the_state(customers):
    n_east, arabic_east, english_east = _shares(customers, "yoruba", ["Ekiti", "Ondo"])
    n_north, arabic_north, english_north = _shares(customers, "yoruba", ["Kwara", "Oyo", "Osun"])
    assert n_east > 1_000 and n_north > 1_000
    assert arabic_east < 0.12 < 0.2 < arabic_north, "Ekiti and Ondo lean Christian, Kwara, Oyo and Osun Muslim"
    assert english_east > english_north


def _state_first_names(customers, state: str) -> tuple[int, float, float]:
    """(count, Arabic/Muslim share, English/Christian or Middle Belt share) of the first names of `state`'s
    customers, whatever their group."""
    first = customers["first"][customers["state"] == state_label(state)]
    christian = _pool("christian_english") | _unique_first_names("middle_belt")
    return len(first), np.isin(first, list(_pool("muslim_arabic"))).mean(), np.isin(first, list(christian)).mean()


def test_plateau_and_kaduna_first_names_are_mostly_christian_or_middle_belt(customers):
    n, arabic, christian = _state_first_names(customers, "Plateau")
    assert n > 2_000 and christian >= 0.5 and arabic < 0.25, "Plateau is majority Christian"
    n, arabic, christian = _state_first_names(customers, "Kaduna")
    assert n > 5_000 and christian >= 0.3 and arabic < 0.45, "southern Kaduna is largely Christian"
    n, arabic, christian = _state_first_names(customers, "Kano")
    assert n > 5_000 and christian < 0.06 and arabic > 0.6, "Kano is overwhelmingly Muslim"


def test_middle_belt_names_are_found_in_the_middle_belt(customers):
    surname = np.isin(customers["last"], list(_unique_surnames("middle_belt")))
    first = np.isin(customers["first"], list(_unique_first_names("middle_belt")))

    def share(of: np.ndarray, state: str) -> float:
        return of[customers["state"] == state_label(state)].mean()

    for state in ("Plateau", "Kaduna", "Nasarawa", "Taraba", "Adamawa"):
        assert share(surname, state) > 0.2 and share(first, state) > 0.08, state
    assert share(surname, "Plateau") > 0.35, "Plateau's own peoples are the largest part of its customers"
    assert share(surname, "Lagos") < 0.02 and share(first, "Lagos") < 0.01, "few Middle Belt customers in Lagos"
    assert share(surname, "Kano") == 0 and share(surname, "Anambra") == 0


def test_ebira_names_are_found_in_kogi_at_the_configured_share(customers):
    """An Ebira surname (one no other group uses) appears in Kogi as often as the state's Ebira share times the part
    of the group's surnames that are its own, within four binomial standard deviations; in the FCT, Nasarawa and
    Edo at their small shares; never in Kano, Lagos or Anambra, which list no Ebira."""
    groups = _data()["groups"]
    own = _unique_surnames("ebira")
    surname = np.isin(customers["last"], list(own))
    first = np.isin(customers["first"], list(_unique_first_names("ebira")))
    mixes = {s["name"]: s["groups"] for s in _data()["states"]}

    def observed(of: np.ndarray, state: str) -> tuple[int, float]:
        in_state = customers["state"] == state_label(state)
        return int(in_state.sum()), of[in_state].mean()

    names = groups["ebira"]["last"]
    weights = zipf_weights(len(names), _data()["name_frequency"])
    own_share = weights[[x in own for x in names]].sum() / weights.sum()
    for state in ("Kogi", "FCT", "Nasarawa", "Edo"):
        n, share = observed(surname, state)
        expected = mixes[state]["ebira"] * own_share
        assert n > 1_000 and abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / n), (state, share)
    # The Ebira are one of Kogi's three largest peoples: their configured share, which the observed share of their
    # own surnames follows (above; the surnames they share with the Yoruba or the Hausa, Jimoh or Abdulmalik, tell
    # no group and are not counted there).
    assert mixes["Kogi"]["ebira"] > 0.2 and observed(surname, "Kogi")[1] > 0.15
    assert observed(first, "Kogi")[1] > 0.06, "Ebira first names such as Ozovehe and Ohunene are common in Kogi"
    for state in ("Kano", "Lagos", "Anambra"):
        assert observed(surname, state)[1] < 0.002 and observed(first, state)[1] < 0.002, state


def _parse(address: str) -> tuple[str, str, str]:
    """(street, city, state label) of '<house> <street>, <area>, <city>, <state>'."""
    house, rest = address.split(" ", 1)
    street, _area, city, state = rest.rsplit(", ", 3)
    assert house.isdigit()
    return street, city, state


@lru_cache(maxsize=1)
def _own_streets() -> dict[tuple[str, str], set[str]]:
    """(city, state label) -> the city's own streets; state label -> all the state's own streets."""
    out: dict = {}
    for s in _data()["states"]:
        label = state_label(s["name"])
        out[label] = set()
        for c in s["cities"]:
            out[(c["name"], label)] = set(c.get("streets", []))
            out[label] |= out[(c["name"], label)]
    return out


@lru_cache(maxsize=1)
def _person_streets() -> set[str]:
    """Every street named after a person: any group's surname with one of the endings ("Okafor Close")."""
    d = _data()
    named = {f"{x} {e}" for g in d["groups"].values() for x in g["last"] for e in d["person_street_endings"]}
    return named - set().union(*(v for k, v in _own_streets().items() if isinstance(k, tuple)))


def _check_street(address: str) -> bool:
    """Whether the address's street is generic, named after a person, or one of its own city's; returns whether it
    is the city's."""
    street, city, state = _parse(address)
    if street in _data()["generic_streets"] or street in _person_streets():
        return False
    assert street in _own_streets()[state], f"{street!r} is not a street of {state}: {address}"
    assert street in _own_streets()[(city, state)], f"{street!r} is not a street of {city}: {address}"
    return True


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**63 - 1), st.lists(st.integers(0, 10**9), min_size=1, max_size=200))
def test_a_place_specific_street_is_only_found_in_its_own_city_and_state(seed, idx):
    for address in identities(seed, np.array(idx), default_pools())["address"].to_pylist():
        _check_street(address)


def test_the_mimesis_provider_places_streets_the_same_way(monkeypatch):
    """...and builds the pools its person-named streets come from once, not at every address (it took ~30 ms each)."""
    built = []
    real = Nigeria.pools
    monkeypatch.setattr(Nigeria, "pools", lambda self: built.append(1) or real(self))
    provider = Nigeria(seed=3)
    own = [_check_street(provider.address()) for _ in range(3_000)]
    assert 0.1 < np.mean(own) < 0.4
    assert len(built) == 1


def test_share_of_a_states_own_streets_is_as_configured(customers):
    n, own = Counter(), Counter()
    for address in customers["address"]:
        state = _parse(address)[2]
        n[state] += 1
        own[state] += _check_street(address)
    checked = 0
    for s in _data()["states"]:
        label = state_label(s["name"])
        weights = np.array([c["weight"] for c in s["cities"]], float)
        listed = np.array([bool(c.get("streets")) for c in s["cities"]])
        expected = s["street_share"] * weights[listed].sum() / weights.sum()
        if expected == 0:
            assert own[label] == 0, label
            continue
        assert n[label] > 200, label
        sigma = np.sqrt(expected * (1 - expected) / n[label])
        assert abs(own[label] / n[label] - expected) < 5 * sigma, (label, own[label] / n[label], expected)
        checked += 1
    assert checked >= 25
    assert own["Lagos State"] / n["Lagos State"] > 0.2, "a quarter of Lagos addresses are on its well-known streets"


def test_a_city_street_listed_as_generic_too_is_refused():
    """Own and generic streets must not overlap, or an address could not tell which pool its street came from."""
    provider = Nigeria()
    provider._dataset = copy.deepcopy(provider._dataset)
    provider._dataset["states"][0]["cities"][0]["streets"].append(provider._dataset["generic_streets"][0])
    with pytest.raises(ValueError, match="listed as generic too"):
        provider.pools()


# -- frequencies: names, e-mail numbers, house numbers, phone prefixes ------------------------------------------

# Family names every Nigerian reader knows as those of one famous political or business family.
FAMOUS = {
    "Dangote", "Shagari", "Kwankwaso", "Awolowo", "Azikiwe", "Ojukwu", "Obasanjo", "Abacha", "Abatcha", "Babangida",
    "Tinubu", "Buhari", "Atiku", "Dantata", "Ganduje", "Tambuwal", "Oshiomhole", "Obaseki", "Igbinedion", "Akpabio",
    "Alamieyeseigha", "Ibori", "Ibru", "Gowon", "Zulum", "Ortom", "Suswam", "Akume", "Jonathan", "Sylva", "Okonjo",
    "Achebe", "Ekwueme", "Fashola", "Akintola", "Dariye", "Lalong", "Yakowa", "Dogara",
}  # fmt: skip


def test_famous_family_names_are_not_in_the_lists():
    d = _data()
    for g, v in d["groups"].items():
        assert not FAMOUS & set(v["last"]), g
        assert not FAMOUS & set(v["first_male"] + v["first_female"]), g


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**63 - 1), st.integers(0, 10**9))
def test_no_famous_surname_and_no_first_name_repeated_as_surname(seed, start):
    """Whatever the seed and customers: no Dangote or Awolowo, and nobody is called "Ademola Ademola"."""
    names = identities(seed, np.arange(start, start + 5_000), default_pools())["name"].to_pylist()
    for name in names:
        first, last = name.split(" ", 1)
        assert last not in FAMOUS and first.lower() != last.lower(), name


def test_name_frequencies_are_skewed_most_common_first(customers):
    """Within a group a few names are common and most are rare: Musa and Ibrahim far ahead in Kano, as Okafor and
    Okeke among the Igbo; the most common surname is many times the median one (the old flat lists: ~1.3x)."""
    for state, leaders in (("Kano", {"Musa", "Ibrahim", "Mohammed"}), ("Anambra", {"Okafor", "Okeke", "Eze"})):
        last = Counter(customers["last"][customers["state"] == state_label(state)])
        counts = np.array(sorted(last.values(), reverse=True))
        assert counts[0] > 5 * np.median(counts), state
        assert {n for n, _ in last.most_common(3)} & leaders, (state, last.most_common(3))
    first = np.array(sorted(Counter(customers["first"]).values(), reverse=True))
    assert first[0] > 5 * np.median(first)


def test_full_names_have_a_long_tail(customers):
    """Among 300,000 customers most full names are rare: over 90,000 distinct ones and none held by more than 0.06% of
    them (0.9's lists of 48-67 names for the largest groups gave 68,065, the commonest held by 223: 0.074%)."""
    counts = Counter(zip(customers["first"], customers["last"], strict=True))
    assert len(counts) > 90_000
    assert counts.most_common(1)[0][1] < 0.0006 * len(customers["first"])


def _suffixes(customers, digits: int) -> np.ndarray:
    pattern = re.compile(rf"[a-z._]([0-9]{{{digits}}})@")
    return np.array([int(m.group(1)) for e in customers["email"] if (m := pattern.search(e))])


def test_email_birth_years_follow_a_smooth_age_law(customers):
    """The 4-digit birth years peak among today's 20-to-35-year-olds and fade on both sides, with no year where the
    count jumps (the old uniform 1965-2007 went from ~1,700 a year to ~10 at both ends)."""
    years = _suffixes(customers, 4)
    counts = np.bincount(years[(years >= 1930) & (years <= 2015)] - 1930, minlength=86).astype(float)
    peak = counts.max()
    assert 1988 <= 1930 + counts.argmax() <= 2002
    assert np.abs(np.diff(counts)).max() < 0.25 * peak, "no cliff between neighbouring years"
    assert counts[1965 - 1930] < 0.2 * peak and counts[2008 - 1930] < 0.3 * peak, "soft tails"
    assert counts[1975 - 1930] > 0.02 * peak, "some older shoppers"
    two = _suffixes(customers, 2)
    assert np.mean(two >= 70) > 0.6, "two digits are mostly a birth year's ('92), not a uniform 10-99"


def test_house_numbers_have_a_long_tail_without_a_cliff_or_a_pile_on_one(customers):
    house = np.array([int(a.split(" ", 1)[0]) for a in customers["address"]])
    assert np.mean(house == 1) < 0.03, "No. 1 is not where a tenth of customers live"
    assert 0.03 < np.mean(house > 119) < 0.2 and house.max() > 500
    tens = np.bincount(house // 10)
    assert (tens[10:20] > 0.5 * tens[9:19]).all(), "no cliff: each ten is at least half the one before"


def test_strangers_rarely_share_an_exact_address(customers):
    """Of 300,000 customers (a third of the default population), few live at an address another customer of
    another surname has too (the old streets and house numbers: 19% of a quarter-million)."""
    holders: dict[str, set] = {}
    for address, last in zip(customers["address"], customers["last"], strict=True):
        holders.setdefault(address, set()).add(last)
    shared = sum(len(v) for v in holders.values() if len(v) > 1) / len(customers["address"])
    assert shared < 0.05


def test_phone_prefixes_are_weighted_within_each_operator(customers):
    """The legacy prefixes hold more subscribers than the recent ones: 0803 well ahead of 0916 (MTN), 0802 of 0911
    (Airtel), 0805 of 0915 (Glo)."""
    prefixes = Counter("0" + p[4:7] for p in customers["phone"])
    for old, new in (("0803", "0916"), ("0806", "0913"), ("0802", "0911"), ("0805", "0915")):
        assert prefixes[old] > 3 * prefixes[new], (old, new)
    for o in _data()["operators"]:
        assert sum(o["prefixes"].values()) == pytest.approx(1.0, abs=1e-3), o["name"]


def test_two_digit_email_numbers_below_60_are_not_starved():
    """Two-digit numbers that are not a birth year's last two digits are spread over 1-99: one uniform once both
    picked that branch (below 0.6) and the number (1 + 99u), so for the common pre-2000 birth years they could only
    be 60-99, and 10-59 held ~16% of the two-digit numbers instead of ~30%."""
    digits = _email_digits(3, np.arange(1_000_000, dtype=np.int64), default_pools())
    two = digits[(digits >= 10) & (digits < 100)]
    assert two.size > 200_000
    assert 0.24 < float(((two >= 10) & (two < 60)).mean()) < 0.40
