"""Parity of ``gancli evaluate`` with torch-fidelity and pytorch-fid, offline.

No real Inception weights are needed: the FID Inception network is built with random weights
(BatchNorm statistics calibrated on a few noise images so activations stay in a sane range),
saved as a ``.pth`` state dict, and the *same file* is given to gancli (``--weights``) and to
torch-fidelity (``feature_extractor_weights_path``). Both score the same uint8 images:

- FID, KID, IS: gancli CLI vs ``torch_fidelity.calculate_metrics`` (relative difference);
- FID on the same features: gancli's ``frechet_distance`` vs pytorch-fid's
  ``calculate_frechet_distance`` (scipy ``sqrtm``).

    OMP_NUM_THREADS=1 python benchmarks/evaluate_parity.py --n 100
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import torch


def make_images(n: int, seed: int, shift: float) -> np.ndarray:
    """Smooth random colour blobs, uint8 NHWC 32x32: structured enough to give varied features."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 255 * (1 - shift) + 255 * shift * 0.5
    x = torch.nn.functional.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False)
    x = x + 24 * torch.randn(n, 3, 32, 32, generator=g)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def random_inception_weights(path: Path, seed: int = 0) -> None:
    from gancli.metrics.features import inception_net_class

    torch.manual_seed(seed)
    net = inception_net_class()(features_list=("2048",))
    for m in net.modules():  # random init, then BatchNorm statistics from 16 noise images
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8))
    torch.save(net.state_dict(), path)


class Uint8Images(torch.utils.data.Dataset):
    def __init__(self, nhwc: np.ndarray):
        self.x = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images per side")
    args = ap.parse_args()
    n = args.n
    tmp = Path(tempfile.mkdtemp(prefix="gancli-parity-"))
    os.environ["GANCLI_CACHE"] = str(tmp / "cache")
    weights = tmp / "random-inception.pth"
    random_inception_weights(weights)
    real, fake = make_images(n, 1, 0.0), make_images(n, 2, 0.4)
    for name, arr in (("real", real), ("fake", fake)):
        np.savez(tmp / f"{name}.npz", samples=arr)

    # gancli, through the CLI
    from gancli.cli import main as gancli_main

    buf = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(buf):
        try:
            gancli_main(["evaluate", "fid", "kid", "is", "--fake", str(tmp / "fake.npz"),
                         "--real", str(tmp / "real.npz"), "--weights", str(weights), "--device", "cpu",
                         "--batch-size", "50", "--json", "--no-cache"])
        except SystemExit as e:
            if e.code:
                sys.exit(f"gancli failed: {e.code}")
    t_gancli = time.perf_counter() - t0
    g = json.loads(buf.getvalue())
    gv = {k: v["mean"] for k, v in g["values"].items()}

    # torch-fidelity, same images, same weights file
    import torch_fidelity

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf = torch_fidelity.calculate_metrics(
            input1=Uint8Images(fake), input2=Uint8Images(real), fid=True, kid=True, isc=True,
            kid_subset_size=n, feature_extractor_weights_path=str(weights), cuda=False, batch_size=50,
            cache=False, verbose=False)
    t_tf = time.perf_counter() - t0

    rows = [("FID", gv["fid"], tf["frechet_inception_distance"]),
            ("KID", gv["kid"], tf["kernel_inception_distance_mean"]),
            ("IS", gv["is"], tf["inception_score_mean"]),
            ("IS std", gv["is_std"], tf["inception_score_std"])]
    # with one subset size = all N samples every subset holds the same samples, so the KID std
    # over subsets is only rounding noise (torch-fidelity's float32 kernels vs gancli's float64):
    # compared relative to the KID itself
    kid_std_diff = abs(gv["kid_std"] - tf["kernel_inception_distance_std"]) / abs(gv["kid"])

    # pytorch-fid's Fréchet distance on gancli's features
    from gancli.metrics import frechet
    from gancli.metrics.features import load_extractor

    ex = load_extractor("inception", torch.device("cpu"), str(weights))
    fr = np.concatenate([ex.run(torch.from_numpy(real[i:i + 50]).permute(0, 3, 1, 2))[0]
                         for i in range(0, n, 50)])
    ff = np.concatenate([ex.run(torch.from_numpy(fake[i:i + 50]).permute(0, 3, 1, 2))[0]
                         for i in range(0, n, 50)])
    s_r, s_f = frechet.feature_stats(fr), frechet.feature_stats(ff)
    ours = frechet.frechet_distance(*s_r, *s_f)
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        ref = float(calculate_frechet_distance(s_r[0], s_r[1], s_f[0], s_f[1]))

    print(f"{n} real + {n} fake 32x32 images, random-weight FID Inception ({weights.name}, "
          f"sha256 {g['features']['sha256'][:16]}...), CPU, torch {torch.__version__}, "
          f"torch-fidelity {torch_fidelity.__version__}")
    print(f"{'metric':10s} {'gancli':>22s} {'torch-fidelity':>22s} {'rel. diff':>10s}")
    for name, a, b in rows:
        print(f"{name:10s} {a:22.12g} {b:22.12g} {rel(a, b):10.2e}")
    print(f"{'KID std':10s} {gv['kid_std']:22.12g} {tf['kernel_inception_distance_std']:22.12g} "
          f"{kid_std_diff:10.2e}  (difference / KID: subsets of all {n} samples, std is rounding noise)")
    print(f"FID on the same features: gancli {ours:.12g}, pytorch-fid calculate_frechet_distance "
          f"{ref:.12g}, rel. diff {rel(ours, ref):.2e}")
    print(f"wall time: gancli {t_gancli:.1f} s, torch-fidelity {t_tf:.1f} s")
    worst = max([rel(a, b) for _, a, b in rows] + [kid_std_diff])
    ok = worst <= 1e-4 and rel(ours, ref) <= 1e-6
    print("PASS" if ok else "FAIL", f"(worst gancli/torch-fidelity rel. diff {worst:.2e})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
