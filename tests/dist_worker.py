"""Run by tests/test_distributed.py under torchrun: train a tiny run in-process, then save
this rank's final weights to ``OUT/rank{r}.safetensors`` so the test can compare ranks.

    torchrun --nproc_per_node=2 tests/dist_worker.py OUT RUN_DIR PRESET key=value ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from gancli import load_config
from gancli.reporting import Reporter
from gancli.runs import write_config
from gancli.runtime import init_distributed, shutdown_distributed
from gancli.training.loop import train
from gancli.training.parallel import current


def main() -> None:
    out, run, preset, *sets = sys.argv[1:]
    device = init_distributed(torch.device("cpu"))
    dist = current(device)
    cfg = load_config(preset, sets)
    run_dir = Path(run)
    if dist.main:
        for sub in ("samples", "checkpoints"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg)
    dist.broadcast_object(None)  # the folder exists before anyone trains
    result = train(cfg, run_dir, device, Reporter())
    tensors = {f"G.{k}": v for k, v in result.G.state_dict().items()}
    tensors.update({f"D.{k}": v for k, v in result.D.state_dict().items()})
    save_file({k: v.detach().contiguous() for k, v in tensors.items()},
              str(Path(out) / f"rank{dist.rank}.safetensors"))
    shutdown_distributed()


if __name__ == "__main__":
    main()
