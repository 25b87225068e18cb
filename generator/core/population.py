"""The customer population: every attribute of customer i is a pure function of (seed, i), and of the population's
size for the e-mail address (unique across the population: `email_reissues`).

Numeric traits (activity, primary platform, home state) are cheap and computed for whole customer blocks; the
identity strings (id, name, phone, email, address) are built only for the customers a shard actually writes,
whole columns at a time with Arrow compute over the `nigeria` pools. The e-mail reissues are worked out once per
run over the whole population (about 0.3 s and 16 bytes per customer at a million customers, where 8% of addresses
are taken twice; 6 s and ~300 MB at ten million, where 24% are).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from generator.core.behaviour import REGIONS, Behaviour, region_of
from generator.core.events import DAY
from generator.core.lifecycle import method_cell, method_table, segmented_cdf
from generator.core.nigeria import Pools, street_length_cdf
from generator.core.streams import hash_normal, hash_u64, hash_uniform, pick, segment_pick

IDENTITY_COLUMNS = ("customer_id", "name", "phone_number", "address", "email")
# Which way identities are drawn, recorded in every manifest: a timeline continues only under the scheme that began
# it, or its customers would change names, phones and addresses from one run to the next. 1: generator 0.1 (no
# manifest field); 2: unique e-mails and phones, first names by the group's religion, streets per city (0.2); 3: names
# with Zipf-like frequencies and no famous family names, e-mail birth years from an age law, long-tailed house
# numbers on streets that include ones named after people, phone prefixes weighted within their operator; 4 (0.10):
# longer name lists for the Yoruba, Igbo and Hausa/Fulani (159,618 distinct full names among a million customers,
# where scheme 3 gave 94,789).
IDENTITY_SCHEME = 4


def activity(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray:
    """Expected sessions per day of each customer: Weibull-distributed around the population mean."""
    u = hash_uniform(seed, "activity", idx)
    k = b.activity_shape
    w = (-np.log1p(-u)) ** (1.0 / k)
    return w * (b.sessions_per_day / math.gamma(1.0 + 1.0 / k))


NEVER = np.iinfo(np.int64).min // 2  # a sign-up instant before any time a run simulates


def sign_ups(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray | None:
    """Each customer's sign-up instant (us) where the scenario's launch ramp is customers signing up
    (`traffic.ramp_sign_ups`): `ramp_first` of them before `ramp_start_us` (NEVER: signed up before any run), the
    rest uniform over the `ramp_days` after it (at `ramp_start_us`, for none), so the share signed up at any instant
    is the ramp's factor (`sessions.ramp_factor`). Independent of the customer's other traits. None where there is
    no such ramp (every customer there all along)."""
    if not b.ramp_sign_ups or b.ramp_first >= 1.0:
        return None
    u = hash_uniform(seed, "sign_up", np.asarray(idx, np.int64))
    later = np.maximum(u - b.ramp_first, 0.0) / (1.0 - b.ramp_first)  # uniform on [0, 1) among the later ones
    at = b.ramp_start_us + np.floor(later * (b.ramp_days * DAY)).astype(np.int64)
    return np.where(u < b.ramp_first, NEVER, at)


def signed_up_share(signed_up: np.ndarray | None, activity: np.ndarray):
    """Where the launch ramp is sign-ups: a function of instants (us) giving the share of a population's activity
    (its expected sessions a day) signed up by then, the factor its traffic has against the mature curve (the
    ramp's factor in expectation, this population's own draw exactly), from each customer's `sign_ups` instant and
    `activity`. None where there are no sign-ups."""
    if signed_up is None or signed_up.size == 0:
        return None
    order = np.argsort(signed_up, kind="stable")
    at = signed_up[order]
    running = np.cumsum(activity[order])
    running /= running[-1]

    def share(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(at, np.asarray(t, np.int64), side="right")
        return np.where(k > 0, running[np.maximum(k - 1, 0)], 0.0)

    return share


def network_quality(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray:
    """Each customer's own factor on their operator's round trip, the same in every session (a weak signal where
    they live, an old phone): lognormal with median 1 and sigma `latency_customer_sigma`, by Box-Muller from two
    of the customer's uniforms."""
    idx = np.asarray(idx, np.int64)
    if b.latency_customer_sigma == 0:
        return np.ones(idx.size)
    return np.exp(b.latency_customer_sigma * hash_normal(seed, "network", idx))


