"""Training-step speed of gancli against a plain reference loop, in the same run, interleaved.

``dcgan``: 64x64 RGB DCGAN (ngf = ndf = 64, z of 100, BN, Adam 2e-4), gancli fp32 and bf16
against the pytorch/examples DCGAN loop in fp32 (eager; BCELoss after a Sigmoid; ``.item()``
statistics every iteration; the real batch from an in-memory tensor, so the step is timed,
not the input pipeline: data_speed.py times that). ``toy``: the wgan-gp-toy preset (2-D
grid of 25 Gaussians, ReLU MLPs, n_critic 5, gradient penalty) against the same WGAN-GP
written the common way (igul222's gan_toy.py in PyTorch: D(real) and D(fake) separately,
``.item()`` every iteration, default Adam).

gancli's rate comes from its own metrics log (steps between two log rows, after a warm-up
interval), so it includes everything the loop does per step: the NaN guard, the meter, EMA,
the learning-rate schedule. Each repeat times gancli, then the reference; the medians
and their ratio are printed.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py dcgan --steps 8 --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/train_speed.py toy --steps 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from common import interleaved_medians
from torch import nn

from gancli import load_config
from gancli.reporting import Reporter
from gancli.runs import create_run_dir, write_config
from gancli.training.loop import train


def gancli_rate(preset: str, sets: list[str], steps: int, warm: int) -> float:
    """Steady-state G steps per second of gancli's loop (from its metrics log)."""
    cfg = load_config(preset, sets + [f"train.steps={warm + steps}", f"train.log_every={warm}",
                                      "train.sample_every=0", "train.ckpt_every=0"])
    run = create_run_dir(tempfile.mkdtemp(prefix="gancli-speed-"), "bench")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "elapsed_s" in r]
    a, b = rows[0], rows[-1]  # the first row closes the warm-up interval
    return (b["step"] - a["step"]) / (b["elapsed_s"] - a["elapsed_s"])


# ---------------------------------------------------------------------------------------------
# pytorch/examples dcgan/main.py, as written there (nz=100, ngf=ndf=64, nc=3)


class RefG(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, x):
        return self.main(x)


class RefD(nn.Module):
    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def weights_init(m):
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def reference_dcgan(batch: int, steps: int, warm: int) -> float:
    torch.manual_seed(0)
    netG, netD = RefG(), RefD()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = torch.rand(1024, 3, 64, 64) * 2 - 1
    t0 = 0.0
    for i in range(warm + steps):
        if i == warm:
            t0 = time.perf_counter()
        real = data[torch.randint(len(data), (batch,))]
        netD.zero_grad()
        label = torch.full((batch,), 1.0)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()  # noqa: F841 (the examples print these every iteration)
        noise = torch.randn(batch, 100, 1, 1)
        fake = netG(noise)
        label.fill_(0.0)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()  # noqa: F841
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(1.0)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()  # noqa: F841
        optimizerG.step()
        _ = errD.item(), errG.item()
    return steps / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# WGAN-GP on toy data, as in gan_toy.py (ported to PyTorch the common way)


def reference_toy(steps: int, warm: int, width: int = 128, batch: int = 256) -> float:
    torch.manual_seed(0)

    def mlp(d_in, d_out):
        return nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, width), nn.ReLU(), nn.Linear(width, d_out))

    netG, netD = mlp(2, 2), mlp(2, 1)
    optD = torch.optim.Adam(netD.parameters(), lr=1e-3, betas=(0.5, 0.9))
    optG = torch.optim.Adam(netG.parameters(), lr=1e-3, betas=(0.5, 0.9))
    centers = torch.tensor([(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)], dtype=torch.float)
    data = centers[torch.randint(25, (100_000,))] + 0.05 * torch.randn(100_000, 2)
    t0 = 0.0
    for i in range(warm + steps):
        if i == warm:
            t0 = time.perf_counter()
        for p in netD.parameters():
            p.requires_grad = True
        for _ in range(5):
            real = data[torch.randint(len(data), (batch,))]
            netD.zero_grad()
            d_real = netD(real).mean()
            with torch.no_grad():
                fake = netG(torch.randn(batch, 2))
            d_fake = netD(fake).mean()
            alpha = torch.rand(batch, 1)
            interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            grads = torch.autograd.grad(netD(interp).sum(), interp, create_graph=True)[0]
            gp = ((grads.norm(2, dim=1) - 1) ** 2).mean() * 0.1
            d_cost = d_fake - d_real + gp
            d_cost.backward()
            optD.step()
            _ = d_cost.item(), (d_real - d_fake).item()
        for p in netD.parameters():
            p.requires_grad = False
        netG.zero_grad()
        g_cost = -netD(netG(torch.randn(batch, 2))).mean()
        g_cost.backward()
        optG.step()
        _ = g_cost.item()
    return steps / (time.perf_counter() - t0)


def compare(label: str, runs: dict, repeats: int) -> None:
    med = interleaved_medians(runs, repeats, verbose=True)
    ref = med["reference fp32"]
    print(f"{label} (median G steps/s over {repeats} repeats):")
    for k, v in med.items():
        print(f"  {k:<24} {v:8.3f} steps/s   {v / ref:5.2f}x reference fp32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["dcgan", "toy"])
    ap.add_argument("--steps", type=int, default=0, help="timed G steps per repeat")
    ap.add_argument("--warm", type=int, default=0, help="untimed G steps first")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="dcgan batch size")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--variants", default="fp32,bf16",
                    help="gancli variants: a precision, +cl (channels-last), +compile; the toy "
                         "default is fp32,fp32+compile")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if args.what == "dcgan":
        steps, warm = args.steps or 8, args.warm or 2
        sets = ["data.source=shapes", "data.resolution=64", "data.channels=3",
                f"train.batch_size={args.batch}"]
        runs = {"reference fp32": lambda: reference_dcgan(args.batch, steps, warm)}
        for v in args.variants.split(","):
            runs[f"gancli {v}"] = (lambda v=v: gancli_rate(
                "dcgan", sets + [f"train.precision={v.split('+')[0]}"]
                + (["train.channels_last=true"] if "+cl" in v else [])
                + (["train.compile=true"] if "+compile" in v else []), steps, warm))
        compare(f"DCGAN 64x64, batch {args.batch}", runs, args.repeats)
    else:
        steps, warm = args.steps or 300, args.warm or 20
        runs = {"reference fp32": lambda: reference_toy(steps, warm)}
        for v in (args.variants if args.variants != "fp32,bf16" else "fp32,fp32+compile").split(","):
            runs[f"gancli {v}"] = (lambda v=v: gancli_rate(
                "wgan-gp-toy", ["optim.decay_start=0", f"train.precision={v.split('+')[0]}"]
                + (["train.compile=true"] if "+compile" in v else []), steps, warm))
        compare("WGAN-GP toy MLP (width 128, batch 256, n_critic 5)", runs, args.repeats)


if __name__ == "__main__":
    main()
