"""The `nigeria` mimesis provider over the project's reference data (`data/en/nigeria.json`), and the pools it builds.

The provider answers mimesis-style one-value calls (`full_name`, `phone_number`, `address`, `email`) for
exploration and docs; the generator instead takes `pools()`, flat Arrow/numpy arrays from which whole columns of
customers are drawn with numpy at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
from mimesis.locales import Locale
from mimesis.providers.base import BaseDataProvider

from generator.core.behaviour import OPERATORS, ZONES

CROSS_POOLS = ("christian_english", "muslim_arabic")
FIRST_NAME_SOURCES = ("native", *CROSS_POOLS)
RELIGIONS = ("christian", "muslim", "traditional")
HUBS = ("Lagos", "FCT")  # states where deliveries are fastest


def _segmented_cdf(weights: list[list[float]]) -> np.ndarray:
    """Flat cdf for many small distributions: segment i spans (i, i+1], so `searchsorted(cdf, i + u)` draws
    from distribution i for a whole array of (i, u) at once."""
    out = []
    for i, w in enumerate(weights):
        w = np.asarray(w, dtype=float)
        c = np.cumsum(w) / w.sum()
        c[-1] = 1.0
        out.append(i + c)
    return np.concatenate(out)


def zipf_weights(n: int, law: dict) -> np.ndarray:
    """Frequency weights of a list of `n` names, most common first: 1 / (rank + rank_offset) ** zipf_exponent."""
    return 1.0 / (np.arange(1, n + 1) + law["rank_offset"]) ** law["zipf_exponent"]


def birth_year_weights(law: dict) -> tuple[int, np.ndarray]:
    """The first birth year and the weight of each year from it: customers' ages at `reference_year` are
    `min_age` plus a gamma(`gamma_shape`, `gamma_scale`) variable, so both tails fade smoothly."""
    first = law["reference_year"] - 90
    age = law["reference_year"] - np.arange(first, law["reference_year"] - law["min_age"] + 1) - law["min_age"] + 0.5
    w = age ** (law["gamma_shape"] - 1) * np.exp(-age / law["gamma_scale"])
    return first, w / w.sum()


def street_length_cdf(law: dict, n: np.ndarray) -> np.ndarray:
    """Chance that a street has at most `n` houses: log-logistic (median `street_length_median`, shape
    `street_length_shape`), cut at `longest_street`. A house number is uniform along its street, so small numbers
    are the most common, with a long tail and no cliff."""
    return 1.0 / (1.0 + (law["street_length_median"] / np.maximum(n, 1e-300)) ** law["street_length_shape"])


def first_name_mix(group: dict, religion: dict) -> list[float]:
    """Shares of first names from the group's own list, the English/Christian pool and the Arabic/Muslim pool.

    Christians and Muslims of the group use its own names with the group's `native_first_names` share and
    otherwise the pool of their religion; followers of traditional religions use the group's own names."""
    c, m, t = (religion[r] for r in RELIGIONS)
    own = group["native_first_names"]
    return [c * own["christian"] + m * own["muslim"] + t, c * (1 - own["christian"]), m * (1 - own["muslim"])]


def religion_of(state: dict, group_name: str, group: dict) -> dict:
    """The religious mix of a group where it lives in `state`: the state's override, else the group's own."""
    return state.get("religion", {}).get(group_name, group["religion"])


