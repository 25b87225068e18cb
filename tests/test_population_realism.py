"""Customer identities read as Nigerian: first names follow the religion of the surname's ethnic group (and, for
the Yoruba, the state). Checked against the reference data itself (`nigeria.json`) over a large customer sample."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
import pytest

from generator.core.nigeria import default_pools, state_label
from generator.core.population import identities


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


@pytest.fixture(scope="module")
def customers() -> dict[str, np.ndarray]:
    ids = identities(11, np.arange(300_000), default_pools())
    names = ids["name"].to_pylist()
    return {
        "first": np.array([n.split(" ", 1)[0] for n in names]),
        "last": np.array([n.split(" ", 1)[1] for n in names]),
        "state": np.array([a.rsplit(", ", 1)[1] for a in ids["address"].to_pylist()]),
        "address": ids["address"].to_pylist(),
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
    n, arabic, english = _shares(customers, "yoruba")
    assert n > 20_000 and 0.12 < arabic < 0.40 and 0.12 < english < 0.40, "Yoruba are both Christian and Muslim"


def test_yoruba_first_names_follow_the_state(customers):
    n_east, arabic_east, english_east = _shares(customers, "yoruba", ["Ekiti", "Ondo"])
    n_north, arabic_north, english_north = _shares(customers, "yoruba", ["Kwara", "Oyo", "Osun"])
    assert n_east > 1_000 and n_north > 1_000
    assert arabic_east < 0.12 < 0.2 < arabic_north, "Ekiti and Ondo lean Christian, Kwara, Oyo and Osun Muslim"
    assert english_east > english_north
