"""Synthetic Nigerian e-commerce event logs for Temu's Nigeria launch, generated in shards and written as Parquet."""

__version__ = "0.10.0"