@dataclass(frozen=True, eq=False)
class Pools:
    """Everything the population draws from, as flat arrays."""

    state_names: pa.Array
    state_cdf: np.ndarray  # cumulative demand weights over states
    state_is_hub: np.ndarray
    state_zone: np.ndarray  # int8, each state's geopolitical zone (an index into behaviour.ZONES)
    groups: tuple[str, ...]
    group_cdf: np.ndarray  # segmented by state
    source_cdf: np.ndarray  # segmented by (state, group), state * len(groups) + group: FIRST_NAME_SOURCES
    first_names: pa.Array
    first_offset: np.ndarray  # per (key, gender): key is a group index, or len(groups) + cross pool index
    first_size: np.ndarray
    first_cdf: np.ndarray  # segmented by (key, gender): Zipf-like frequencies, the list's first names commonest
    first_word: np.ndarray  # per first name, the id of its e-mail word (to tell "Ademola Ademola")
    last_names: pa.Array
    last_offset: np.ndarray  # per group
    last_size: np.ndarray
    last_cdf: np.ndarray  # segmented by group, as first_cdf
    last_word: np.ndarray  # per surname, the id of its e-mail word (same ids as first_word)
    city_cdf: np.ndarray  # segmented by state
    area_lines: pa.Array  # per area, the end of an address: "Opebi, Ikeja, Lagos State"
    area_offset: np.ndarray  # per city
    area_size: np.ndarray
    street_lines: pa.Array  # "Hospital Road, ": the generic streets first, then each city's own streets
    generic_count: int  # street_lines[:generic_count] are found in every town
    local_offset: np.ndarray  # per city, its own streets in street_lines (size 0: none listed)
    local_size: np.ndarray
    street_share: np.ndarray  # per state: chance that a customer in a city with its own streets lives on one
    person_street_share: float  # of the others, the chance of a street named after a person ("Okafor Close")
    street_surnames: pa.Array  # per group, the surnames streets are named after
    street_surname_offset: np.ndarray
    street_surname_size: np.ndarray
    street_endings: pa.Array  # " Street, ", " Close, ", ...
    street_ending_cdf: np.ndarray
    street_length: dict  # the house-number law (`street_length_cdf`)
    house_numbers: pa.Array  # "1 " .. longest_street, each followed by the space before the street
    operator_names: tuple[str, ...]
    operator_cdf: np.ndarray
    operator_code: np.ndarray  # per operator here, its index in behaviour.OPERATORS (its round trip's)
    prefixes: np.ndarray  # national prefix without the leading 0, e.g. 803, flat over operators
    prefix_cdf: np.ndarray  # segmented by operator: the prefixes' shares of its subscribers
    email_domains: pa.Array  # "@gmail.com", ...
    domain_cdf: np.ndarray
    email_words: pa.Array  # lower-case a-z forms: [first names | their initials | last names | their initials]
    birth_year_first: int  # e-mail birth years: the first year, and the cdf over the years from it
    birth_year_cdf: np.ndarray


