"""Several processes (``torchrun``), one result: sharding by image id and synchronisation.

Images are split by position in the list of images still to do (``todo[rank::world]``),
so no image is ever evaluated twice and no padding duplicates exist (the classic bug of
distributed samplers). Records travel through the run folder, which must be visible to
all processes (a shared filesystem on several nodes); process 0 merges them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import EvalsuiteError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owned: bool = False  # this context created the process group (and so destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def shard(self, items: list) -> list:
        """This process's share: every world_size-th item, starting at its rank."""
        return items[self.rank :: self.world_size]

    def broadcast_error(self, error: BaseException | None) -> None:
        """Raise on every process if any process failed at a synchronised step (no one hangs)."""
        if not self.active:
            if error is not None:
                raise error
            return
        flags = [None] * self.world_size
        dist.all_gather_object(flags, None if error is None else str(error))
        failed = [f for f in flags if f is not None]
        if error is not None:
            raise error
        if failed:
            raise EvalsuiteError(f"another process failed: {failed[0]}")


def init_from_env(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    if use_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    owned = not dist.is_initialized()
    if owned:  # a caller running several evaluations (evalsuite reproduce) may hold the group already
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local_rank, owned), device


def shutdown(ctx: DistContext) -> None:
    if ctx.active and ctx.owned and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
