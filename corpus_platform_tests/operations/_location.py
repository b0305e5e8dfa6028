"""The code location the operations tests run under `dagster-daemon` and the `dagster` CLI: the
platform's own definitions (`make_definitions`: its jobs, checks, resources and step executor as
shipped), with the live sources pointed at the local fakes named by CORPUS_TEST_* (secrets through
EnvVar, as in production)."""

from corpus_platform.definitions import make_definitions
from corpus_platform_tests.operations._harness import live_resources_from_env

defs = make_definitions(sources=live_resources_from_env())
