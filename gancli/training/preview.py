"""Training previews: a grid from fixed latents, a scatter plot (and mode coverage) of 2-D
samples over the real data, or, for translation models, fixed inputs next to their
translations."""

from __future__ import annotations

from pathlib import Path

import torch

from gancli import imaging
from gancli.conditioning import NONE, Conditioning
from gancli.config import Config
from gancli.data.base import Dataset
from gancli.metrics.toy import mode_coverage
from gancli.sampling import codes_for_seeds, latents_for_seeds

POINTS_PREVIEW = 2500  # the PacGAN protocol's sample count
TRANSLATION_ROWS = 8


class Preview:
    def __init__(self, cfg: Config, data: Dataset, G: torch.nn.Module, device: torch.device,
                 conditioning: Conditioning = NONE):
        self.G, self.data, self.device = G, data, device
        self.conditioning = conditioning
        if conditioning.translates:
            source = data.test if data.test is not None else data.x
            source = data.fit(source[:TRANSLATION_ROWS])  # data.crop_scale: the centre window
            self.inputs = imaging.from_uint8(source).to(device)
            self.labels = (data.y[:TRANSLATION_ROWS].to(device)
                           if data.y is not None and data.test is None else None)
            return
        n = POINTS_PREVIEW if data.kind == "points" else cfg.train.sample_n
        m = cfg.model
        self.nrow, self.y = None, None
        rows = 1
        if conditioning.class_labels:  # one row per class, the same seeds in each
            rows = data.num_classes
            n = max(1, n // rows)
            self.nrow, self.y = n, torch.arange(rows).repeat_interleave(n).to(device)
        elif conditioning.codes:
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
        folder.mkdir(parents=True, exist_ok=True)  # a resumed run whose samples/ was removed
        was_training = self.G.training
        self.G.eval()  # BN running statistics: a sample must not depend on its batch-mates
        try:
            if self.conditioning.translates:
                return self._write_translation(folder, step)
            ys = self.y.split(512) if self.y is not None else [None] * len(self.z.split(512))
            out = torch.cat([self.G(z, y) for z, y in zip(self.z.split(512), ys)])
        finally:
            self.G.train(was_training)
        path = folder / f"step-{step:07d}.png"
        extra: dict = {}
        if hasattr(self.G, "growth"):  # progressive growing: the stage the grid was drawn at
            extra = self.G.growth()
            fade = f"-fade{extra['alpha']:.2f}" if extra["alpha"] < 1 and extra["stage"] else ""
            path = folder / f"step-{step:07d}-{extra['resolution']}px{fade}.png"
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

    def _write_translation(self, folder: Path, step: int) -> tuple[Path, dict]:
        """CycleGAN: per row a, G(a), F(G(a)), F(a) | b, F(b), G(F(b)), G(b) (input,
        translation, reconstruction, identity). pix2pix: input, output, target. StarGAN: per row x, then x in every domain."""
        G, x = self.G, self.inputs
        if self.conditioning.paired:  # pix2pix: input, output, target (dropout seeded)
            cols = [x[:, 0], G(x[:, 0], torch.Generator().manual_seed(0)), x[:, 1]]
        elif self.conditioning.two_way:
            a, b = x[:, 0], x[:, 1]
            g_a, f_b = G.a2b(a), G.b2a(b)
            cols = [a, g_a, G.b2a(g_a), G.b2a(a), b, f_b, G.a2b(f_b), G.a2b(b)]
        else:
            k = self.data.num_classes
            if self.labels is not None and self.labels.is_floating_point():
                # attributes: each column flips one attribute of the input's own labels
                cols = [x] + [G(x, self._flipped(d)) for d in range(k)]
            else:
                cols = [x] + [G(x, torch.full((len(x),), d, dtype=torch.long, device=x.device))
                              for d in range(k)]
        out = torch.stack(cols, 1).flatten(0, 1)
        path = folder / f"step-{step:07d}.png"
        imaging.save_image(imaging.grid(imaging.to_uint8(out), nrow=len(cols)), path)
        return path, {}

    def _flipped(self, d: int) -> torch.Tensor:
        y = self.labels.clone()
        y[:, d] = 1 - y[:, d]
        return y
