"""The customer population: every attribute of customer i is a pure function of (seed, i).

Numeric traits (activity, primary platform, home state) are cheap and computed for whole customer blocks; the
identity strings (id, name, phone, email, address) are built only for the customers a shard actually writes,
whole columns at a time with Arrow compute over the `nigeria` pools.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.behaviour import Behaviour
from generator.core.nigeria import Pools
from generator.core.streams import hash_uniform, pick

IDENTITY_COLUMNS = ("customer_id", "name", "phone_number", "address", "email")


def activity(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray:
    """Expected sessions per day of each customer: Weibull-distributed around the population mean."""
    u = hash_uniform(seed, "activity", idx)
    k = b.activity_shape
    w = (-np.log1p(-u)) ** (1.0 / k)
    return w * (b.sessions_per_day / math.gamma(1.0 + 1.0 / k))


def primary_platform(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray:
    return pick(np.cumsum(b.platform_mix), hash_uniform(seed, "platform", idx)).astype(np.int8)


def home_state(seed: int, idx: np.ndarray, pools: Pools) -> np.ndarray:
    return pick(pools.state_cdf, hash_uniform(seed, "state", idx))


def _segment_pick(cdf: np.ndarray, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw from distribution `segment` of a segmented cdf, returning the flat index of the outcome."""
    return np.minimum(np.searchsorted(cdf, segment + u, side="right"), len(cdf) - 1)


def _within(offset: np.ndarray, size: np.ndarray, key: np.ndarray, u: np.ndarray) -> np.ndarray:
    return offset[key] + np.minimum((u * size[key]).astype(np.int64), size[key] - 1)


def _join(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


_EMAIL_SEPARATORS = pa.array([".", "", "_"])


def digit_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """`prefix` followed by each number zero-padded to `width` digits, built as one fixed-width byte buffer."""
    head = np.frombuffer(prefix.encode("ascii"), np.uint8)
    size = head.size + width
    out = np.empty((numbers.size, size), np.uint8)
    out[:, : head.size] = head
    x = numbers.astype(np.int64, copy=True)
    for k in range(size - 1, head.size - 1, -1):
        out[:, k] = 48 + x % 10
        x //= 10
    offsets = np.arange(0, (numbers.size + 1) * size, size, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), numbers.size, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


CUSTOMER_ID_PREFIX, CUSTOMER_ID_DIGITS = "NG", 9


def customer_index(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each customer_id's customer index (the inverse of the ids `identities` writes); -1 for any other text.
    Parsed once per distinct id."""
    encoded = pc.dictionary_encode(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    digits = pc.utf8_slice_codeunits(encoded.dictionary, len(CUSTOMER_ID_PREFIX))
    ok = pc.and_(
        pc.starts_with(encoded.dictionary, CUSTOMER_ID_PREFIX),
        pc.match_substring_regex(digits, f"^[0-9]{{{CUSTOMER_ID_DIGITS}}}$"),
    ).fill_null(False)
    index = np.asarray(pc.cast(pc.if_else(ok, digits, "-1"), pa.int64()).to_numpy(), np.int64)
    return np.r_[index, -1][encoded.indices.fill_null(-1).to_numpy().astype(np.int64)]


def identities(seed: int, idx: np.ndarray, pools: Pools) -> dict[str, pa.Array]:
    """The five identity columns for customers `idx` (int64 array), in that order."""
    idx = np.asarray(idx, dtype=np.int64)

    def u(what: str) -> np.ndarray:
        return hash_uniform(seed, what, idx)

    state = home_state(seed, idx, pools)
    n_groups = len(pools.groups)
    group = _segment_pick(pools.group_cdf, state, u("group")) - state * n_groups
    # The first name's source (the group's own names, English/Christian, Arabic/Muslim) follows the group's
    # religion where it lives: one distribution per (state, group).
    segment = state * n_groups + group
    source = _segment_pick(pools.source_cdf, segment, u("name_source")) - segment * 3
    female = (u("gender") < 0.5).astype(np.int64)
    first_key = np.where(source == 0, group, n_groups + source - 1) * 2 + female
    first_idx = _within(pools.first_offset, pools.first_size, first_key, u("first_name"))
    last_idx = _within(pools.last_offset, pools.last_size, group, u("last_name"))
    name = _join(pools.first_names.take(first_idx), pools.last_names.take(last_idx), sep=" ")

    # +234, then the operator's national prefix without its 0, then 7 subscriber digits.
    op = pick(pools.operator_cdf, u("operator"))
    prefix = pools.prefixes[_within(pools.prefix_offset, pools.prefix_size, op, u("prefix"))]
    subscriber = np.minimum((u("subscriber") * 10_000_000).astype(np.int64), 9_999_999)
    phone = digit_strings("+234", prefix * 10**7 + subscriber, 10)

    # Addresses: a house number (small ones more common), a street, an area of a city of the home state. The
    # street is one of the city's own (with the state's street_share, where the city lists any) or a generic one.
    city = _segment_pick(pools.city_cdf, state, u("city"))
    area = _within(pools.area_offset, pools.area_size, city, u("area"))
    house = (119 * u("house") ** 2).astype(np.int64)  # house numbers 1..120, as an index into their strings
    us = u("street")
    own = (pools.local_size[city] > 0) & (u("street_local") < pools.street_share[state])
    generic = np.minimum((us * pools.generic_count).astype(np.int64), pools.generic_count - 1)
    street = np.where(own, _within(pools.local_offset, np.maximum(pools.local_size, 1), city, us), generic)
    address = _join(pools.house_numbers.take(house), pools.street_lines.take(street), pools.area_lines.take(area))

    # E-mail local parts from the name in the shapes people pick (ada.okafor, adaokafor, ada_okafor, aokafor,
    # okafor.ada, adao), often followed by digits (a birth year or a number). Words come from the pools'
    # cleaned lower-case names: [first | first initial | last | last initial].
    nf, nl = len(pools.first_names), len(pools.last_names)
    fw, fi, lw, li = first_idx, nf + first_idx, 2 * nf + last_idx, 2 * nf + nl + last_idx
    shape = pick(np.array([0.34, 0.52, 0.64, 0.76, 0.88, 1.0]), u("email_shape"))
    head = np.choose(shape, [fw, fw, fw, fi, lw, fw])
    tail = np.choose(shape, [lw, lw, lw, lw, fw, li])
    sep = _EMAIL_SEPARATORS.take(np.array([0, 1, 2, 1, 0, 1])[shape])
    ud = u("email_digits")
    year = 1970 + (u("birth_year") * 37).astype(np.int64)
    small = 1 + (u("email_number") * 998).astype(np.int64)
    digits = np.where(ud < 0.30, year, np.where(ud < 0.70, small, -1))
    digit_str = pc.if_else(pa.array(digits >= 0), pc.cast(pa.array(digits), pa.string()), pa.scalar(""))
    domain = pools.email_domains.take(pick(pools.domain_cdf, u("email_domain")))
    words = pools.email_words
    email = _join(words.take(head), sep, words.take(tail), digit_str, domain)

    customer_id = digit_strings(CUSTOMER_ID_PREFIX, idx, CUSTOMER_ID_DIGITS)
    return {
        "customer_id": customer_id,
        "name": name,
        "phone_number": phone,
        "address": address,
        "email": email,
    }
