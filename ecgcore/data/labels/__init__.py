"""One label space: SNOMED CT codes for every dataset, named tasks on top.

- `harmonise` maps a record's raw labels to SNOMED CT (readers call it per record);
- `concept`, `abbreviation`, `class_name`, `canonical`, `class_key`: the concept
  table of the Challenge 2020/2021 and its equivalences (CRBBB|RBBB, CLBBB|LBBB,
  PAC|SVPB, PVC|VPB);
- `Task`, `get_task`, `list_tasks`, `task_targets`: named multi-label tasks;
- `overlap_table`, `shared_task`: what two datasets have in common;
- `resolve(name, recordset)`: the Task any task name an experiment may use means on a
  dataset (`check_task_name` checks a name, `with_derived_labels` completes the labels
  a task derives); "unlabelled" (`unlabelled_task`) is every readable record with no
  class, for self-supervised pretraining, the records whose labels are unknown included.
"""

from ecgcore.data.labels.label_overlap import class_counts, overlap_table, shared_task
from ecgcore.data.labels.maps import (
    CODE15_TO_SNOMED,
    HARMONISERS,
    LUDB_TO_SNOMED,
    PTB_REASON_TO_SNOMED,
    SCP_TO_SNOMED,
    harmonise,
)
from ecgcore.data.labels.mimic_statements import MIMIC_STATEMENT_TO_SNOMED
from ecgcore.data.labels.named_tasks import (
    Task,
    ptbxl_task,
    read_scp_statements,
    snomed_task,
    task_targets,
    unlabelled_task,
)
from ecgcore.data.labels.registry import TASKS, get_task, list_tasks
from ecgcore.data.labels.snomed import (
    CONCEPTS,
    EQUIVALENT,
    Concept,
    abbreviation,
    canonical,
    class_key,
    class_name,
    concept,
    concept_name,
    equivalents,
)
from ecgcore.data.labels.task_names import (
    UNLABELLED,
    check_task_name,
    resolve,
    with_derived_labels,
)

__all__ = [
    "CODE15_TO_SNOMED", "CONCEPTS", "EQUIVALENT", "HARMONISERS", "LUDB_TO_SNOMED",
    "MIMIC_STATEMENT_TO_SNOMED", "PTB_REASON_TO_SNOMED", "SCP_TO_SNOMED", "TASKS", "UNLABELLED",
    "Concept", "Task", "abbreviation", "canonical", "check_task_name", "class_counts",
    "class_key", "class_name", "concept", "concept_name", "equivalents", "get_task",
    "harmonise", "list_tasks", "overlap_table", "ptbxl_task", "read_scp_statements", "resolve",
    "shared_task", "snomed_task", "task_targets", "unlabelled_task", "with_derived_labels"
]
