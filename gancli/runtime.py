"""Devices, seeding, precision, compilation and torch.distributed setup: the one place that
decides where tensors live and how they are computed."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

from gancli.errors import DeviceError, excerpt

ENV_DEVICE = "GANCLI_DEVICE"


def resolve_device(name: str | None) -> torch.device:
    """``auto`` (the default) picks CUDA, then MPS, then CPU; asking for a missing one fails."""
    name = (name or os.environ.get(ENV_DEVICE) or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {excerpt(name)}",
                          hint="use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was asked for but is not available here",
                              hint="use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"no CUDA device {device.index}: {torch.cuda.device_count()} found",
                              hint="use --device cuda:0")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                     and torch.backends.mps.is_available()):
        raise DeviceError("MPS was asked for but is not available here", hint="use --device cpu")
    return device


def seeded_rng(seed: int) -> torch.Generator:
    """A CPU random generator: the same seed gives the same numbers on every machine."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


# ---------------------------------------------------------------------------------------------
# Speed: TF32, mixed precision, compilation


def configure_backends(device: torch.device, tf32: bool = True) -> None:
    """TF32 matmuls and convolutions on CUDA (Ampere and later): fp32 storage and
    accumulation, 10-bit mantissa products; no effect on CPU, where matmuls stay IEEE fp32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast around each phase's forward pass, and the fp16 gradient scalers.

    fp16 gets one ``GradScaler`` per optimiser: D and G are two separate problems whose
    gradients live on different scales, and an overflow in one must not shrink the other's
    scale. bf16 has fp32's exponent range, so it needs no scaler. Backward passes and
    optimiser steps run outside autocast, on fp32 master weights. Gradient penalties guard
    their own precision (see ``gancli.regularizers``).
    """

    def __init__(self, name: str, device: torch.device):
        self.name, self.device = name, device
        self.dtype = PRECISIONS[name]
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if name == "fp16":
            self.scalers = {phase: torch.amp.GradScaler(device.type) for phase in ("D", "G")}

    @property
    def scaled(self) -> bool:
        """Gradients are scaled (and may be inf by design on a step the scaler skips)."""
        return bool(self.scalers)

    @contextmanager
    def autocast(self, phase: str) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    def backward(self, phase: str, loss: torch.Tensor) -> None:
        scaler = self.scalers.get(phase)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, phase: str, opt: torch.optim.Optimizer) -> None:
        scaler = self.scalers.get(phase)
        if scaler is None:
            opt.step()
            return
        scaler.step(opt)  # skipped when a gradient is inf/NaN
        scaler.update()

    def state(self) -> dict:
        """The scalers' state (scale, growth tracker) as JSON for a checkpoint."""
        return {phase: {k: (float(v) if isinstance(v, float) else v)
                        for k, v in s.state_dict().items()} for phase, s in self.scalers.items()}

    def load(self, state: dict | None) -> None:
        for phase, s in self.scalers.items():
            if state and phase in state:
                s.load_state_dict(state[phase])


def compile_problem(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run here, or None when a tiny function compiles."""
    try:
        fn = torch.compile(lambda x: x * 2 + 1, dynamic=False)
        fn(torch.ones(4, device=device))
    except Exception as e:  # no C++ compiler, no Triton, an unsupported platform...
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0][:160] if text else ''}".rstrip(": ")
    return None


def compile_children(module: torch.nn.Module) -> int:
    """Compile each direct child of ``module`` in place (``nn.Module.compile``).

    Children rather than the top module: objectives call ``forward_with_classes`` and
    composite models call sub-networks directly, and those paths never go through the
    top module's ``forward``. Parameter names and the state dict do not change.
    """
    n = 0
    for child in module.children():
        if any(True for _ in child.parameters()):
            child.compile(dynamic=False)
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# torch.distributed


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed(device: torch.device) -> torch.device:
    """Join the torchrun job (if any): NCCL on CUDA (one GPU per process, by local rank),
    gloo otherwise. Returns the device this process trains on."""
    import torch.distributed as tdist

    rank, world, local = distributed_env()
    if world <= 1 or (tdist.is_available() and tdist.is_initialized()):
        return device
    if not tdist.is_available():
        raise DeviceError("this PyTorch build has no torch.distributed",
                          hint="run a single process (plain `gancli train`)")
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        tdist.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    else:
        tdist.init_process_group("gloo", rank=rank, world_size=world)
    return device


def shutdown_distributed(finished: bool = True) -> None:
    """Leave the torchrun job. After a normal finish the ranks first meet at a barrier: rank 0
    may still be writing the last checkpoint, and a rank that tears down its gloo connections
    while a peer still holds them can abort ("terminate called without an active exception").
    After an error there is no barrier (the failed rank would never arrive)."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        if finished:
            tdist.barrier()
        tdist.destroy_process_group()
