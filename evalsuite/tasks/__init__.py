"""What a protocol does with one image: build prompts, call the runner, keep per-item records.

Task kinds are found by a protocol's ``task`` field through :data:`TASKS`.
"""

from __future__ import annotations

from ..errors import InputError
from ..protocols import Protocol
from .ap import APTask
from .base import Task, TaskContext
from .miou import MIoUTask
from .noc import NocTask

TASKS: dict[str, type[Task]] = {"miou": MIoUTask, "ap": APTask, "noc": NocTask}


def task_class(protocol: Protocol) -> type[Task]:
    try:
        return TASKS[protocol.task]
    except KeyError:
        raise InputError(f"protocol {protocol.name}: unknown task {protocol.task!r}") from None


__all__ = ["TASKS", "APTask", "MIoUTask", "NocTask", "Task", "TaskContext", "task_class"]
