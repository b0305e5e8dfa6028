"""What the forkserver imports once, before it forks each step process (STEP_EXECUTOR in
definitions.py): the code location, and what a step would otherwise import on its own. Reconstructing
the job imports `dagster._utils.test` and the SQL storages (~0.45 s of CPU), and opening the instance
loads alembic's revision scripts (~0.3 s more the first time); paid here once, not in every step."""

import tempfile

import dagster as dg
import dagster._utils.test  # noqa: F401  (imported by job reconstruction in every step)
from dagster._core.instance.ref import InstanceRef

import corpus_platform.definitions  # noqa: F401  (the code location and everything it imports)

with tempfile.TemporaryDirectory() as _home:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(_home)):  # SQLite storages, alembic
        pass
