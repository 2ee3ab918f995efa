"""The suites: each turns a cell (suite x attention x params x seed) into metric records."""

# Importing each suite module registers it.
from harness.suites import accuracy as _accuracy  # noqa: F401
from harness.suites import bias as _bias  # noqa: F401
from harness.suites import memory as _memory  # noqa: F401
from harness.suites import throughput as _throughput  # noqa: F401
from harness.suites.base import (
    AttentionSpec,
    DataOptions,
    RunContext,
    Suite,
    SuiteParams,
    get_suite,
    list_suites,
    register_suite,
)

__all__ = [
    "AttentionSpec",
    "DataOptions",
    "RunContext",
    "Suite",
    "SuiteParams",
    "get_suite",
    "list_suites",
    "register_suite",
]
