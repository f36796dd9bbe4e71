"""One label space: SNOMED CT codes for every dataset, named tasks on top.

`harmonise` maps a record's raw labels to SNOMED CT (the readers call it for
every record); `snomed` holds the concept table and the Challenge's
equivalences; `tasks` builds named multi-label tasks and their targets.
"""

from ecgcore.data.labels.maps import harmonise

__all__ = ["harmonise"]
