"""Input pipeline, sample generation and peak memory: gancli against the common way, same run.

``data``: a folder of 64x64 PNG files. Reference: pytorch/examples DCGAN's input pipeline
(torchvision ``ImageFolder`` decoding every file each epoch, Resize + CenterCrop + ToTensor +
Normalize, ``DataLoader`` with shuffling and 2 workers). gancli: the folder decoded once into
a uint8 tensor cache, then ``Batches`` (index, convert to float in [-1, 1]). Prints batches/s
of each and the one-off decode + cache time.

``sample``: images/s generating N samples from a 64x64 DCGAN generator: gancli's
``generate`` (seeded latents, batches of 256, no_grad) against a plain
``netG(torch.randn(64, 100, 1, 1))`` loop under no_grad.

``memory``: peak resident memory (ru_maxrss of each child process) of a short 64x64 DCGAN
training run: gancli fp32, gancli bf16, and the pytorch/examples loop of train_speed.py
(1024 images in memory each: float32 in the reference, gancli's uint8 cache).

    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py data --images 1024
    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py sample --n 512
    OMP_NUM_THREADS=1 python benchmarks/pipeline_speed.py memory --steps 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import interleaved_medians

sys.path.insert(0, str(Path(__file__).parent))


def write_pngs(folder: Path, n: int) -> None:
    from PIL import Image

    from gancli import load_config
    from gancli.data import load_dataset

    cfg = load_config("dcgan", ["data.source=shapes", "data.resolution=64", "data.channels=3",
                                f"data.size={n}"])
    x = load_dataset(cfg.data, 0, cfg.task).x
    (folder / "class0").mkdir(parents=True)  # ImageFolder wants one sub-folder per class
    for i, img in enumerate(x.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(folder / "class0" / f"{i:05d}.png")


def data(args) -> None:
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    from gancli import load_config
    from gancli.data import load_dataset
    from gancli.data.batches import Batches

    root = Path(tempfile.mkdtemp(prefix="gancli-data-"))
    write_pngs(root / "images", args.images)
    batch = args.batch
    batches_per_epoch = args.images // batch

    def reference() -> float:
        dataset = dset.ImageFolder(root=str(root / "images"), transform=transforms.Compose([
            transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                             num_workers=args.workers, drop_last=True)
        t0 = time.perf_counter()
        n = sum(1 for _ in loader)
        return n / (time.perf_counter() - t0)

    os.environ["GANCLI_CACHE"] = str(root / "cache")
    cfg = load_config("dcgan", [f"data.source={root / 'images'}", "data.resolution=64",
                                "data.channels=3"])
    t0 = time.perf_counter()
    first = load_dataset(cfg.data, 0, cfg.task)  # decodes and writes the cache
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_dataset(cfg.data, 0, cfg.task)  # reads the cache
    cached_s = time.perf_counter() - t0

    def gancli() -> float:
        b = Batches(first, batch, 0, torch.device("cpu"))
        t0 = time.perf_counter()
        for _ in range(batches_per_epoch):
            b.next()
        return batches_per_epoch / (time.perf_counter() - t0)

    med = interleaved_medians({"reference": reference, "gancli": gancli}, args.repeats)
    r, g = med["reference"], med["gancli"]
    print(f"{args.images} PNG files, 64x64 RGB, batch {batch} (median of {args.repeats} epochs):")
    print(f"  reference DataLoader ({args.workers} workers) {r:10.1f} batches/s")
    print(f"  gancli cached tensor               {g:10.1f} batches/s   {g / r:7.1f}x")
    print(f"  gancli one-off decode + cache write {decode_s:.2f} s; later loads from the cache "
          f"{cached_s:.3f} s")


def sample(args) -> None:
    from train_speed import RefG, weights_init

    from gancli import load_config
    from gancli.inference import generate, load_generator
    from gancli.reporting import Reporter
    from gancli.runs import create_run_dir, write_config
    from gancli.training.loop import train

    cfg = load_config("dcgan", ["data.source=shapes", "data.resolution=64", "data.channels=3",
                                "data.size=256", "train.steps=1", "train.batch_size=8",
                                "train.sample_every=0", "train.sample_n=4"])
    run = create_run_dir(tempfile.mkdtemp(prefix="gancli-sample-"), "bench")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    model = load_generator(str(run), "cpu")
    netG = RefG()
    netG.apply(weights_init)
    netG.eval()
    n = args.n

    def reference() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(n // 64):
                netG(torch.randn(64, 100, 1, 1))
        return n / (time.perf_counter() - t0)

    def ours() -> float:
        t0 = time.perf_counter()
        generate(model, list(range(n)))
        return n / (time.perf_counter() - t0)

    med = interleaved_medians({"reference": reference, "gancli": ours}, args.repeats)
    r, o = med["reference"], med["gancli"]
    print(f"{n} samples from a 64x64 DCGAN G (median of {args.repeats}):")
    print(f"  reference netG(randn) loop, batch 64  {r:8.1f} img/s")
    print(f"  gancli generate (seeded, batch 256)    {o:8.1f} img/s   {o / r:5.2f}x")


MEMORY_CHILD = """
import sys, time, tempfile, torch
sys.path.insert(0, {bench!r})
which, steps = sys.argv[1], int(sys.argv[2])
if which == "reference":
    import train_speed
    train_speed.reference_dcgan(64, steps, 1)  # 1024 images in memory as float32: 50 MiB
else:
    from train_speed import gancli_rate
    gancli_rate("dcgan", ["data.source=shapes", "data.resolution=64", "data.channels=3",
                          "data.size=1024", "train.batch_size=64", "train.precision=" + which],
                steps, 1)  # 1024 images in memory as uint8: 12.6 MiB
"""


def memory(args) -> None:
    code = MEMORY_CHILD.format(bench=str(Path(__file__).parent))
    print(f"peak resident memory of a 64x64 DCGAN run, batch 64, {args.steps} steps:")
    results = {}
    for which in ("reference", "fp32", "bf16"):
        proc = subprocess.Popen([sys.executable, "-c", code, which, str(args.steps)])
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, which
        results[which] = usage.ru_maxrss / 1024  # KiB -> MiB on Linux
        name = "reference (pytorch/examples)" if which == "reference" else f"gancli {which}"
        print(f"  {name:<30} {results[which]:8.0f} MiB   "
              f"{results[which] / results.get('reference', results[which]):5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data")
    d.add_argument("--images", type=int, default=1024)
    d.add_argument("--batch", type=int, default=64)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--repeats", type=int, default=3)
    s = sub.add_parser("sample")
    s.add_argument("--n", type=int, default=512)
    s.add_argument("--repeats", type=int, default=3)
    m = sub.add_parser("memory")
    m.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    {"data": data, "sample": sample, "memory": memory}[args.what](args)


if __name__ == "__main__":
    main()
