"""The `nigeria` mimesis provider over the project's reference data (`data/en/nigeria.json`), and the pools it builds.

The provider answers mimesis-style one-value calls (`full_name`, `phone_number`, `address`, `email`) for
exploration and docs; the generator instead takes `pools()`, flat Arrow/numpy arrays from which whole columns of
customers are drawn with numpy at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
from mimesis.locales import Locale
from mimesis.providers.base import BaseDataProvider

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
    groups: tuple[str, ...]
    group_cdf: np.ndarray  # segmented by state
    source_cdf: np.ndarray  # segmented by (state, group), state * len(groups) + group: FIRST_NAME_SOURCES
    first_names: pa.Array
    first_offset: np.ndarray  # per (key, gender): key is a group index, or len(groups) + cross pool index
    first_size: np.ndarray
    last_names: pa.Array
    last_offset: np.ndarray  # per group
    last_size: np.ndarray
    city_cdf: np.ndarray  # segmented by state
    area_lines: pa.Array  # per area, the end of an address: "Opebi, Ikeja, Lagos State"
    area_offset: np.ndarray  # per city
    area_size: np.ndarray
    street_lines: pa.Array  # "Hospital Road, ": the generic streets first, then each city's own streets
    generic_count: int  # street_lines[:generic_count] are found in every town
    local_offset: np.ndarray  # per city, its own streets in street_lines (size 0: none listed)
    local_size: np.ndarray
    street_share: np.ndarray  # per state: chance that a customer in a city with its own streets lives on one
    operator_names: tuple[str, ...]
    operator_cdf: np.ndarray
    prefixes: np.ndarray  # national prefix without the leading 0, e.g. 803, flat over operators
    prefix_offset: np.ndarray
    prefix_size: np.ndarray
    email_domains: pa.Array  # "@gmail.com", ...
    domain_cdf: np.ndarray
    email_words: pa.Array  # lower-case a-z forms: [first names | their initials | last names | their initials]
    house_numbers: pa.Array  # "1 " .. "120 ", each followed by the space before the street


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
        return f"{self.random.choice(pool[gender])} {self.random.choice(g['last'])}"

    def phone_number(self) -> str:
        ops = self._dataset["operators"]
        op = self.random.choices(ops, weights=[o["share"] for o in ops])[0]
        return f"+234{self.random.choice(op['prefixes'])[1:]}{self.random.randint(0, 9_999_999):07d}"

    def address(self) -> str:
        state = self._state()
        city = self.random.choices(state["cities"], weights=[c["weight"] for c in state["cities"]])[0]
        local = city.get("streets") and self.random.random() < state["street_share"]
        street = self.random.choice(city["streets"] if local else self._dataset["generic_streets"])
        return (
            f"{self.random.randint(1, 120)} {street}, {self.random.choice(city['areas'])}, "
            f"{city['name']}, {state_label(state['name'])}"
        )

    def email(self, full_name: str | None = None) -> str:
        first, last = (full_name or self.full_name()).lower().split(" ", 1)
        domains = self._dataset["email_domains"]
        domain = self.random.choices(list(domains), weights=list(domains.values()))[0]
        return f"{first}.{last.replace(' ', '')}{self.random.randint(1, 99)}@{domain}"

    # -- pools for vectorised drawing -------------------------------------------------------------------------
    def pools(self) -> Pools:
        d = self._dataset
        states = d["states"]
        groups = tuple(d["groups"])

        first: list[str] = []
        first_offset, first_size = [], []
        for key_pool in [d["groups"][g] for g in groups] + [d["first_name_pools"][p] for p in CROSS_POOLS]:
            for gender in ("first_male", "first_female"):
                first_offset.append(len(first))
                first_size.append(len(key_pool[gender]))
                first.extend(key_pool[gender])
        last: list[str] = []
        last_offset, last_size = [], []
        for g in groups:
            last_offset.append(len(last))
            last_size.append(len(d["groups"][g]["last"]))
            last.extend(d["groups"][g]["last"])

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
        prefixes, prefix_offset, prefix_size = [], [], []
        for o in ops:
            prefix_offset.append(len(prefixes))
            prefix_size.append(len(o["prefixes"]))
            prefixes.extend(int(p) for p in o["prefixes"])  # "0803" -> 803

        domains = d["email_domains"]
        return Pools(
            state_names=pa.array([state_label(s["name"]) for s in states]),
            state_cdf=np.cumsum([s["weight"] for s in states]).astype(float),
            state_is_hub=np.array([s["name"] in HUBS for s in states]),
            groups=groups,
            group_cdf=_segmented_cdf([[s["groups"].get(g, 0.0) for g in groups] for s in states]),
            source_cdf=_segmented_cdf(
                [first_name_mix(d["groups"][g], religion_of(s, g, d["groups"][g])) for s in states for g in groups]
            ),
            first_names=pa.array(first),
            first_offset=np.array(first_offset, dtype=np.int64),
            first_size=np.array(first_size, dtype=np.int64),
            last_names=pa.array(last),
            last_offset=np.array(last_offset, dtype=np.int64),
            last_size=np.array(last_size, dtype=np.int64),
            city_cdf=_segmented_cdf(city_weights),
            area_lines=pa.array(area_lines),
            area_offset=np.array(area_offset, dtype=np.int64),
            area_size=np.array(area_size, dtype=np.int64),
            street_lines=pa.array([f"{st}, " for st in streets]),
            generic_count=len(generic),
            local_offset=np.array(local_offset, dtype=np.int64),
            local_size=np.array(local_size, dtype=np.int64),
            street_share=np.array([s["street_share"] for s in states], dtype=float),
            operator_names=tuple(o["name"] for o in ops),
            operator_cdf=np.cumsum([o["share"] for o in ops]).astype(float),
            prefixes=np.array(prefixes, dtype=np.int64),
            prefix_offset=np.array(prefix_offset, dtype=np.int64),
            prefix_size=np.array(prefix_size, dtype=np.int64),
            email_domains=pa.array([f"@{x}" for x in domains]),
            domain_cdf=np.cumsum(list(domains.values())).astype(float),
            email_words=pa.array(
                [_word(x) for x in first]
                + [_word(x)[:1] for x in first]
                + [_word(x) for x in last]
                + [_word(x)[:1] for x in last]
            ),
            house_numbers=pa.array([f"{i} " for i in range(1, 121)]),
        )


def _word(name: str) -> str:
    """A name as it appears in an e-mail address: lower case, letters only."""
    return "".join(ch for ch in name.lower() if "a" <= ch <= "z")


def state_label(name: str) -> str:
    """How a state is written at the end of an address: 'Lagos State', but 'FCT'."""
    return name if name == "FCT" else f"{name} State"


@lru_cache(maxsize=1)
def default_pools() -> Pools:
    return Nigeria().pools()
