"""Run by tests/test_data_store.py under torchrun (2 processes, gloo): read 7 batches of 3 per
rank from a store and record which samples this rank read, and whether each batch equals the
same batch taken from an in-memory copy.

    torchrun --nproc_per_node=2 tests/store_dist_worker.py STORE OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from gancli.config import DataConfig
from gancli.data import load_dataset
from gancli.data.base import Dataset
from gancli.data.batches import Batches
from gancli.runtime import init_distributed, shutdown_distributed
from gancli.training.parallel import current


def main() -> None:
    store, out = sys.argv[1:]
    device = init_distributed(torch.device("cpu"))
    dist = current(device)
    data = load_dataset(DataConfig(source=store, resolution=8))
    read: list[list[int]] = []
    gather = data.x.gather

    def recording(idx, out=None):
        read.append(torch.as_tensor(idx).tolist())
        return gather(idx, out)

    data.x.gather = recording
    ram = Dataset("ram", "images", gather(torch.arange(len(data))))
    a = Batches(data, 3, seed=5, device=device, flip=True, rank=dist.rank, world=dist.world)
    b = Batches(ram, 3, seed=5, device=device, flip=True, rank=dist.rank, world=dist.world)
    identical = all(torch.equal(a.next()[0], b.next()[0]) for _ in range(7))
    a.close()
    result = {"read": read[:7], "identical": identical}  # the 8th is the read-ahead
    (Path(out) / f"rank{dist.rank}.json").write_text(json.dumps(result))
    shutdown_distributed()


if __name__ == "__main__":
    main()
