"""Reports of measured runs: the tidy table, the variant picker and run-to-run comparison.

- `edge.report.table`: `load_run`, `tidy` (one row per cell), `write_tidy` (Parquet + CSV);
- `edge.report.pick`: `pick` / `best_per_device`, ranked by ``static/picker.js`` (the same file
  the report page loads) under Node, `format_pick`, and `require_model` (a run of several
  models needs one chosen);
- `edge.report.html`: `write_report`, the static pages, with the run's self-checks
  (`edge.results.checks`) and the published reference points (`edge.reference_points`);
- `edge.report.compare`: `compare` two runs cell by cell (significant only beyond the runs'
  own spread) and `format_compare`.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

from edge.report.compare import compare, format_compare
from edge.report.pick import best_per_device, format_pick, pick
from edge.report.table import COLUMNS, load_run, tidy, write_tidy

__all__ = ["COLUMNS", "best_per_device", "compare", "format_compare", "format_pick", "load_run",
           "pick", "tidy", "write_tidy"]
