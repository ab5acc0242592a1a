"""Training previews: a grid from fixed latents, or a scatter plot (and mode coverage)
of 2-D samples over the real data."""

from __future__ import annotations

from pathlib import Path

import torch

from gancli import imaging
from gancli.config import Config
from gancli.data.base import Dataset
from gancli.metrics.toy import mode_coverage
from gancli.sampling import codes_for_seeds, latents_for_seeds

POINTS_PREVIEW = 2500  # the PacGAN protocol's sample count


class Preview:
    def __init__(self, cfg: Config, data: Dataset, G: torch.nn.Module, device: torch.device,
                 conditioning: str = "none"):
        self.G, self.data, self.device = G, data, device
        n = POINTS_PREVIEW if data.kind == "points" else cfg.train.sample_n
        m = cfg.model
        self.nrow, self.y = None, None
        rows = 1
        if conditioning in ("concat", "classifier"):  # one row per class, the same seeds in each
            rows = data.num_classes
            n = max(1, n // rows)
            self.nrow, self.y = n, torch.arange(rows).repeat_interleave(n).to(device)
        elif conditioning == "info":
            if m.info_cat:  # one row per value of the categorical code, continuous codes at 0
                rows = m.info_cat
                n = max(1, n // rows)
                codes = torch.zeros(rows * n, m.info_cat + m.info_cont)
                codes[torch.arange(rows * n), torch.arange(rows).repeat_interleave(n)] = 1.0
                self.nrow = n
            else:
                codes = codes_for_seeds(list(range(n)), m.z_dim, m.z_dist, 0, m.info_cont)
            self.y = codes.to(device)
        # seeds 0..n-1: the same latents `gancli sample --seeds 0-(n-1)` uses
        z = latents_for_seeds(list(range(n)), m.z_dim, m.z_dist)
        self.z = z.repeat(rows, 1).to(device)
        if data.kind == "points":
            idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:5000]
            self.real = data.x[idx].numpy()

    @torch.no_grad()
    def write(self, folder: Path, step: int) -> tuple[Path, dict]:
        was_training = self.G.training
        self.G.eval()  # BN running statistics: a sample must not depend on its batch-mates
        try:
            ys = self.y.split(512) if self.y is not None else [None] * len(self.z.split(512))
            out = torch.cat([self.G(z, y) for z, y in zip(self.z.split(512), ys)])
        finally:
            self.G.train(was_training)
        path = folder / f"step-{step:07d}.png"
        extra: dict = {}
        if self.data.kind == "points":
            modes = self.data.modes
            img = imaging.scatter(out.cpu().numpy(), self.real,
                                  modes=modes.numpy() if modes is not None else None)
            if modes is not None:
                extra = mode_coverage(out, modes, self.data.sigma)
        else:
            img = imaging.grid(imaging.to_uint8(out), nrow=self.nrow)
        imaging.save_image(img, path)
        return path, extra
