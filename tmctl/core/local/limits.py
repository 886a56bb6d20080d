"""Limits per target. The template's defaults are AWS's (production-sane: no
reserved concurrency on the front door, HTTP API stage throttling in front of
it); on the embedded emulator tmctl derives them from the machine.

Why the emulator needs its own numbers: MiniStack runs each concurrently
executing Lambda invocation in its own worker process (~50 MB: an interpreter
with boto3 and Powertools) and, at a function's reserved concurrency, it
throttles (429) rather than queueing. So on a laptop:

- the front door (Task API) needs one slot per client request in flight, or a
  burst is refused: it gets enough for 32 concurrent clients on any machine, 8
  per core beyond that, capped so its workers never take more than an eighth
  of the RAM;
- the processing side is bounded by the cores, not by the burst: the queue
  absorbs the burst and the workflow steps drain it with two workers per core
  (more only add memory, and workers competing with the emulator for the same
  cores slow it down);
- Step Functions' retry waits are scaled down (`SFN_WAIT_SCALE`): a step
  throttled at its limit retries in tens of milliseconds instead of seconds,
  as MiniStack has no retry jitter and synchronised waits leave the cores idle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tmctl.core import settings

WORKER_MIB = 55  # one MiniStack Lambda worker under load (RSS, measured: benchmarks/README.md)
FRONT_DOOR_MIN = 32  # concurrent plain clients a local stack takes without a 429
FRONT_DOOR_PER_CPU = 8
FRONT_DOOR_MAX = 128
FRONT_DOOR_RAM_SHARE = 8  # the front door's workers use at most 1/8 of the RAM
STEPS_PER_CPU = 2
LOCAL_SFN_WAIT_SCALE = settings.SFN_WAIT_SCALE.default


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mib: int

    @classmethod
    def this(cls) -> Machine:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        except (AttributeError, ValueError, OSError):
            memory = 8 * 1024  # unknown (e.g. Windows): assume a small laptop
        return cls(max(1, cpus), max(1, memory))


def local_limits(machine: Machine) -> dict[str, str]:
    """Stack parameters for a stack on the embedded emulator on `machine`."""
    by_ram = machine.memory_mib // FRONT_DOOR_RAM_SHARE // WORKER_MIB
    api = min(FRONT_DOOR_MAX, max(FRONT_DOOR_MIN, FRONT_DOOR_PER_CPU * machine.cpus), max(1, by_ram))
    return {"ApiConcurrency": str(api), "StepsConcurrency": str(STEPS_PER_CPU * machine.cpus)}


def local_engine_env() -> dict[str, str]:
    """Environment of the embedded emulator that tmctl starts. Its CloudTrail
    records every call (a ring of the last 10,000), so `tmctl iam report` can set
    the calls each role made beside what it is granted; TMCTL_RECORD_CALLS=0
    turns that off."""
    return {"SFN_WAIT_SCALE": settings.SFN_WAIT_SCALE.get(),
            "CLOUDTRAIL_RECORDING": "0" if settings.RECORD_CALLS.get() == "0" else "1"}
