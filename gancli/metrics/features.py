"""Feature extractors for ``gancli evaluate``: the FID Inception network and the digits CNN.

An extractor turns uint8 images (N, C, H, W) into float32 features (N, D) and class logits,
and says which weights file it used (path and SHA-256), so every result can name it.

``inception`` is torch-fidelity's port of the TF "inception-2015-12-05" graph: its forward
(TF1-exact bilinear resize to 299, ``(x - 128) / 128``, pool_3 2048-d features, ``logits_unbiased``
= pool_3 . W without the bias for IS) is used as is. Only the construction is ours:
torch-fidelity reads a local weights file with an unrestricted unpickling load (a third-party
pickle could run code), so ``InceptionNet`` builds the same layers and loads the state dict with
``weights_only=True``. The weights are never bundled and never fetched silently; see
``find_inception_weights`` for the lookup order.

``digits`` is the small CNN shipped in ``gancli.metrics.digits`` (128-d penultimate layer,
10 logits): offline, meant for the built-in ``digits`` data ("FD-digits").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gancli.errors import GancliError
from gancli.fileio import sha256_file

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
# torch-fidelity publishes the same state dict under another name; either is found in the hub cache
INCEPTION_ALT_FILES = ("weights-inception-2015-12-05-6726825d.pth",)
INCEPTION_HASH_PREFIX = "6726825d"  # torch.hub convention: the first digits of the file's SHA-256
ENV_WEIGHTS = "GANCLI_INCEPTION_WEIGHTS"
EXTRACTORS = ("inception", "digits")


@dataclass
class Extractor:
    """A feature network ready to run: ``run(uint8 images) -> (features, logits)`` as float32 numpy."""

    name: str
    dim: int
    weights: Path
    sha256: str
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    device: torch.device
    description: str

    @torch.no_grad()
    def run(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"extractors take uint8 (N, C, H, W) images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        feats, logits = self.forward(images.to(self.device))
        return (feats.detach().float().cpu().numpy(), logits.detach().float().cpu().numpy())

    def info(self) -> dict:
        return {"name": self.name, "dim": self.dim, "weights": str(self.weights),
                "sha256": self.sha256, "description": self.description}


def load_extractor(name: str, device: torch.device, weights: str | None = None,
                   download: bool = False) -> Extractor:
    if name == "digits":
        return _digits_extractor(device)
    if name == "inception":
        path = find_inception_weights(weights, download)
        return _inception_extractor(path, device)
    raise GancliError(f"unknown feature extractor '{name}'", hint=f"use one of: {', '.join(EXTRACTORS)}")


# --- digits ---------------------------------------------------------------------------------------

def _digits_extractor(device: torch.device) -> Extractor:
    from gancli.metrics.digits import FEATURE_DIM, WEIGHTS_FILE, load_classifier, prepare

    net = load_classifier(device)

    def forward(x: torch.Tensor):
        f = net.features(prepare(x))
        return f, net.head(f)  # eval mode: dropout is off, logits = head(features)

    return Extractor("digits", FEATURE_DIM, WEIGHTS_FILE, sha256_file(WEIGHTS_FILE), forward, device,
                     "gancli digits CNN, 128-d penultimate layer; grey 16x16 input")


# --- inception ------------------------------------------------------------------------------------

def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_weights_error() -> GancliError:
    return GancliError(
        f"Inception weights not found: {INCEPTION_FILE} ({INCEPTION_URL})",
        hint=f"download it and pass --weights PATH (or set {ENV_WEIGHTS}), or allow the download with "
             "--download-weights; offline on the built-in digits, use --features digits")


def find_inception_weights(explicit: str | None = None, download: bool = False) -> Path:
    """The weights file, looked up in order: ``explicit`` (--weights), ``$GANCLI_INCEPTION_WEIGHTS``,
    the torch hub cache (pytorch-fid's or torch-fidelity's file name); downloaded into the hub
    cache (SHA-256 prefix checked by torch.hub) only when ``download`` is true."""
    for given, origin in ((explicit, "--weights"), (os.environ.get(ENV_WEIGHTS), ENV_WEIGHTS)):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise GancliError(f"Inception weights file {p} (from {origin}) does not exist",
                                  hint=f"the standard file is {INCEPTION_FILE} ({INCEPTION_URL})")
            return p
    hub = hub_checkpoint_dir()
    for name in (INCEPTION_FILE, *INCEPTION_ALT_FILES):
        if (hub / name).is_file():
            return hub / name
    if not download:
        raise missing_weights_error()
    hub.mkdir(parents=True, exist_ok=True)
    target = hub / INCEPTION_FILE
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(target), hash_prefix=INCEPTION_HASH_PREFIX,
                                       progress=False)
    except Exception as e:  # offline (URLError, OSError) or a hash mismatch (RuntimeError)
        raise GancliError(f"could not download the Inception weights from {INCEPTION_URL}: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          hint=f"download {INCEPTION_FILE} by hand and pass --weights PATH") from None
    return target


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A third-party ``.pth``: read with ``weights_only=True`` (tensors and containers only)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise GancliError(f"cannot read {path} as a weights file ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})",
                          hint=f"the standard file is {INCEPTION_FILE} ({INCEPTION_URL})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise GancliError(f"{path} is not a state dict of tensors",
                          hint=f"the standard file is {INCEPTION_FILE} ({INCEPTION_URL})")
    return state


def inception_net_class():
    """``InceptionNet``: torch-fidelity's ``FeatureExtractorInceptionV3`` without its loader.

    Same layers and names (so the same state dict fits), same inherited ``forward``; built
    here because the parent's ``__init__`` insists on loading weights itself (download or an
    unrestricted ``torch.load``). Imported lazily: torch-fidelity is only needed for Inception.
    """
    import torch.nn as nn
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_inceptionv3 import (BasicConv2d, FeatureExtractorInceptionV3,
                                                              InceptionA, InceptionB, InceptionC,
                                                              InceptionD, InceptionE_1, InceptionE_2)

    class InceptionNet(FeatureExtractorInceptionV3):
        def __init__(self, features_list=("2048", "logits_unbiased")):
            FeatureExtractorBase.__init__(self, "inception-v3-compat", list(features_list))
            self.feature_extractor_internal_dtype = torch.float32
            self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
            self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
            self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
            self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
            self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
            self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
            self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
            self.Mixed_5b = InceptionA(192, pool_features=32)
            self.Mixed_5c = InceptionA(256, pool_features=64)
            self.Mixed_5d = InceptionA(288, pool_features=64)
            self.Mixed_6a = InceptionB(288)
            self.Mixed_6b = InceptionC(768, channels_7x7=128)
            self.Mixed_6c = InceptionC(768, channels_7x7=160)
            self.Mixed_6d = InceptionC(768, channels_7x7=160)
            self.Mixed_6e = InceptionC(768, channels_7x7=192)
            self.Mixed_7a = InceptionD(768)
            self.Mixed_7b = InceptionE_1(1280)
            self.Mixed_7c = InceptionE_2(2048)
            self.AvgPool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
            self.fc = nn.Linear(2048, 1008)
            self.requires_grad_(False)
            self.eval()

    return InceptionNet


def load_inception(path: Path) -> torch.nn.Module:
    """The FID Inception network with the weights in ``path``; a file that does not fit is refused."""
    state = read_state_dict(path)
    net = inception_net_class()()
    # pytorch-fid's file may lack BatchNorm's step counters; nothing else may be missing or extra
    expected = net.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    bad_shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or bad_shapes:
        what = (f"wrong shape for {bad_shapes[0]}" if bad_shapes else
                f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}")
        count = len(missing) + len(unexpected) + len(bad_shapes)
        more = f" (and {count - 1} more missing, unexpected or mis-shaped tensors)" if count > 1 else ""
        raise GancliError(f"{path} does not fit the FID Inception network: {what}{more}",
                          hint=f"use the standard {INCEPTION_FILE} ({INCEPTION_URL})")
    net.load_state_dict(state, strict=False)
    return net.eval()


def _inception_extractor(path: Path, device: torch.device) -> Extractor:
    net = load_inception(path).to(device)

    def forward(x: torch.Tensor):
        if x.shape[1] == 1:  # grey -> RGB by repetition, as an image viewer shows it
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != 3:
            raise GancliError(f"Inception needs 1- or 3-channel images, not {x.shape[1]}",
                              hint="convert the images to RGB")
        return net(x)

    return Extractor("inception", 2048, path, sha256_file(path), forward, device,
                     "FID Inception v3 (TF inception-2015-12-05 port, torch-fidelity forward): "
                     "TF1 bilinear resize to 299, (x-128)/128, pool_3 2048-d; IS on logits without bias")
