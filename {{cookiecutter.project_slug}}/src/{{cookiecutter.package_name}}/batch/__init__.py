"""Batch scoring: datasets of CSV, Parquet or JSON Lines files in, the same rows with their
predictions out, in parts, shards and on engines."""
