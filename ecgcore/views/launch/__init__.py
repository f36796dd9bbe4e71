"""From the Launch form to jobs in the queue, and the Jobs page's view of them.

    choices = LaunchChoices(target="target_challenge", source="source_ptbxl",
                            strategies=("scratch", "finetune"), fractions=(0.25, 1.0))
    problems = launch_problems(choices, datasets, classes)   # [] when launchable
    classes = class_plan(target_rs, "dataset_labels", source_rs, "shared")  # shared/target/source-only
    plan = plan_launch(choices, classes)      # runs, reused by hash, in queue, a time range + basis
    overlap = dataset_overlap(source_rs, target_rs)  # target records the source holds (leakage)
    job_ids = submit_launch(choices, datasets, classes, plan)
    # a registered foundation-model checkpoint as a source (the grid's checkpoint axis):
    LaunchChoices(..., archs=("net1d_small",), strategies=("scratch", "embedding_probe"),
                  checkpoints=("demo_net1d",))
    card(record, target)       # its input contract, licence (non-commercial marked), SHA-256, leakage
    model_speed(arch, n_leads, n_samples)   # measured forward / training samples/s, cached
    rows = [job_row(job, time.time()) for job in ecgcore.jobs.list_jobs()]   # the Jobs page
    retry_job(job_id), job_log(job)

The form's choices become the same experiment config an `experiments/*.toml` file holds
(`experiment_config`), expanded by `ecgcore.experiments.run_plan.expand` and queued by
`ecgcore.jobs.submit_specs`, so the app and `python -m ecgcore submit` agree on what a
grid is. Nothing here imports Streamlit.
"""

from ecgcore.views.launch.actions import job_log, retry_job
from ecgcore.views.launch.checkpoint_sources import CheckpointCard, card
from ecgcore.views.launch.choices import (
    EXPERIMENT_TASKS,
    LaunchChoices,
    LaunchError,
    choice_problems,
    experiment_config,
    registered_checkpoints,
)
from ecgcore.views.launch.estimate import (
    Throughput,
    format_seconds,
    job_overhead,
    measure_throughput,
    run_range,
    run_seconds,
    store_throughput,
)
from ecgcore.views.launch.job_rows import (
    JOB_COLUMNS,
    best_val_auc,
    fraction_done,
    job_choice,
    job_row,
    job_state,
    jobs_table,
    queue_order,
    time_left,
)
from ecgcore.views.launch.measured_speed import (
    ModelSpeed,
    model_speed,
    speed_throughput,
)
from ecgcore.views.launch.preview import (
    LaunchPlan,
    PlannedRun,
    best_throughput,
    launch_problems,
    plan_launch,
    submit_launch,
)
from ecgcore.views.launch.record_overlap import (
    DatasetOverlap,
    dataset_overlap,
    records_to_fingerprint,
)
from ecgcore.views.launch.shared_classes import (
    ClassPlan,
    TaskClasses,
    class_plan,
    task_classes,
)

__all__ = [
    "EXPERIMENT_TASKS",
    "JOB_COLUMNS",
    "CheckpointCard",
    "ClassPlan",
    "DatasetOverlap",
    "LaunchChoices",
    "LaunchError",
    "LaunchPlan",
    "ModelSpeed",
    "PlannedRun",
    "TaskClasses",
    "Throughput",
    "best_throughput",
    "best_val_auc",
    "card",
    "choice_problems",
    "class_plan",
    "dataset_overlap",
    "experiment_config",
    "format_seconds",
    "fraction_done",
    "job_choice",
    "job_log",
    "job_overhead",
    "job_row",
    "job_state",
    "jobs_table",
    "launch_problems",
    "measure_throughput",
    "model_speed",
    "plan_launch",
    "queue_order",
    "records_to_fingerprint",
    "registered_checkpoints",
    "retry_job",
    "run_range",
    "run_seconds",
    "speed_throughput",
    "store_throughput",
    "submit_launch",
    "task_classes",
    "time_left",
]
