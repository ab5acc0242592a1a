"""Devices and seeding: the one place that decides where tensors live."""

from __future__ import annotations

import os

import torch

from gancli.errors import DeviceError

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
        raise DeviceError(f"unknown device '{name}'",
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


def generator(seed: int) -> torch.Generator:
    """A CPU random generator: the same seed gives the same numbers on every machine."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