def propensity(seed: int, idx: np.ndarray, b: Behaviour) -> np.ndarray:
    """Each customer's own factor on the probability of adding to the cart, the same in all its sessions:
    lognormal with mean 1 and sigma `propensity_sigma` (1 for every customer with sigma 0), by Box-Muller from two
    of the customer's uniforms."""
    idx = np.asarray(idx, np.int64)
    s = b.propensity_sigma
    if s == 0:
        return np.ones(idx.size)
    return np.exp(s * hash_normal(seed, "propensity", idx) - s * s / 2)


def platform_by_region(b: Behaviour, pools: Pools) -> np.ndarray:
    """(REGIONS, PLATFORMS): the platform mix of the customers of each region, the mix's weights times the
    region's factors, with base weights solved (iterative proportional fitting) so that over the regions' demand
    the population's mix is still the scenario's `mix`. The national mix is summed exactly (fsum): the same mixes,
    to the last bit, on every CPU."""
    regions = region_of(pools.state_is_hub, pools.state_zone)
    demand = np.bincount(regions, weights=np.diff(pools.state_cdf, prepend=0.0), minlength=len(REGIONS))
    demand /= demand.sum()
    target = b.platform_mix / b.platform_mix.sum()
    w = target.copy()
    for _ in range(200):
        by_region = w * b.platform_region_factor
        by_region /= by_region.sum(axis=1, keepdims=True)
        national = np.array([math.fsum(col) for col in (demand[:, None] * by_region).T])
        if np.abs(national - target).max() < 1e-12:
            break
        w = w * np.divide(target, national, out=np.ones_like(target), where=national > 0)
    return by_region


