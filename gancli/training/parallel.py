"""Data-parallel training over torch.distributed, without DistributedDataParallel.

Every process (rank) holds a full copy of G and D and trains on its own shard of each
global batch. Instead of DDP's forward hooks, the loop calls ``average_gradients`` after
each backward pass and before the optimiser step: one bucketed all-reduce (mean) of the
gradients of the networks that phase updates. That is correct for any objective, however
many times it calls G and D per backward (gradient penalties, CycleGAN's two generators,
cached fakes, sub-networks called directly), which DDP's one-forward-one-backward design
does not support. With identical starting weights (broadcast from rank 0), identical
averaged gradients and deterministic optimisers, the weights stay identical on every rank;
``check_same`` verifies it at every checkpoint.

What stays per rank, by design: the random generator for latents and augmentations
(seeded per rank, so ranks draw different fakes), the data shard, the image pool (each
rank pools its own fakes). Those are gathered into rank 0's checkpoint under ``rankN.``
so a resumed job continues exactly. Buffers (batch-norm running statistics) follow rank 0,
broadcast once per step, as DDP does; spectral-norm vectors are a deterministic function
of identical weights and stay identical anyway. ``train.sync_bn`` (CUDA) swaps batch norm
for SyncBatchNorm so batch statistics are computed over the global batch.

A world of one process makes every method here a no-op.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import torch
import torch.distributed as tdist

from gancli.errors import GancliError

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size
RANK_SEED_STRIDE = 1_000_003  # rank r's noise generator: seed + 1 + r * stride


class Dist:
    """This process's place in the job; ``Dist()`` is a single process."""

    def __init__(self, rank: int = 0, world: int = 1, device: torch.device | None = None):
        self.rank, self.world = rank, world
        self.device = device or torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def __bool__(self) -> bool:  # true when there is more than one process
        return self.world > 1

    # -- weights ----------------------------------------------------------------------------

    @torch.no_grad()
    def broadcast_module(self, *modules: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank (the same initial weights)."""
        if self:
            _coalesced(lambda flat: tdist.broadcast(flat, 0),
                       [t for m in modules for t in (*m.parameters(), *m.buffers())])

    @torch.no_grad()
    def broadcast_buffers(self, *modules: torch.nn.Module) -> None:
        if self:
            _coalesced(lambda flat: tdist.broadcast(flat, 0),
                       [b for m in modules for b in m.buffers()])

    @torch.no_grad()
    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Mean of each gradient over the ranks, in buckets of about 25 MiB.

        Parameters without a gradient are skipped; every rank runs the same code on the same
        networks, so the set of gradients (and so the buckets) is the same on every rank.
        """
        if not self:
            return
        grads = [p.grad for p in params if p.grad is not None]
        _coalesced(lambda flat: tdist.all_reduce(flat.div_(self.world)), grads)

    def check_same(self, *modules: torch.nn.Module) -> None:
        """Raise if the weights differ between ranks (a fingerprint per rank, compared)."""
        if not self:
            return
        h = hashlib.sha256()
        for m in modules:
            for t in (*m.parameters(), *m.buffers()):
                h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        prints: list[Any] = [None] * self.world
        tdist.all_gather_object(prints, h.hexdigest())
        if len(set(prints)) > 1:
            raise GancliError(f"the weights differ between ranks ({len(set(prints))} versions)",
                              hint="a non-deterministic op or a rank-dependent branch; report it")

    # -- statistics and control -------------------------------------------------------------

    def average_stats(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean over ranks of each running sum (one all-reduce, at log time only)."""
        if not self or not sums:
            return sums
        keys = sorted(sums)
        flat = torch.stack([sums[k].detach().float().reshape(()) for k in keys])
        tdist.all_reduce(flat)
        return dict(zip(keys, (flat / self.world).unbind()))

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (e.g. a Ctrl-C seen by one process)."""
        if not self:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item())

    def max_ints(self, values: list[int]) -> list[int]:
        """The element-wise maximum over ranks of a few integers (one all-reduce): e.g. the
        number of a stop signal seen by any rank, and whether any rank's clock says a
        checkpoint is due, so that every rank acts on the same step."""
        if not self:
            return list(values)
        t = torch.tensor(values, dtype=torch.int64, device=self.device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return [int(v) for v in t.tolist()]

    def broadcast_object(self, obj: Any) -> Any:
        if not self:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, 0)
        return box[0]

    # -- per-rank state in rank 0's checkpoint ----------------------------------------------

    def gather_rank_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rank 0 gets every other rank's ``tensors`` as ``rankN.key``; others get {}."""
        if not self:
            return {}
        local = {k: v.detach().cpu() for k, v in tensors.items()}
        everyone: list[Any] = [None] * self.world if self.main else None  # type: ignore[assignment]
        tdist.gather_object(local, everyone, dst=0)
        if not self.main:
            return {}
        return {f"rank{r}.{k}": v for r in range(1, self.world) for k, v in everyone[r].items()}

    def rank_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """This rank's own entries of a checkpoint (None when it has none for this rank)."""
        if self.rank == 0:
            return tensors
        from gancli.checkpoints import section

        return section(tensors, f"rank{self.rank}") or None


def current(device: torch.device | None = None) -> Dist:
    """The job this process belongs to (set up by ``runtime.init_distributed``)."""
    if tdist.is_available() and tdist.is_initialized():
        return Dist(tdist.get_rank(), tdist.get_world_size(), device)
    return Dist(device=device)


def _coalesced(op, tensors: list[torch.Tensor]) -> None:
    """Run a collective ``op`` on flat buckets of ``tensors`` (grouped by dtype), in place."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group + [None]:  # type: ignore[list-item]
            if t is not None:
                bucket.append(t)
                size += t.numel() * t.element_size()
            if bucket and (t is None or size >= BUCKET_BYTES):
                flat = torch.cat([b.reshape(-1) for b in bucket])
                op(flat)
                offset = 0
                for b in bucket:
                    b.copy_(flat[offset:offset + b.numel()].view_as(b))
                    offset += b.numel()
                bucket, size = [], 0


def sync_batchnorm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Batch norm over the global batch (SyncBatchNorm); PyTorch implements it on CUDA only."""
    from gancli.errors import ConfigError

    if device.type != "cuda":
        raise ConfigError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only)",
                          hint="set train.sync_bn=false: buffers then follow rank 0, as with DDP")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
