"""The image history pool (Shrivastava et al. 2017; CycleGAN's 50-image buffer).

D sees, for each new fake, with probability 1/2 an older fake from the pool (which
the new one then replaces), so it does not forget what G produced a while ago.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int, rng: torch.Generator):
        self.size = size
        self.rng = rng
        self.images: torch.Tensor | None = None  # (filled, ...) on the fakes' device

    @property
    def filled(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = fakes.clone()
        for i in range(len(fakes)):
            img = fakes[i:i + 1].detach()
            if self.filled < self.size:
                self.images = img.clone() if self.images is None else torch.cat([self.images, img])
            elif torch.rand(1, generator=self.rng).item() < 0.5:
                j = int(torch.randint(self.size, (1,), generator=self.rng))
                out[i] = self.images[j]
                self.images[j] = img[0]
        return out

    def state(self) -> dict[str, torch.Tensor]:
        return {} if self.images is None else {"images": self.images}

    def load(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.images = state["images"].to(device) if "images" in state else None
