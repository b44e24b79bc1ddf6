"""Ingestion: canonical CSV/Parquet and mapped CRM exports into the canonical tables."""