class Nigeria(BaseDataProvider):
    """Nigerian customers: names by ethnic group and state, +234 mobiles, addresses in the 36 states and the FCT."""

    class Meta:
        name = "nigeria"
        datafile = f"{name}.json"
        datadir = Path(str(resources.files("generator").joinpath("data")))

    def __init__(self, seed=None, **kwargs) -> None:
        kwargs.setdefault("locale", Locale.EN)
        if seed is not None:
            kwargs["seed"] = seed
        super().__init__(**kwargs)

    # -- mimesis-style single values (for exploration, docs and tests) --------------------------------------
    def _state(self) -> dict:
        states = self._dataset["states"]
        return self.random.choices(states, weights=[s["weight"] for s in states])[0]

    def full_name(self, state: dict | None = None) -> str:
        state = state or self._state()
        group = self.random.choices(list(state["groups"]), weights=list(state["groups"].values()))[0]
        gender = self.random.choice(("first_male", "first_female"))
        g = self._dataset["groups"][group]
        mix = first_name_mix(g, religion_of(state, group, g))
        source = self.random.choices(FIRST_NAME_SOURCES, weights=mix)[0]
        pool = g if source == "native" else self._dataset["first_name_pools"][source]
        first, last = self._common(pool[gender]), self._common(g["last"])
        while _word(last) == _word(first):
            last = self._common(g["last"])
        return f"{first} {last}"

    def _street_surnames(self) -> dict[str, list[str]]:
        """Each group's surnames that streets are named after (worked out once per provider: it takes the pools)."""
        cached = getattr(self, "_street_surname_lists", None)
        if cached is None:
            pools = self.pools()
            names = pools.street_surnames.to_pylist()
            cached = {
                g: names[o : o + n]
                for g, o, n in zip(pools.groups, pools.street_surname_offset, pools.street_surname_size, strict=True)
            }
            self._street_surname_lists = cached
        return cached

    def _common(self, names: list[str]) -> str:
        """One of `names`, drawn with their Zipf-like frequencies (`zipf_weights`)."""
        return self.random.choices(names, weights=zipf_weights(len(names), self._dataset["name_frequency"]))[0]

    def phone_number(self) -> str:
        ops = self._dataset["operators"]
        op = self.random.choices(ops, weights=[o["share"] for o in ops])[0]
        prefix = self.random.choices(list(op["prefixes"]), weights=list(op["prefixes"].values()))[0]
        return f"+234{prefix[1:]}{self.random.randint(0, 9_999_999):07d}"

    def address(self) -> str:
        state = self._state()
        city = self.random.choices(state["cities"], weights=[c["weight"] for c in state["cities"]])[0]
        local = city.get("streets") and self.random.random() < state["street_share"]
        if local:
            street = self.random.choice(city["streets"])
        elif self.random.random() < self._dataset["person_street_share"]:
            group = self.random.choices(list(state["groups"]), weights=list(state["groups"].values()))[0]
            endings = self._dataset["person_street_endings"]
            ending = self.random.choices(list(endings), weights=list(endings.values()))[0]
            street = f"{self.random.choice(self._street_surnames()[group])} {ending}"
        else:
            street = self.random.choice(self._dataset["generic_streets"])
        law = self._dataset["house_numbers"]
        u = self.random.random() * street_length_cdf(law, law["longest_street"])
        length = law["street_length_median"] * (u / (1 - u)) ** (1 / law["street_length_shape"])
        house = 1 + int(self.random.random() * max(length, 1.0))
        return f"{house} {street}, {self.random.choice(city['areas'])}, {city['name']}, {state_label(state['name'])}"

    def email(self, full_name: str | None = None) -> str:
        first, last = (full_name or self.full_name()).lower().split(" ", 1)
        domains = self._dataset["email_domains"]
        domain = self.random.choices(list(domains), weights=list(domains.values()))[0]
        first_year, w = birth_year_weights(self._dataset["email_birth_years"])
        year = first_year + self.random.choices(range(w.size), weights=list(w))[0]
        return f"{first}.{last.replace(' ', '')}{year % 100 if year < 2000 else year}@{domain}"

    # -- pools for vectorised drawing -------------------------------------------------------------------------
    def pools(self) -> Pools:
        d = self._dataset
        states = d["states"]
        groups = tuple(d["groups"])

        law = d["name_frequency"]
        first: list[str] = []
        first_offset, first_size, first_weights = [], [], []
        for key_pool in [d["groups"][g] for g in groups] + [d["first_name_pools"][p] for p in CROSS_POOLS]:
            for gender in ("first_male", "first_female"):
                first_offset.append(len(first))
                first_size.append(len(key_pool[gender]))
                first_weights.append(zipf_weights(len(key_pool[gender]), law))
                first.extend(key_pool[gender])
        last: list[str] = []
        last_offset, last_size, last_weights = [], [], []
        for g in groups:
            last_offset.append(len(last))
            last_size.append(len(d["groups"][g]["last"]))
            last_weights.append(zipf_weights(len(d["groups"][g]["last"]), law))
            last.extend(d["groups"][g]["last"])
        word_id: dict[str, int] = {}
        first_word = np.array([word_id.setdefault(_word(x), len(word_id)) for x in first], dtype=np.int64)
        last_word = np.array([word_id.setdefault(_word(x), len(word_id)) for x in last], dtype=np.int64)

        area_lines, area_offset, area_size, city_weights = [], [], [], []
        generic = d["generic_streets"]
        streets, local_offset, local_size = list(generic), [], []
        for s in states:
            city_weights.append([c["weight"] for c in s["cities"]])
            for c in s["cities"]:
                area_offset.append(len(area_lines))
                area_size.append(len(c["areas"]))
                area_lines.extend(f"{a}, {c['name']}, {state_label(s['name'])}" for a in c["areas"])
                own = c.get("streets", [])
                if set(own) & set(generic):
                    raise ValueError(f"{c['name']}: {sorted(set(own) & set(generic))} listed as generic too")
                local_offset.append(len(streets))
                local_size.append(len(own))
                streets.extend(own)

        ops = d["operators"]
        prefixes = [int(p) for o in ops for p in o["prefixes"]]  # "0803" -> 803
        endings = d["person_street_endings"]
        # Streets named after people take the group's surnames, less any that would name a city's own street
        # ("Bello Road" is Kano's): a street in an address then always tells which pool it came from.
        taken = {x for x in streets[len(generic) :] for e in endings if x.endswith(f" {e}")}
        street_surnames: list[str] = []
        street_surname_offset, street_surname_size = [], []
        for g in groups:
            keep = [x for x in d["groups"][g]["last"] if not any(f"{x} {e}" in taken for e in endings)]
            street_surname_offset.append(len(street_surnames))
            street_surname_size.append(len(keep))
            street_surnames.extend(keep)
        birth_year_first, birth_year_w = birth_year_weights(d["email_birth_years"])

        domains = d["email_domains"]
        return Pools(
            state_names=pa.array([state_label(s["name"]) for s in states]),
            state_cdf=np.cumsum([s["weight"] for s in states]).astype(float),
            state_is_hub=np.array([s["name"] in HUBS for s in states]),
            state_zone=np.array([ZONES.index(s["zone"]) for s in states], np.int8),
            groups=groups,
            group_cdf=_segmented_cdf([[s["groups"].get(g, 0.0) for g in groups] for s in states]),
            source_cdf=_segmented_cdf(
                [first_name_mix(d["groups"][g], religion_of(s, g, d["groups"][g])) for s in states for g in groups]
            ),
            first_names=pa.array(first),
            first_offset=np.array(first_offset, dtype=np.int64),
            first_size=np.array(first_size, dtype=np.int64),
            first_cdf=_segmented_cdf(first_weights),
            first_word=first_word,
            last_names=pa.array(last),
            last_offset=np.array(last_offset, dtype=np.int64),
            last_size=np.array(last_size, dtype=np.int64),
            last_cdf=_segmented_cdf(last_weights),
            last_word=last_word,
            city_cdf=_segmented_cdf(city_weights),
            area_lines=pa.array(area_lines),
            area_offset=np.array(area_offset, dtype=np.int64),
            area_size=np.array(area_size, dtype=np.int64),
            street_lines=pa.array([f"{st}, " for st in streets]),
            generic_count=len(generic),
            local_offset=np.array(local_offset, dtype=np.int64),
            local_size=np.array(local_size, dtype=np.int64),
            street_share=np.array([s["street_share"] for s in states], dtype=float),
            person_street_share=float(d["person_street_share"]),
            street_surnames=pa.array(street_surnames),
            street_surname_offset=np.array(street_surname_offset, dtype=np.int64),
            street_surname_size=np.array(street_surname_size, dtype=np.int64),
            street_endings=pa.array([f" {e}, " for e in endings]),
            street_ending_cdf=np.cumsum(list(endings.values())).astype(float),
            street_length=dict(d["house_numbers"]),
            house_numbers=pa.array([f"{i} " for i in range(1, d["house_numbers"]["longest_street"] + 1)]),
            operator_names=tuple(o["name"] for o in ops),
            operator_code=np.array([OPERATORS.index(o["name"]) for o in ops], np.int8),
            operator_cdf=np.cumsum([o["share"] for o in ops]).astype(float),
            prefixes=np.array(prefixes, dtype=np.int64),
            prefix_cdf=_segmented_cdf([list(o["prefixes"].values()) for o in ops]),
            email_domains=pa.array([f"@{x}" for x in domains]),
            domain_cdf=np.cumsum(list(domains.values())).astype(float),
            email_words=pa.array(
                [_word(x) for x in first]
                + [_word(x)[:1] for x in first]
                + [_word(x) for x in last]
                + [_word(x)[:1] for x in last]
            ),
            birth_year_first=birth_year_first,
            birth_year_cdf=np.cumsum(birth_year_w),
        )


def _word(name: str) -> str:
    """A name as it appears in an e-mail address: lower case, letters only."""
    return "".join(ch for ch in name.lower() if "a" <= ch <= "z")


def state_label(name: str) -> str:
    """How a state is written at the end of an address: 'Lagos State', but 'FCT'."""
    return name if name == "FCT" else f"{name} State"


@lru_cache(maxsize=1)
def reference_digest() -> str:
    """sha256 of the reference data the pools are built from (what a cache of anything drawn from them depends on)."""
    return hashlib.sha256((Nigeria.Meta.datadir / "en" / Nigeria.Meta.datafile).read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def default_pools() -> Pools:
    return Nigeria().pools()
