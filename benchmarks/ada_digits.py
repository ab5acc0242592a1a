"""ADA on little data: ``stylegan2`` on 200 digits with and without ``train.augment=ada``.

    python benchmarks/ada_digits.py --steps 2000 --ckpt-every 250 --ada-kimg 10 --augment none
    python benchmarks/ada_digits.py --steps 2000 --ckpt-every 250 --ada-kimg 10 --augment ada
    python benchmarks/ada_digits.py --score RUN --per-class 10 --every-ckpt   # a run resumed further

Writes 200 of the built-in digits (20 per class, a fixed draw) as 16 px PNGs into a folder,
trains the preset on them (the same seed and steps for every ``--augment`` given: ``none``,
``ada`` or both, comma-separated, so the two runs can also go in two calls) and, for every
kept checkpoint (``--ckpt-every``), reports:

  rt_train  E[sign D(x)] on the training digits, un-augmented: the ADA paper's overfitting
            heuristic (sec. 3); it goes to 1 when D has learnt the training set by heart
  rt_val    the same on the 1,597 digits D never saw; below 0 means D calls real digits fake
            (both in whole training batches, as minibatch stddev saw them: 192 and 1,568 images)
  gap       mean D logit on the training digits minus that on the held-out ones: D's
            memorisation of its 200 images (the ADA paper's fig. 1b, in one number)
  p         ADA's augmentation probability at that step (from metrics.jsonl)

and scores the last checkpoint's 1,000 samples (seeds 0..999, EMA G) with the shipped digits
classifier (``quality_digits.py``: share labelled with confidence > 0.9, classes present,
FD-digits to all 1,797 real digits) and by how much they copy the training digits
(``copying``: the share of samples nearer a training digit than any of as many held-out
ones, 0.5 for real held-out digits, and the median ratio of the two distances).

The paper's controller speed (p from 0 to 1 in 500k images) is for runs of tens of millions
of images; ``--ada-kimg`` sets the speed for a run of minutes (said in the output).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from quality_digits import score_images

from gancli import checkpoints, imaging, load_config
from gancli.config import from_dict
from gancli.data.digits import load_digits
from gancli.inference import generate, load_generator
from gancli.models import DataSpec, build_nets
from gancli.models.base import cluster_latent
from gancli.registry import OBJECTIVES
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def pick_subset(per_class: int = 20, pool: list[int] | None = None, seed: int = 0) -> list[int]:
    """Indices into ``load_digits(16)`` of a fixed draw of ``per_class`` digits per class
    (from ``pool`` if given, else from all 1,797)."""
    data = load_digits(16)
    pool = list(range(len(data.x))) if pool is None else pool
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    count, picked = {k: 0 for k in range(10)}, []
    for i in (pool[j] for j in perm.tolist()):
        k = int(data.y[i])
        if count[k] < per_class:
            count[k] += 1
            picked.append(i)
    return sorted(picked)


def write_subset(folder: Path, per_class: int = 20) -> list[int]:
    """Write the subset as ``folder/<class>/<index>.png`` (the digits' own uint8 pixels);
    returns the indices written."""
    data = load_digits(16)
    picked = pick_subset(per_class)
    for i in picked:
        (folder / str(int(data.y[i]))).mkdir(parents=True, exist_ok=True)
        imaging.save_image(imaging.to_pil(data.x[i]), folder / str(int(data.y[i])) / f"{i:04d}.png")
    return picked


def copying(x: torch.Tensor, x_train: torch.Tensor, x_near: torch.Tensor) -> dict:
    """How much images ``x`` (N, 1, 16, 16) in [-1, 1] copy the training digits: each image's
    nearest training digit (pixel L2) against its nearest among ``x_near``, held-out digits
    of the same size and classes as the training set. An image drawn from the digits'
    distribution is as close to either (closer_to_train ~0.5, nn_ratio ~1); a G that has
    memorised its training set gives closer_to_train -> 1 and nn_ratio < 1 (the nearest-
    neighbour test of memorisation, e.g. Webster et al. 2019, "Detecting Overfitting of Deep
    Generative Networks via Latent Recovery", in pixel space)."""
    flat = x.clamp(-1, 1).flatten(1)
    d_train = torch.cdist(flat, x_train.flatten(1)).min(1).values
    d_near = torch.cdist(flat, x_near.flatten(1)).min(1).values
    return {"closer_to_train": round(float((d_train < d_near).double().mean()), 3),
            "nn_ratio": round(float((d_train / d_near).median()), 3)}


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1], as the training data loader gives them."""
    return x.float() / 127.5 - 1.0


@torch.no_grad()
def d_logits(ckpt: Path, x: torch.Tensor) -> torch.Tensor:
    """The checkpoint's D logits (N',) on images ``x`` (N, C, H, W) in [-1, 1]."""
    c = checkpoints.load(ckpt)
    cfg = from_dict(c.meta["config"], ckpt.name)
    spec = DataSpec.from_dict(c.meta["data"])
    nets = build_nets(cfg.model, spec, OBJECTIVES.get(cfg.objective).conditioning)
    D = nets.D
    checkpoints.load_module(D, c.tensors, "D")
    D.eval()
    # a D trained on clusters of the data (model.z_clusters, the dcgan preset) is told each
    # real image's cluster, as in training: its nearest centre, from G's saved clusters
    clusters = cluster_latent(nets.G)
    if clusters is not None:
        checkpoints.load_module(nets.G, c.tensors, "G")
    b = cfg.train.batch_size  # minibatch-stddev groups as in training: whole batches only
    return torch.cat([D(x[i:i + b], None if clusters is None else clusters.assign(x[i:i + b]))
                      for i in range(0, len(x) - b + 1, b)]).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="stylegan2")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--augment", default="none,ada", help="none, ada, or both (comma list)")
    ap.add_argument("--ada-kimg", type=float, default=10.0)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--per-class", type=int, default=20, help="training digits per class (20: 200 "
                    "digits)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--score", default=None, help="score an existing run folder instead "
                    "(trained by this script, or resumed further with gancli train --resume; "
                    "give the same --per-class)")
    ap.add_argument("--every-ckpt", action="store_true", help="score every kept checkpoint's "
                    "samples, not only the last one's")
    args = ap.parse_args()
    digits = load_digits(16).x
    picked = pick_subset(args.per_class)
    held = sorted(set(range(len(digits))) - set(picked))
    x_train, x_val = to_model_range(digits[picked]), to_model_range(digits[held])
    near = pick_subset(args.per_class, held, seed=1)  # held-out, sized and balanced as x_train
    x_near = to_model_range(digits[near])
    others = sorted(set(held) - set(near))
    print(json.dumps({"real_held_out": copying(to_model_range(digits[others]), x_train, x_near),
                      "note": "copying of held-out real digits: the value of a G that does not "
                              "copy its training digits"}), flush=True)
    if args.score:
        print(json.dumps(report(Path(args.score), x_train, x_val, x_near, args.n,
                                args.every_ckpt)))
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="gancli-ada-"))
    folder = out / f"digits{10 * args.per_class}"
    write_subset(folder, args.per_class)
    base = [f"data.source={folder}", "data.resolution=16", "data.channels=1",
            f"train.steps={args.steps}", "train.sample_every=0",
            f"train.ckpt_every={args.ckpt_every}", "train.keep=1000",
            "train.ckpt_minutes=0", "train.log_every=10", *args.sets]
    for augment in args.augment.split(","):
        aug = "" if augment == "none" else augment
        sets = base + [f"train.augment={aug}", f"ada.kimg={args.ada_kimg}"]
        cfg = load_config(args.preset, sets)
        run = create_run_dir(out, f"{args.preset}-{augment}")
        write_config(run, cfg)
        t0 = time.process_time()
        result = train(cfg, run, torch.device("cpu"), Reporter())
        cpu = time.process_time() - t0
        row = {"preset": args.preset, "augment": augment, "images": len(picked),
               "steps": result.step, "cpu_minutes": round(cpu / 60, 2),
               **report(run, x_train, x_val, x_near, args.n, args.every_ckpt)}
        if aug:
            row["ada_kimg"] = args.ada_kimg
        print(json.dumps(row), flush=True)


def report(run: Path, x_train: torch.Tensor, x_val: torch.Tensor, x_near: torch.Tensor, n: int,
           every_ckpt: bool = False) -> dict:
    """D's overfitting at every kept checkpoint of ``run`` and the last one's samples scored
    (with ``every_ckpt``, every checkpoint's samples)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    p_at = {r["step"]: r["ada_p"] for r in rows if "ada_p" in r}
    trajectory = []
    kept = sorted(checkpoints.list_steps(run / "checkpoints"))
    for step, path in kept:
        train_logits, val_logits = d_logits(path, x_train), d_logits(path, x_val)
        point = {"step": step, "rt_train": round(float(train_logits.sign().mean()), 3),
                 "rt_val": round(float(val_logits.sign().mean()), 3),
                 "gap": round(float(train_logits.mean() - val_logits.mean()), 2)}
        if step in p_at:
            point["p"] = round(p_at[step], 3)
        if every_ckpt:
            point.update(sample_scores(path, n, x_train, x_near))
        trajectory.append(point)
    out = {**sample_scores(kept[-1][1], n, x_train, x_near), "trajectory": trajectory, "run": str(run)}
    if p_at:
        out["p_every_100"] = [round(p_at[k], 3) for k in sorted(p_at) if k % 100 == 0]
    return out


def sample_scores(ckpt: Path, n: int, x_train: torch.Tensor, x_near: torch.Tensor) -> dict:
    """Confident share, classes present, FD-digits and copying (``copying``) of ``n`` samples
    (seeds 0..n-1, EMA G)."""
    fake = generate(load_generator(ckpt, "cpu"), list(range(n)))
    scores = score_images(fake)
    return {"confident": scores["confident"], "classes_present": scores["classes_present"],
            "fd_digits": round(scores["fd_digits"], 2), **copying(fake, x_train, x_near)}


if __name__ == "__main__":
    main()
