"""Measurement results: append-only JSON Lines records per cell, run metadata, run listing."""

from edge.results.store import (
    SCHEMA_VERSION,
    STATUSES,
    DamagedRecordWarning,
    DuplicateCellError,
    ResultStore,
    cell_id,
    has_results,
    host_metadata,
    latest_run,
    list_runs,
    make_record,
    new_run_id,
    point_latest,
    update_latest,
    utc_now,
)

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "DamagedRecordWarning",
    "DuplicateCellError",
    "ResultStore",
    "cell_id",
    "has_results",
    "host_metadata",
    "latest_run",
    "list_runs",
    "make_record",
    "new_run_id",
    "point_latest",
    "update_latest",
    "utc_now",
]
