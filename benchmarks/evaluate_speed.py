"""Speed of ``gancli evaluate`` against torch-fidelity in the same run, on the same CPU.

1. Scoring N fake images against cached real statistics (FID): gancli (second run, real side
   from its cache) vs torch-fidelity (``input2_cache_name``: real statistics cached by a first
   call). Both run the same Inception forward, so the ratio is mostly overhead; with random
   weights (no download), see evaluate_parity.py for how they are made.
2. The Fréchet-distance step alone at 2048 dimensions on realistic statistics: gancli's
   Cholesky + eigvalsh route (eigh when singular) vs ``scipy.linalg.sqrtm`` (pytorch-fid, TTUR,
   clean-fid) and vs
   torch-fidelity's ``eigvals`` route.

    OMP_NUM_THREADS=1 python benchmarks/evaluate_speed.py --n 100 --n-real 50 --repeats 2
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_parity import Uint8Images, make_images, random_inception_weights  # noqa: E402


def frechet_step(repeats: int) -> None:
    from scipy import linalg
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    from gancli.metrics.frechet import feature_stats, frechet_distance

    rng = np.random.default_rng(0)
    d, n = 2048, 5000
    w = rng.normal(size=(d, d)) / np.sqrt(d)
    (m1, s1) = feature_stats(np.maximum(rng.normal(size=(n, d)) @ w, 0))
    (m2, s2) = feature_stats(np.maximum(rng.normal(0.2, 1.0, size=(n, d)) @ w, 0))

    def sqrtm_route():  # pytorch-fid's calculate_frechet_distance, without its eps retry
        diff = m1 - m2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            covmean = linalg.sqrtm(s1 @ s2)
        return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)

    def tf_route():
        return fid_statistics_to_metric({"mu": m1, "sigma": s1}, {"mu": m2, "sigma": s2}, False)[
            "frechet_inception_distance"]

    times, values = {}, {}
    for name, fn in (("gancli", lambda: frechet_distance(m1, s1, m2, s2)),
                     ("scipy sqrtm", sqrtm_route), ("torch-fidelity eigvals", tf_route)):
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            values[name] = fn()
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    print(f"Fréchet distance alone, d = 2048 (stats of 5000 ReLU features), best of {repeats}:")
    for name in times:
        print(f"  {name:24s} {times[name]:7.2f} s   FID {values[name]:.10f}")
    print(f"  ratio gancli / sqrtm = {times['gancli'] / times['scipy sqrtm']:.3f}; "
          f"gancli / torch-fidelity eigvals = {times['gancli'] / times['torch-fidelity eigvals']:.3f}")


def scoring(n: int, n_real: int, batch: int, repeats: int) -> None:
    import torch_fidelity

    from gancli.cli import main as gancli_main

    tmp = Path(tempfile.mkdtemp(prefix="gancli-speed-"))
    os.environ["GANCLI_CACHE"] = str(tmp / "cache")
    weights = tmp / "random-inception.pth"
    random_inception_weights(weights)
    real, fake = make_images(n_real, 1, 0.0), make_images(n, 2, 0.4)
    np.savez(tmp / "real.npz", samples=real)
    np.savez(tmp / "fake.npz", samples=fake)

    def gancli_run():
        with redirect_stdout(io.StringIO()):
            try:
                gancli_main(["evaluate", "fid", "--fake", str(tmp / "fake.npz"), "--real",
                             str(tmp / "real.npz"), "--weights", str(weights), "--device", "cpu",
                             "--batch-size", str(batch), "--json", "--quiet"])
            except SystemExit as e:
                assert not e.code, e.code

    def tf_run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch_fidelity.calculate_metrics(
                input1=Uint8Images(fake), input2=Uint8Images(real), fid=True, cuda=False,
                batch_size=batch, feature_extractor_weights_path=str(weights), cache=True,
                cache_root=str(tmp / "tf-cache"), input2_cache_name="speed-real", verbose=False)

    gancli_run()  # fills gancli's real-statistics cache
    tf_run()  # fills torch-fidelity's
    t_g = t_t = float("inf")
    for _ in range(repeats):  # alternate, keep the best of each: the CPU is shared
        t0 = time.perf_counter()
        gancli_run()
        t_g = min(t_g, time.perf_counter() - t0)
        t0 = time.perf_counter()
        tf_run()
        t_t = min(t_t, time.perf_counter() - t0)
    print(f"Scoring {n} fake 32x32 images against cached real statistics ({n_real} real), FID, "
          f"CPU, {torch.get_num_threads()} thread(s), batch {batch}, best of {repeats}:")
    print(f"  gancli          {t_g:8.2f} s  ({n / t_g:.2f} img/s)")
    print(f"  torch-fidelity  {t_t:8.2f} s  ({n / t_t:.2f} img/s)")
    print(f"  ratio gancli / torch-fidelity = {t_g / t_t:.3f}; at these rates 10,000 images take "
          f"{10000 / (n / t_g) / 60:.1f} min (gancli) and {10000 / (n / t_t) / 60:.1f} min (torch-fidelity)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="fake images to score (10,000 in the issue)")
    ap.add_argument("--n-real", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1, help="repeats of each timing (best is kept)")
    ap.add_argument("--skip-scoring", action="store_true")
    ap.add_argument("--skip-frechet", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    if not args.skip_frechet:
        frechet_step(args.repeats)
    if not args.skip_scoring:
        scoring(args.n, args.n_real, args.batch_size, args.repeats)


if __name__ == "__main__":
    main()
