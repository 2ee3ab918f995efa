"""A plugin suite that measures each cell in ``processes`` replicas and records which worker
process ran each one (tests of the executors' replica processes)."""

from __future__ import annotations

import os
import time

from harness.records import Cell, Record
from harness.suites import base
from harness.suites.base import MetricSpec, Suite, SuiteParams, register_suite

NAME = "replica_pids"


class ReplicaParams(SuiteParams):
    sizes: tuple[int, ...] = (1, 2)
    processes: int = 2
    replica: int = -1  # set per replica by replica_params
    #: (size, replica) that raises / sleeps past timeout_s / kills its own process
    fail: tuple[int, int] | None = None
    hang: tuple[int, int] | None = None
    crash: tuple[int, int] | None = None
    timeout_s: float = 60.0


@register_suite
class ReplicaSuite(Suite):
    name = NAME
    description = "which worker process ran each replica of a cell"
    Params = ReplicaParams
    resource = "timing"
    metrics = (MetricSpec("worker_pids", "distinct worker pids", "count", None, headline=True),)

    def plan(self, params: ReplicaParams, attentions: list[base.AttentionSpec],
             seeds: list[int]) -> list[Cell]:
        return [attentions[0].cell(self.name, {"size": n}) for n in params.sizes]

    def replicas(self, params: ReplicaParams) -> int:
        return params.processes

    def replica_params(self, params: ReplicaParams, i: int, k: int) -> ReplicaParams:
        return params.model_copy(update={"replica": i})

    def merge_replicas(self, runs: list[list[Record]]) -> list[Record]:
        pids = [pid for records in runs for pid in (records[0].load or {})["pids"]]
        first = runs[0][0]
        first.value, first.n, first.load = float(len(set(pids))), len(pids), {"pids": pids}
        return [first]

    def run_cell(self, cell: Cell, params: ReplicaParams, ctx: base.RunContext) -> list[Record]:
        here = (cell.params["size"], params.replica)
        if here == params.fail:
            raise RuntimeError(f"planted failure in replica {params.replica}")
        if here == params.hang:
            time.sleep(30)
        if here == params.crash:
            os._exit(3)
        return [self.record(cell, "worker_pids", value=1.0, n=1, load={"pids": [os.getpid()]})]
