"""The event model, declared once: the 16 columns, their Arrow types and the rules that tie them to event types.

The writer builds its Arrow schema from COLUMNS, the validator checks RULES, and `gen schema` and the README
render both. Nothing else in the package restates a column list or a conditional-column rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

EVENT_TYPES: tuple[str, ...] = (
    "OPEN",
    "USER_LOGIN",
    "PRODUCT_VIEW",
    "ADD_TO_CART",
    "CHECKOUT_STARTED",
    "PAYMENT_AUTHORIZED",
    "PAYMENT_FAILED",
    "ORDER_PLACED",
    "PACKED",
    "SHIPPED",
    "DELIVERED",
)
# Integer codes used by the generating core: EVENT_CODE["OPEN"] == 0, and so on.
EVENT_CODE: dict[str, int] = {name: code for code, name in enumerate(EVENT_TYPES)}

# The original spec sheet spells the first platform "ANDRIOD"; that is a typo and we emit ANDROID.
PLATFORMS: tuple[str, ...] = ("ANDROID", "IOS", "WEB")
PAYMENT_METHODS: tuple[str, ...] = ("CARD", "USSD", "TRANSFER", "PAYPAL")
PAYMENT_STATUSES: tuple[str, ...] = ("CAPTURED", "REFUNDED")
INVALID_LATENCY = "INVALID LATENCY"
ERROR_CODES: tuple[str, ...] = (INVALID_LATENCY,)

# payment_status is a pure function of event_type: CAPTURED on these, REFUNDED on PAYMENT_FAILED, null elsewhere.
PAYMENT_STATUS_BY_TYPE: dict[str, str] = {
    "CHECKOUT_STARTED": "CAPTURED",
    "PAYMENT_AUTHORIZED": "CAPTURED",
    "ORDER_PLACED": "CAPTURED",
    "PAYMENT_FAILED": "REFUNDED",
}

# Fulfilment order of an order's events, from authorisation to delivery; carrier and tracking_number are
# set on exactly these and stay the same along one order.
ORDER_STAGES: tuple[str, ...] = ("PAYMENT_AUTHORIZED", "ORDER_PLACED", "PACKED", "SHIPPED", "DELIVERED")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    nullable: bool
    description: str
    # Event types on which the column is populated (and null on all others); None means every event.
    populated_on: frozenset[str] | None = None
    # The closed set of values the column may take, when there is one.
    values: tuple[str, ...] | None = None
    # Whether min/max statistics help readers skip data: not for random ids, customers spread over every row
    # group, free-text personal data, or a handful of codes every row group holds all of.
    statistics: bool = True
    # For docs: when a nullable column without `populated_on` is set.
    set_when: str | None = None


_AMOUNT_EVENTS = frozenset({"CHECKOUT_STARTED", "PAYMENT_AUTHORIZED", "PAYMENT_FAILED", "ORDER_PLACED"})
_METHOD_EVENTS = frozenset({"PAYMENT_AUTHORIZED", "ORDER_PLACED"})
_CARRIER_EVENTS = frozenset(ORDER_STAGES)

COLUMNS: tuple[Column, ...] = (
    Column("event_id", pa.uuid(), False, "Unique id of the event (UUID version 4).", statistics=False),
    Column("event_ts", pa.timestamp("us", tz="UTC"), False, "When the event happened, UTC, microseconds."),
    Column("event_type", pa.string(), False, "One of the 11 event types.", values=EVENT_TYPES, statistics=False),
    Column(
        "customer_id",
        pa.string(),
        False,
        "Stable customer id; identity is fixed per (seed, customer).",
        statistics=False,
    ),
    Column("name", pa.string(), False, "Customer's full name.", statistics=False),
    Column(
        "phone_number", pa.string(), False, "Customer's mobile number, E.164 (+234 and 10 digits).", statistics=False
    ),
    Column("address", pa.string(), False, "Delivery address: house, street, area, city, state.", statistics=False),
    Column("email", pa.string(), False, "Customer's e-mail address.", statistics=False),
    Column("platform", pa.string(), False, "Client platform.", values=PLATFORMS, statistics=False),
    Column("latency_ms", pa.int32(), False, "Server-observed latency of the request, milliseconds."),
    Column(
        "error_code",
        pa.string(),
        True,
        f"'{INVALID_LATENCY}' exactly when latency_ms exceeds the run's latency threshold, else null.",
        values=ERROR_CODES,
        set_when="latency_ms > the run's latency threshold",
    ),
    Column(
        "total_amount",
        pa.decimal128(12, 2),
        True,
        "Order total in Naira (NGN); the same from CHECKOUT_STARTED to ORDER_PLACED.",
        populated_on=_AMOUNT_EVENTS,
    ),
    Column(
        "payment_method",
        pa.string(),
        True,
        "Method of the successful payment; the same on PAYMENT_AUTHORIZED and ORDER_PLACED.",
        populated_on=_METHOD_EVENTS,
        values=PAYMENT_METHODS,
    ),
    Column(
        "payment_status",
        pa.string(),
        True,
        "CAPTURED on CHECKOUT_STARTED, PAYMENT_AUTHORIZED, ORDER_PLACED; REFUNDED on PAYMENT_FAILED.",
        populated_on=frozenset(PAYMENT_STATUS_BY_TYPE),
        values=PAYMENT_STATUSES,
    ),
    Column(
        "carrier",
        pa.string(),
        True,
        "Delivery company; the same from PAYMENT_AUTHORIZED to DELIVERED.",
        populated_on=_CARRIER_EVENTS,
    ),
    Column(
        "tracking_number",
        pa.string(),
        True,
        "Carrier's tracking number; set exactly when carrier is set, one per order.",
        populated_on=_CARRIER_EVENTS,
        statistics=False,
    ),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}


def arrow_schema() -> pa.Schema:
    """The schema of every part, as readers see it."""
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in COLUMNS])


def travels_encoded(c: Column) -> bool:
    """String columns dense with repeats (the closed sets that are never null, the customer's identity) and
    the tracking number travel from the core to the writer as Arrow dictionaries: the writer stores their
    codes directly, with no string copied or hashed per row. Sparse code columns stay plain."""
    return pa.types.is_string(c.type) and (not c.nullable or c.name == "tracking_number")


def encoded_schema() -> pa.Schema:
    """The schema of the tables the generating core hands to the writer."""
    return pa.schema(
        [
            pa.field(c.name, pa.dictionary(pa.int32(), c.type) if travels_encoded(c) else c.type, c.nullable)
            for c in COLUMNS
        ]
    )


def decoded(table: pa.Table) -> pa.Table:
    """A table in `encoded_schema()` as every reader sees it: dictionary columns decoded, nothing else changed."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(
                i, pa.field(f.name, f.type.value_type, f.nullable), table.column(i).cast(f.type.value_type)
            )
    return table


