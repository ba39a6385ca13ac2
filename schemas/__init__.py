"""Committed schemas, shipped with the package: ClickHouse migrations and event JSON Schemas."""
