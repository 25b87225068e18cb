"""The Athena tables over a prefix the generator uploads to, as DDL (`gen schema --athena s3://BUCKET/PREFIX/`), for
teams that create their tables themselves rather than with terraform/ (whose glue.tf declares the same two).

- `events`: every Parquet part under `<prefix>/events/`, queryable as parts land (a run still uploading, and the
  parts of a run that failed before its manifest, included);
- `events_committed`: only the parts the runs' manifests list, read through the committed-parts index under
  `<prefix>/committed/` (Hive's SymlinkTextInputFormat; see `manifest.committed_index`).

Both partition by `dt` with Athena partition projection, so no partition is ever added by hand.
"""

from __future__ import annotations

from generator.manifest import COMMITTED_DIR
from generator.parts import EVENTS_DIR
from generator.schema import COLUMNS, hive_type

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# table name -> (folder under the prefix, input format, output format)
TABLES = {
    "events": (
        EVENTS_DIR,
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    ),
    "events_committed": (
        COMMITTED_DIR,
        "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat",
        "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    ),
}
# dt by day, from the first day a timeline may hold data to today; a day's hour=HH/ folders are read with it
DT_PROJECTION = {
    "projection.enabled": "true",
    "projection.dt.type": "date",
    "projection.dt.format": "yyyy-MM-dd",
    "projection.dt.range": "2024-11-01,NOW",
    "projection.dt.interval": "1",
    "projection.dt.interval.unit": "DAYS",
}


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ddl(location: str, database: str = "") -> str:
    """CREATE EXTERNAL TABLE statements for both tables over `location` (s3://bucket/prefix/), one per query as
    Athena runs them, separated by a blank line."""
    root = location.rstrip("/") + "/"
    columns = ",\n".join(f"  `{c.name}` {hive_type(c)} COMMENT {_quoted(c.description)}" for c in COLUMNS)
    statements = []
    for name, (folder, input_format, output_format) in TABLES.items():
        where = f"{root}{folder}/"
        properties = {"classification": "parquet"} | DT_PROJECTION
        properties["storage.location.template"] = f"{where}dt=${{dt}}/"
        listed = ",\n".join(f"  {_quoted(k)} = {_quoted(v)}" for k, v in properties.items())
        table = f"`{database}`.`{name}`" if database else f"`{name}`"
        statements.append(
            f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n{columns}\n)\n"
            "PARTITIONED BY (`dt` string)\n"
            f"ROW FORMAT SERDE {_quoted(PARQUET_SERDE)}\n"
            f"STORED AS INPUTFORMAT {_quoted(input_format)}\n"
            f"OUTPUTFORMAT {_quoted(output_format)}\n"
            f"LOCATION {_quoted(where)}\n"
            f"TBLPROPERTIES (\n{listed}\n);\n"
        )
    return "\n".join(statements)