def hive_type(c: Column) -> str:
    """The column's type in Hive DDL, as Athena (through the Glue Data Catalog) and Spark read our Parquet."""
    t = c.type
    if c.name == "event_id":
        return "binary"  # Parquet UUID (16 bytes); Athena shows it as varbinary, Spark as binary
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_int32(t):
        return "int"
    return "string"


def glue_columns() -> list[dict[str, str]]:
    """The Glue table's columns (terraform/glue_columns.json is this, written by `gen schema --glue`)."""
    return [{"name": c.name, "type": hive_type(c), "comment": c.description} for c in COLUMNS]


def spark_ddl() -> str:
    """The schema as a Spark DDL string, for `spark.read.schema(...)`: Spark (4.x) refuses to infer a schema from
    a Parquet UUID column ("Illegal Parquet type: FIXED_LEN_BYTE_ARRAY (UUID)") but reads it as binary when told."""
    return ", ".join(f"{c.name} {hive_type(c).upper()}" for c in COLUMNS)


def describe() -> list[dict[str, object]]:
    """The declaration as plain data: used by `gen schema --json`, the manifest and the README."""
    out = []
    for c in COLUMNS:
        out.append(
            {
                "name": c.name,
                "type": str(c.type) if c.name != "event_id" else "uuid",
                "nullable": c.nullable,
                "populated_on": sorted(c.populated_on, key=EVENT_TYPES.index)
                if c.populated_on
                else c.set_when or "all",
                "values": list(c.values) if c.values else None,
                "description": c.description,
            }
        )
    return out


# The session grammar: which session event may directly follow which, for one customer in time order
# (fulfilment events are the order's, not the session's, and are checked along the tracking number instead).
# OPEN may follow anything: a new session can start after a session abandoned at any step. A checkout may follow
# a product view, but only in a session that has added to its cart (`gen validate` checks that too).
SESSION_EVENTS: tuple[str, ...] = EVENT_TYPES[: EVENT_TYPES.index("ORDER_PLACED") + 1]
SESSION_NEXT: dict[str, frozenset[str]] = {
    "OPEN": frozenset({"USER_LOGIN", "PRODUCT_VIEW", "OPEN"}),
    "USER_LOGIN": frozenset({"PRODUCT_VIEW", "OPEN"}),
    "PRODUCT_VIEW": frozenset({"PRODUCT_VIEW", "ADD_TO_CART", "CHECKOUT_STARTED", "OPEN"}),  # once carted
    "ADD_TO_CART": frozenset({"PRODUCT_VIEW", "CHECKOUT_STARTED", "OPEN"}),
    "CHECKOUT_STARTED": frozenset({"PAYMENT_FAILED", "PAYMENT_AUTHORIZED", "OPEN"}),
    "PAYMENT_FAILED": frozenset({"PAYMENT_FAILED", "PAYMENT_AUTHORIZED", "OPEN"}),
    "PAYMENT_AUTHORIZED": frozenset({"ORDER_PLACED"}),
    "ORDER_PLACED": frozenset({"OPEN"}),
}
