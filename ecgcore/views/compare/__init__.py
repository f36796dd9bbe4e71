"""Comparing runs: the runs table, filters, per-run data of a selection, aggregations
(mean ± std over seeds, data efficiency, convergence), two runs head to head, ROC curves,
and the plotly figures of the Compare page. Pure functions over the run store; every file
read is cached on the file's stamp (`cache`), so a warm table of 500 runs costs stats only.

```python
from ecgcore.views.compare import runs_table, RunFilters, apply_filters, per_class_auc, data_efficiency
table = apply_filters(runs_table(store), RunFilters(strategies=("finetune", "scratch")))
curve = data_efficiency(table)             # macro AUC vs fraction, one line per strategy
```

Statistics: `stats` (CI of a seed mean, Holm / Benjamini-Hochberg, p at the bootstrap floor),
`seeded` (two-level bootstrap over seeds and test records), `grid` (each strategy against
scratch per fraction, Holm over the grid), `efficiency` (label efficiency), `answer` (the
answer panel's sentences with their run ids).
"""

from ecgcore.views.compare.aggregate import (
    CONVERGENCE_COLUMNS,
    GROUP_KEYS,
    SUMMARY_COLUMNS,
    convergence,
    data_efficiency,
    finished,
    seed_summary,
)
from ecgcore.views.compare.answer import Sentence, answer
from ecgcore.views.compare.stamp_cache import clear_caches, file_stamp
from ecgcore.views.compare.calibration_view import calibration_table, reliability
from ecgcore.views.compare.efficiency import LabelEfficiency, crossing_fraction, label_efficiency
from ecgcore.views.compare.compare_figures import (
    auc_heatmap,
    data_efficiency_figure,
    head_to_head_figure,
    learning_curves_figure,
    macro_auc_figure,
    per_class_auc_figure,
    reliability_figure,
    roc_figure,
)
from ecgcore.views.compare.load import histories, per_class_auc, predictions, run_roc_curves
from ecgcore.views.compare.grid import (
    COMPARISON_COLUMNS,
    DefaultPair,
    GridStatistics,
    default_pair,
    grid_statistics,
    run_ids_needed,
    setting_arm,
)
from ecgcore.views.compare.head_to_head import HeadToHead, RocCurve, head_to_head, head_to_head_arms, roc_curves
from ecgcore.views.compare.seeded import Arm, SharedDraws, arms_of, compare_arms, shared_draws
from ecgcore.views.compare.stats import (
    benjamini_hochberg,
    format_adjusted,
    format_p,
    holm,
    holm_bounded,
    seed_mean_ci,
)
from ecgcore.views.compare.table import (
    FILTER_COLUMNS,
    NO_SOURCE,
    TABLE_COLUMNS,
    RunFilters,
    apply_filters,
    filter_options,
    full_labels,
    read_results,
    run_label,
    run_labels,
    runs_for_display,
    runs_table,
)

__all__ = [
    "CONVERGENCE_COLUMNS", "FILTER_COLUMNS", "GROUP_KEYS", "NO_SOURCE", "SUMMARY_COLUMNS", "TABLE_COLUMNS",
    "HeadToHead", "RocCurve", "RunFilters", "apply_filters", "auc_heatmap", "clear_caches", "convergence",
    "data_efficiency", "data_efficiency_figure", "file_stamp", "filter_options", "finished", "full_labels", "head_to_head",
    "head_to_head_figure", "histories", "learning_curves_figure", "macro_auc_figure", "per_class_auc",
    "per_class_auc_figure", "predictions", "read_results", "roc_curves", "roc_figure", "run_label",
    "run_labels", "run_roc_curves", "runs_for_display", "runs_table", "seed_summary",
    "calibration_table", "reliability", "reliability_figure",
    "COMPARISON_COLUMNS", "DefaultPair", "GridStatistics", "default_pair", "LabelEfficiency", "Sentence", "answer",
    "crossing_fraction",
    "grid_statistics", "label_efficiency", "run_ids_needed", "setting_arm",
    "Arm", "SharedDraws", "arms_of", "compare_arms", "head_to_head_arms", "shared_draws",
    "benjamini_hochberg", "format_adjusted", "format_p", "holm", "holm_bounded", "seed_mean_ci",
]
