"""Everything a run needs to continue exactly, as flat tensors plus JSON metadata."""

from __future__ import annotations

from typing import Any

import torch

Tensor = torch.Tensor


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(module: torch.nn.Module, tensors: dict[str, Tensor], prefix: str) -> None:
    p = prefix + "."
    module.load_state_dict({k[len(p):]: v for k, v in tensors.items() if k.startswith(p)})


def optimizer_state(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimiser's state dict into tensors and a JSON-able remainder."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict,
                   prefix: str) -> None:
    state: dict[int, dict[str, Any]] = {}
    p = prefix + "."
    for name, value in tensors.items():
        if name.startswith(p):
            pid, key = name[len(p):].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    groups = [dict(g) for g in meta["param_groups"]]
    for g, live in zip(groups, opt.param_groups):
        if isinstance(g.get("betas"), list):  # JSON turned tuples into lists
            g["betas"] = tuple(g["betas"])
        for key, value in live.items():  # a setting the file lacks keeps the config's value
            if key != "params":
                g.setdefault(key, value)
    opt.load_state_dict({"state": state, "param_groups": groups})