def platforms_in(region: np.ndarray, mix: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A platform per draw `u` from the mix of its `region` (rows of `platform_by_region`)."""
    cdf = (np.arange(mix.shape[0])[:, None] + np.cumsum(mix, axis=1)).ravel()
    return (segment_pick(cdf, np.asarray(region, np.int64), u) % mix.shape[1]).astype(np.int8)


def primary_platform(
    seed: int, idx: np.ndarray, b: Behaviour, region: np.ndarray | None = None, mix: np.ndarray | None = None
) -> np.ndarray:
    """Each customer's primary platform: from the scenario's mix, or, given the customers' regions and
    `platform_by_region`'s mixes, from the mix of where each lives."""
    u = hash_uniform(seed, "platform", idx)
    if mix is None:
        return pick(np.cumsum(b.platform_mix), u).astype(np.int8)
    return platforms_in(region, mix, u)


def usual_method(
    seed: int, idx: np.ndarray, b: Behaviour, region: np.ndarray | None = None, platform: np.ndarray | None = None
) -> np.ndarray:
    """Each customer's usual payment method (codes into PAYMENT_METHODS): drawn from the method weights of where
    it lives (`region`, a REGIONS index) and its primary `platform` (`lifecycle.method_table`, any amount), or from
    the mix where they are not given or the scenario's methods do not vary (as before the keys)."""
    u = hash_uniform(seed, "method", idx)
    if region is None or platform is None or not b.methods_vary:
        return pick(np.cumsum(b.method_mix), u).astype(np.int8)
    table = method_table(b)[:, 0]  # below the USSD cap
    cell = method_cell(b, np.asarray(region), np.asarray(platform))
    return (segment_pick(segmented_cdf(table), cell, u) - cell * table.shape[1]).astype(np.int8)


def home_state(seed: int, idx: np.ndarray, pools: Pools) -> np.ndarray:
    return pick(pools.state_cdf, hash_uniform(seed, "state", idx))


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


def _names(seed: int, idx: np.ndarray, pools: Pools) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Home state, first-name and last-name pool indices of customers `idx`."""

    def u(what: str) -> np.ndarray:
        return hash_uniform(seed, what, idx)

    state = home_state(seed, idx, pools)
    n_groups = len(pools.groups)
    group = segment_pick(pools.group_cdf, state, u("group")) - state * n_groups
    # The first name's source (the group's own names, English/Christian, Arabic/Muslim) follows the group's
    # religion where it lives: one distribution per (state, group).
    segment = state * n_groups + group
    source = segment_pick(pools.source_cdf, segment, u("name_source")) - segment * 3
    female = (u("gender") < 0.5).astype(np.int64)
    first_key = np.where(source == 0, group, n_groups + source - 1) * 2 + female
    first_idx = segment_pick(pools.first_cdf, first_key, u("first_name"))
    last_idx = segment_pick(pools.last_cdf, group, u("last_name"))
    # Nobody is called "Ademola Ademola": a surname that is the first name gives way to the next one of the list.
    clash = pools.first_word[first_idx] == pools.last_word[last_idx]
    if clash.any():
        at, g = last_idx[clash] - pools.last_offset[group[clash]], group[clash]
        last_idx[clash] = pools.last_offset[g] + (at + 1) % pools.last_size[g]
    return state, first_idx, last_idx


# E-mail local parts from the name in the shapes people pick (ada.okafor, adaokafor, ada_okafor, aokafor,
# okafor.ada, adao), often followed by digits (a birth year or a number). Words come from the pools' cleaned
# lower-case names: [first | first initial | last | last initial].
_EMAIL_SHAPE_CDF = np.array([0.34, 0.52, 0.64, 0.76, 0.88, 1.0])
_EMAIL_SEP_OF_SHAPE = np.array([0, 1, 2, 1, 0, 1])


def _email_words(
    seed: int, idx: np.ndarray, pools: Pools, first_idx: np.ndarray, last_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each customer's e-mail words (indices into `pools.email_words`), separator and domain."""
    nf, nl = len(pools.first_names), len(pools.last_names)
    fw, fi, lw, li = first_idx, nf + first_idx, 2 * nf + last_idx, 2 * nf + nl + last_idx
    shape = pick(_EMAIL_SHAPE_CDF, hash_uniform(seed, "email_shape", idx))
    head = np.where(shape == 3, fi, np.where(shape == 4, lw, fw))  # shapes: [fw, fw, fw, fi, lw, fw]
    tail = np.where(shape == 4, fw, np.where(shape == 5, li, lw))  # [lw, lw, lw, lw, fw, li]
    domain = pick(pools.domain_cdf, hash_uniform(seed, "email_domain", idx))
    return head, _EMAIL_SEP_OF_SHAPE[shape], tail, domain


def _email_digits(seed: int, idx: np.ndarray, pools: Pools, attempt: int = 0) -> np.ndarray:
    """The number after the words: a birth year (32%, from the shoppers' age law `birth_year_cdf`), two digits
    (28%: mostly a 20th-century birth year's last two, else a number below 100), one of three or four digits (25%,
    the shorter ones likelier), or none (15%: -1). `attempt` > 0 draws the number a customer picks when the
    address it wanted is taken, never none; from the fifth attempt on, one of three or four digits (the common names'
    birth years are soon all taken)."""
    tag = f"/{attempt}" if attempt else ""
    ud = hash_uniform(seed, "email_digits" + tag, idx) * (0.85 if attempt else 1.0)
    if attempt > 4:
        ud = 0.60 + ud * (0.25 / 0.85)
    un = hash_uniform(seed, "email_number" + tag, idx)
    year = pools.birth_year_first + pick(pools.birth_year_cdf, hash_uniform(seed, "email_year" + tag, idx))
    # The same uniform picks the branch and, rescaled to [0, 1) inside it, the number below 100 (unscaled, it could
    # only be 60-99 for the common birth years).
    within = np.where(un < 0.6, un / 0.6, (un - 0.6) / 0.4)
    small = np.where((un < 0.6) & (year < 2000), year % 100, 1 + (within * 99).astype(np.int64))
    longer = (10 ** (2 + 2 * un)).astype(np.int64)  # 100..9999, log-uniform
    return np.where(ud < 0.32, year, np.where(ud < 0.60, small, np.where(ud < 0.85, longer, -1)))


EMAIL_DIGITS_MAX = 9999  # the largest number `_email_digits` draws: four digits at most
REISSUE_ATTEMPTS = 16
_SHARED_TOP_BITS = 22  # the table of shared addresses' top bits: 4 MiB, a few percent of it set for a million
_HASH_BASE = 0x100000001B3  # an odd multiplier for the polynomial string hash below


class _EmailHash:
    """A polynomial hash of whole e-mail addresses from their pieces' hashes: H(a + b) = H(a) * BASE**len(b) + H(b)
    (mod 2**64), so equal addresses always hash equal, whatever pieces they were built from."""

    def __init__(self, pools: Pools):
        def table(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
            """Each string's hash and BASE**(its length in bytes), mod 2**64: a byte position at a time over all
            of them (uint64 arithmetic wraps around, as the hash's does)."""
            encoded = [x.encode() for x in strings]
            lengths = np.array([len(x) for x in encoded], np.int64)
            width = int(lengths.max(initial=0))
            if not width:
                return np.zeros(len(encoded), np.uint64), np.ones(len(encoded), np.uint64)
            data = np.frombuffer(b"".join(x.ljust(width, b"\0") for x in encoded), np.uint8).reshape(-1, width)
            h, power = np.zeros(len(encoded), np.uint64), np.ones(len(encoded), np.uint64)
            base = np.uint64(_HASH_BASE)
            for j in range(width):
                more = j < lengths
                h = np.where(more, h * base + data[:, j], h)
                power = np.where(more, power * base, power)
            return h, power

        self.words = table(pools.email_words.to_pylist())
        self.seps = table(_EMAIL_SEPARATORS.to_pylist())
        self.domains = table(pools.email_domains.to_pylist())
        self.digits = table([""] + [str(d) for d in range(EMAIL_DIGITS_MAX + 1)])  # at digits + 1

    def __call__(self, head, sep, tail, digits, domain) -> np.ndarray:
        h = self.words[0][head]
        for (hs, ps), i in ((self.seps, sep), (self.words, tail), (self.digits, digits + 1), (self.domains, domain)):
            h = h * ps[i] + hs[i]
        return h


_REISSUE_CHUNK = 1 << 16  # customers at a time: the temporaries stay in the CPU's cache
_reissued: dict[tuple[int, int, int], tuple[Pools, np.ndarray, np.ndarray]] = {}


def _address_hashes(
    seed: int, idx: np.ndarray | range, pools: Pools, email_hash: _EmailHash, attempt: int = 0, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The hash of each customer's e-mail address at `attempt` (0: the one it wants first), and its number; a
    chunk of customers at a time, on up to `threads` threads (numpy releases the interpreter lock inside its
    loops, so chunks overlap where there are CPUs for them; each fills its own slice: the same result)."""
    h = np.empty(len(idx), np.uint64)
    digits = np.empty(len(idx) if attempt else 0, np.int64)

    def chunk(lo: int) -> None:
        part = idx[lo : lo + _REISSUE_CHUNK]
        part = np.arange(part.start, part.stop, dtype=np.int64) if isinstance(part, range) else part
        _, first_idx, last_idx = _names(seed, part, pools)
        head, sep, tail, domain = _email_words(seed, part, pools, first_idx, last_idx)
        d = _email_digits(seed, part, pools, attempt)
        if attempt:
            digits[lo : lo + part.size] = d
        h[lo : lo + part.size] = email_hash(head, sep, tail, d, domain)

    starts = range(0, len(idx), _REISSUE_CHUNK)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(min(threads, len(starts)), thread_name_prefix="reissues") as pool:
            list(pool.map(chunk, starts))
    else:
        for lo in starts:
            chunk(lo)
    return h, digits


def email_reissues(seed: int, population: int, pools: Pools, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """E-mail addresses are unique across the population, as a sign-up form keeps them: a customer whose address
    is already someone's (a lower-numbered customer's) picks another number, and another while that one is taken
    too. Returns the customers who had to (sorted) and the number each ended with.

    A pure function of (seed, population), worked out once per process when it first builds identities (about
    0.3 s and 16 bytes per customer for a million customers), or once by a run's coordinator for all its workers
    (`adopt_reissues`), hashing the population's addresses on up to `threads` threads."""
    key = (seed, population, id(pools))
    if key in _reissued:
        return _reissued[key][1:]
    email_hash = _EmailHash(pools)
    natural, _ = _address_hashes(seed, range(population), pools, email_hash, threads=threads)
    # Customers whose address someone else has too; of each address's holders the lowest-numbered keeps it. The
    # addresses are sorted, not argsorted (a third of the time, for a million): the shared ones are found among
    # them, and their holders by looking up, among those few, each customer's address whose top bits are some
    # shared address's (a table of them: most addresses are ruled out at once, without a search).
    by_address = np.sort(natural)
    same_as_next = by_address[1:] == by_address[:-1]
    shared = np.unique(by_address[1:][same_as_next])
    del same_as_next
    top = np.uint64(64 - _SHARED_TOP_BITS)
    marked = np.zeros(1 << _SHARED_TOP_BITS, bool)
    marked[(shared >> top).astype(np.int64)] = True
    maybe = np.flatnonzero(marked[(natural >> top).astype(np.int64)])
    del marked
    at = np.minimum(np.searchsorted(shared, natural[maybe]), max(shared.size - 1, 0))
    holders = maybe[shared[at] == natural[maybe]] if shared.size else np.zeros(0, np.int64)
    values = natural[holders]
    by_value = np.argsort(values, kind="stable")  # by address, and by number within one
    holders, values = holders[by_value], values[by_value]
    first = np.r_[True, values[1:] != values[:-1]] if values.size else np.zeros(0, bool)
    pending = np.sort(holders[~first])
    natural = by_address  # sorted: the later attempts are checked against it
    del shared, at, holders, values, by_value, first
    chosen_idx, chosen_digits, chosen_hash = [], [], [np.zeros(0, np.uint64)]
    for attempt in range(1, REISSUE_ATTEMPTS + 1):
        if not pending.size:
            break
        h, digits = _address_hashes(seed, pending, pools, email_hash, attempt)
        taken = np.sort(np.concatenate(chosen_hash))
        free = ~(_sorted_contains(natural, h) | _sorted_contains(taken, h))
        first = np.zeros(pending.size, bool)  # two customers wanting the same new address: the lower-numbered
        by_hash = np.argsort(h, kind="stable")
        first[by_hash[np.r_[True, h[by_hash][1:] != h[by_hash][:-1]]]] = True
        won = free & first
        chosen_idx.append(pending[won])
        chosen_digits.append(digits[won])
        chosen_hash.append(h[won])
        pending = pending[~won]
    # Anyone still without an address takes a five-digit number or longer, which no drawn address ends with.
    chosen_idx.append(pending)
    chosen_digits.append(10_000 + np.arange(pending.size, dtype=np.int64))
    idx = np.concatenate(chosen_idx)
    digits = np.concatenate(chosen_digits)
    by_idx = np.argsort(idx)
    adopt_reissues(seed, population, pools, idx[by_idx], digits[by_idx])
    return _reissued[key][1:]


def adopt_reissues(seed: int, population: int, pools: Pools, idx: np.ndarray, digits: np.ndarray) -> None:
    """Take `email_reissues(seed, population, pools)` as worked out elsewhere (by a run's coordinator, once for
    all its workers), so that this process need not work it out again."""
    key = (seed, population, id(pools))
    if key not in _reissued:
        if len(_reissued) >= 4:
            _reissued.pop(next(iter(_reissued)))
        _reissued[key] = (pools, np.asarray(idx, np.int64), np.asarray(digits, np.int64))


def _sorted_contains(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether each of `x` is among `sorted_values` (the queries searched in order, for the cache's sake)."""
    if not sorted_values.size:
        return np.zeros(x.size, bool)
    order = np.argsort(x)
    at = np.minimum(np.searchsorted(sorted_values, x[order]), sorted_values.size - 1)
    found = np.empty(x.size, bool)
    found[order] = sorted_values[at] == x[order]
    return found


_PHONE_ROUNDS = 8


def subscriber_numbers(seed: int, idx: np.ndarray) -> np.ndarray:
    """Seven-digit subscriber numbers: a keyed permutation of [0, 10**7) (a Feistel network over 3 + 4 decimal
    digits), applied to the customer index, so no two of the first ten million customers share a number."""
    x = np.asarray(idx, np.int64) % 10**7
    a, b = x // 10**4, x % 10**4  # 3 and 4 digits
    for i in range(_PHONE_ROUNDS):
        m = 10**3 if i % 2 == 0 else 10**4
        f = (hash_u64(seed, f"subscriber/{i}", b) % np.uint64(m)).astype(np.int64)
        a, b = b, (a + f) % m
    return a * 10**4 + b


def _operator(seed: int, idx: np.ndarray, pools: Pools) -> np.ndarray:
    """Each customer's mobile operator, as an index into `pools.operator_names` (its phone prefix is one of it)."""
    return pick(pools.operator_cdf, hash_uniform(seed, "operator", idx))


def operators(seed: int, idx: np.ndarray, pools: Pools) -> np.ndarray:
    """Each customer's mobile operator as an index into `behaviour.OPERATORS` (whose round trips latency adds)."""
    return pools.operator_code[_operator(seed, np.asarray(idx, np.int64), pools)]


@lru_cache(maxsize=4)
def _all_streets(pools: Pools) -> pa.Array:
    """Every street line a customer can live on: `street_lines`, then each street surname with each ending in turn
    ("Okafor Close, "), so that one take of indices builds the streets (no string joined per customer)."""
    named = pc.binary_join_element_wise(
        pa.array(np.repeat(pools.street_surnames.to_numpy(zero_copy_only=False), len(pools.street_endings))),
        pa.array(np.tile(pools.street_endings.to_numpy(zero_copy_only=False), len(pools.street_surnames))),
        "",
    )
    return pa.concat_arrays([pools.street_lines.cast(pa.string()), named.cast(pa.string())])


def identities(seed: int, idx: np.ndarray, pools: Pools, population: int | None = None) -> dict[str, pa.Array]:
    """The five identity columns for customers `idx` (int64 array), in that order. With the run's `population`,
    e-mail addresses are made unique across it (`email_reissues`)."""
    idx = np.asarray(idx, dtype=np.int64)

    def u(what: str) -> np.ndarray:
        return hash_uniform(seed, what, idx)

    state, first_idx, last_idx = _names(seed, idx, pools)
    name = _join(pools.first_names.take(first_idx), pools.last_names.take(last_idx), sep=" ")

    # +234, then the operator's national prefix without its 0, then 7 subscriber digits.
    op = _operator(seed, idx, pools)
    prefix = pools.prefixes[segment_pick(pools.prefix_cdf, op, u("prefix"))]
    phone = digit_strings("+234", prefix * 10**7 + subscriber_numbers(seed, idx), 10)

    # Addresses: a house number, a street, an area of a city of the home state. The street is one of the city's
    # own (with the state's street_share, where the city lists any), else one named after a person, with a
    # surname of the state's peoples ("Okafor Close"; person_street_share), else a generic one. The house number
    # is uniform along a street whose length is long-tailed (`street_length_cdf`): small numbers are the commonest.
    city = segment_pick(pools.city_cdf, state, u("city"))
    area = _within(pools.area_offset, pools.area_size, city, u("area"))
    law = pools.street_length
    v = u("street_length") * street_length_cdf(law, law["longest_street"])
    length = law["street_length_median"] * (v / (1.0 - v)) ** (1.0 / law["street_length_shape"])
    house = np.minimum((u("house") * np.maximum(length, 1.0)).astype(np.int64), law["longest_street"] - 1)
    us = u("street")
    own = (pools.local_size[city] > 0) & (u("street_local") < pools.street_share[state])
    generic = np.minimum((us * pools.generic_count).astype(np.int64), pools.generic_count - 1)
    street = np.where(own, _within(pools.local_offset, np.maximum(pools.local_size, 1), city, us), generic)
    person = ~own & (u("street_person") < pools.person_street_share)
    if person.any():
        n_groups = len(pools.groups)
        who = segment_pick(pools.group_cdf, state, u("street_group")) - state * n_groups
        surname = _within(pools.street_surname_offset, pools.street_surname_size, who, us)
        ending = pick(pools.street_ending_cdf, u("street_ending"))
        named = len(pools.street_lines) + surname * len(pools.street_endings) + ending
        street = np.where(person, named, street)
    address = _join(pools.house_numbers.take(house), _all_streets(pools).take(street), pools.area_lines.take(area))

    head, sep, tail, domain = _email_words(seed, idx, pools, first_idx, last_idx)
    digits = _email_digits(seed, idx, pools)
    if population is not None:
        reissued, new_digits = email_reissues(seed, population, pools)
        if reissued.size:
            at = np.minimum(np.searchsorted(reissued, idx), reissued.size - 1)
            hit = reissued[at] == idx
            digits = np.where(hit, new_digits[at], digits)
    digit_str = pc.if_else(pa.array(digits >= 0), pc.cast(pa.array(digits), pa.string()), pa.scalar(""))
    words = pools.email_words
    email = _join(
        words.take(head), _EMAIL_SEPARATORS.take(sep), words.take(tail), digit_str, pools.email_domains.take(domain)
    )

    customer_id = digit_strings(CUSTOMER_ID_PREFIX, idx, CUSTOMER_ID_DIGITS)
    return {
        "customer_id": customer_id,
        "name": name,
        "phone_number": phone,
        "address": address,
        "email": email,
    }
