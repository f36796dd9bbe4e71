"""Every job type the queue runs, in one place, and `payload_of`: a queue row's `spec` back as
its typed payload. Importing the modules that define the types registers them in
`ecgcore.jobs.payload.JOB_TYPES`; listing them here (not importing them by name at run time)
keeps the import graph visible: the types import the queue, the queue does not import them.
"""

from __future__ import annotations

from typing import Any

from ecgcore.download.download_job import DownloadJob
from ecgcore.errors import EcgcoreError
from ecgcore.jobs.payload import JOB_TYPES, TYPE_KEY, JobPayload, RunJob

#: The job types, by the name stored with each payload.
KNOWN: tuple[type[JobPayload], ...] = (RunJob, DownloadJob)


def payload_of(data: dict[str, Any]) -> JobPayload:
    """The typed payload of a queue row's `spec` (old rows without a type are run jobs)."""
    name = data.get(TYPE_KEY, RunJob.job_type)
    if name not in JOB_TYPES:
        raise EcgcoreError(f"unknown job type {name!r}; known: {', '.join(sorted(JOB_TYPES))}")
    return JOB_TYPES[name].from_payload(data)
