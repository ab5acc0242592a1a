"""The one in-memory dataset type every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass
class Dataset:
    """A whole dataset, decoded once and held as one tensor.

    Attributes:
        name: the spec it came from (``digits``, ``toy:grid25``, a folder path).
        kind: ``"images"`` (``x`` is uint8, (N, C, H, W), values 0..255),
            ``"pairs"`` (``x`` is uint8, (N, 2, C, H, W): an image of domain A next to an
            unrelated one of domain B, for unpaired translation) or ``"points"`` (``x`` is
            float32, (N, 2)).
        x: the samples.
        y: int64 class labels, (N,), or None when the data has no labels.
        classes: class names when ``y`` is given (index i names label i).
        info: what a user should be told about loading (counts, cache hits...).
        modes: for toy mixtures, the component means (K, 2); else None.
        sigma: for toy mixtures, the component standard deviation.
        test: held-out samples laid out like ``x`` (``testA``/``testB`` of a translation
            folder), used for training previews; None when the data has none.
        domains: names of the two domains of ``"pairs"`` data (``["A", "B"]`` by default).
        crop_to: when set, ``x`` holds larger squares (``data.crop_scale``) and every batch is
            cropped to ``crop_to`` pixels (``crop``: ``"center"`` or ``"random"``); ``shape``
            is then the cropped shape, the one the networks see.
        crop: the crop policy used with ``crop_to``.

    ``x`` is a tensor, or for a prepared store a ``gancli.data.store.StoredImages`` that reads
    only the samples it is indexed with (``len``, ``shape`` and ``x[idx]`` work the same).
    """

    name: str
    kind: Literal["images", "pairs", "points"]
    x: torch.Tensor
    y: torch.Tensor | None = None
    classes: list[str] | None = None
    info: dict = field(default_factory=dict)
    modes: torch.Tensor | None = None
    sigma: float | None = None
    test: torch.Tensor | None = None
    domains: list[str] | None = None
    crop_to: int | None = None
    crop: str = "center"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample: (C, H, W) for images, (2, C, H, W) for pairs, (2,) for points."""
        shape = tuple(self.x.shape[1:])
        if self.crop_to and self.kind != "points":
            shape = shape[:-2] + (self.crop_to, self.crop_to)
        return shape

    def fit(self, x: torch.Tensor) -> torch.Tensor:
        """Center-crop samples laid out like ``x`` (..., H, W) to ``shape`` (previews, tests)."""
        if not self.crop_to or self.kind == "points" or x.shape[-1] == self.crop_to:
            return x
        top = (x.shape[-2] - self.crop_to) // 2
        left = (x.shape[-1] - self.crop_to) // 2
        return x[..., top:top + self.crop_to, left:left + self.crop_to]

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 0
