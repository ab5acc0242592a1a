"""Peak RSS of loading a pix2pix paired folder and reading batches from it (issue 17).

Generates an aligned folder (``train/`` of ``A|B`` JPEGs, synthetic deterministic pixels), then in
a fresh process per case loads it with ``gancli.data.load_dataset`` (task ``translation``) and
gathers ``--batches`` batches through ``Batches``, reporting the process's peak RSS
(``ru_maxrss``) and the bytes of pixels the data holds. Run it against another checkout with
``PYTHONPATH=/that/checkout`` to compare loaders.

    python benchmarks/paired_rss.py --files 1000 --resolution 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_folder(root: Path, files: int, side: int) -> None:
    import numpy as np
    from PIL import Image

    (root / "train").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        rng = np.random.default_rng(i)
        small = rng.integers(0, 256, (side // 16, side // 8, 3), dtype=np.uint8)  # smooth-ish
        Image.fromarray(small).resize((2 * side, side), Image.BILINEAR).save(
            root / "train" / f"{i:06d}.jpg", quality=90)


def measure(folder: str, resolution: int, batches: int) -> dict:
    import torch

    from gancli.config import DataConfig
    from gancli.data import load_dataset
    from gancli.data.batches import Batches

    t0 = time.perf_counter()
    ds = load_dataset(DataConfig(source=folder, resolution=resolution), 0, "translation")
    loaded = time.perf_counter() - t0
    b = Batches(ds, 16, seed=0, device=torch.device("cpu"), flip=True)
    for _ in range(batches):
        b.next()
    return {"x": type(ds.x).__name__, "pairs": len(ds), "pixel_bytes": len(ds) * ds.x.shape[1:].numel(),
            "load_s": round(loaded, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.resolution, a.batches)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pairs"
        make_folder(folder, a.files, a.resolution)
        env = {**os.environ, "GANCLI_CACHE": str(Path(tmp) / "cache")}
        for run in ("first (prepares)", "second (cache hit)"):
            out = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--resolution",
                                  str(a.resolution), "--batches", str(a.batches)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            print(run, out.strip())


if __name__ == "__main__":
    main()
