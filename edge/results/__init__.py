"""Measurement results: append-only JSON Lines records per cell, run metadata, run listing."""

from edge.results.store import (
    SCHEMA_VERSION,
    STATUSES,
    DamagedRecordWarning,
    DuplicateCellError,
    ResultStore,
    cell_id,
    host_metadata,
    latest_run,
    list_runs,
    make_record,
    new_run_id,
    utc_now,
)

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "DamagedRecordWarning",
    "DuplicateCellError",
    "ResultStore",
    "cell_id",
    "host_metadata",
    "latest_run",
    "list_runs",
    "make_record",
    "new_run_id",
    "utc_now",
]
