"""The code location the operations tests run under `dagster-daemon` and the `dagster` CLI: the
platform's own definitions (`make_definitions`: its jobs, checks and resources as shipped), with the
live sources pointed at the local fakes named by CORPUS_TEST_* (secrets through EnvVar, as in
production) and the multiprocess executor set explicitly (CORPUS_TEST_START_METHOD: `spawn`, Dagster's
default, or `forkserver`, whose preloaded server forks each step instead of importing the code location
in a fresh interpreter)."""

import os

import dagster as dg

from corpus_platform.definitions import make_definitions
from corpus_platform_tests.operations._harness import live_resources_from_env

_start = os.environ.get("CORPUS_TEST_START_METHOD", "forkserver")
_executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["corpus_platform_tests.operations._location"]}}}
    if _start == "forkserver" else {"start_method": {"spawn": {}}})

defs = dg.Definitions.merge(make_definitions(sources=live_resources_from_env()), dg.Definitions(executor=_executor))
