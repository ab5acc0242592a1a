"""Export a trained generator as one self-contained file: ONNX or TorchScript.

The exported graph is the generator alone, in fp32 on the CPU, with a dynamic batch size:

==============  =====================================  ==========================================
model           inputs                                 output
==============  =====================================  ==========================================
unconditional   ``z`` (N, z_dim) float32               ``images`` (N, C, H, W) float32 in [-1, 1]
conditional     ``z``, ``labels`` (N,) int64 class      ``images``
infogan         ``z``, ``codes`` (N, cat + cont) f32   ``images``
2-D points      ``z``                                  ``points`` (N, 2) float32, data units
cyclegan        ``image`` (N, C, H, W) f32 in [-1, 1]  ``translated`` (N, C, H, W) in [-1, 1]
stargan         ``image``, ``target`` (N,) int64       ``translated`` into domain ``target``
                (attribute models: (N, K) 0/1 f32)
==============  =====================================  ==========================================

Latents are what ``gancli sample`` feeds G: ``gancli.sampling.latents_for_seeds`` (one
``torch.Generator`` per seed; the exported file does not draw them). Translation graphs also take
any height and width divisible by 4. A label outside ``0..K-1`` gives an all-zero one-hot row.

After writing, the file itself is run (ONNX with onnxruntime's CPU provider, TorchScript with
``torch.jit.load``) on seeds 0..7 (a batch of 8, while the graph was traced with 2) and compared
with the PyTorch generator on the same inputs, i.e. with ``gancli sample`` / ``gancli
translate``; a largest absolute difference above ``TOLERANCE`` refuses the file (the temporary
file is removed, an existing ``--out`` is left as it was). ONNX uses the TorchScript-based
exporter (``dynamo=False``, opset ``OPSET``), which needs no onnxscript and takes well under a
second for these networks; it needs ``onnx`` and ``onnxruntime`` (``pip install
"gancli[export]"``) to check the file. TorchScript needs nothing beyond torch.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from gancli import checkpoints
from gancli.errors import GancliError, UsageError
from gancli.extras import require
from gancli.fileio import atomic_write_bytes
from gancli.inference import LoadedModel, Translator, generate, load_generator
from gancli.registry import OBJECTIVES
from gancli.sampling import latents_for_seeds

FORMATS = ("onnx", "torchscript")
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript"}
TOLERANCE = 1e-4  # largest |exported - PyTorch| accepted, in output units ([-1, 1] images)
OPSET = 17
VERIFY_SEEDS = list(range(8))
TRACE_SEEDS = [100, 101]  # a different batch size than the check: the batch axis must be dynamic


class ExportError(GancliError):
    """The exported file does not reproduce the generator, or cannot be made."""


class _OneHot(nn.Module):
    """int64 labels (N,) -> float one-hot rows (N, K), as a comparison (exports everywhere)."""

    def __init__(self, classes: int):
        super().__init__()
        self.register_buffer("index", torch.arange(classes), persistent=False)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return (labels[:, None] == self.index[None]).float()


class LatentGraph(nn.Module):
    """z (and labels or codes) -> G's output; images clamped to [-1, 1], the range the file
    promises (StyleGAN2's and ProGAN's generators end without a tanh, as in their papers, and
    ``gancli sample`` clamps when it writes an image)."""

    def __init__(self, G: nn.Module, classes: int = 0, images: bool = True):
        super().__init__()
        self.G = G
        self.one_hot = _OneHot(classes) if classes else None
        self.images = images

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.one_hot is not None:
            y = self.one_hot(y)
        x = self.G(z, y)
        return x.clamp(-1.0, 1.0) if self.images else x


class TranslationGraph(nn.Module):
    """image (and StarGAN's target domain) -> the translated image."""

    def __init__(self, G: nn.Module, domains: int = 0):
        super().__init__()
        self.G = G
        self.one_hot = _OneHot(domains) if domains else None

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        if target is None:
            return self.G(x)
        return self.G(x, self.one_hot(target) if self.one_hot is not None else target)


@dataclass
class Plan:
    """What to trace and how to feed it: ``inputs(seeds)`` gives the graph's inputs for
    ``seeds``, ``reference(seeds)`` the PyTorch output the exported file must match."""

    graph: nn.Module
    input_names: list[str]
    output_name: str
    inputs: Callable[[list[int]], tuple[torch.Tensor, ...]]
    reference: Callable[[list[int]], torch.Tensor]
    spatial: bool = False  # image inputs: height and width are dynamic too
    describe: dict = field(default_factory=dict)


def plan_for(model: LoadedModel, direction: str | None = None) -> Plan:
    """The graph for a loaded generator, with its inputs for a list of seeds."""
    m = model.cfg.model
    if model.conditioning.translates:
        return _translation_plan(Translator(model), direction)
    if direction is not None:
        raise UsageError("--direction is for CycleGAN models",
                          hint=f"this one is {model.cfg.name} ({model.cfg.task})")
    out_name = "points" if model.spec.kind == "points" else "images"
    images = out_name == "images"

    def z_for(seeds):
        return latents_for_seeds(seeds, m.z_dim, m.z_dist)

    def reference(seeds, **kw):
        x = generate(model, seeds, **kw)
        return x.clamp(-1.0, 1.0) if images else x

    if model.conditional:
        k = model.spec.num_classes
        graph = LatentGraph(model.G, k, images)

        def labels(seeds):
            return torch.tensor([s % k for s in seeds], dtype=torch.long)

        return Plan(graph, ["z", "labels"], out_name, lambda s: (z_for(s), labels(s)),
                    lambda s: reference(s, labels=labels(s)),
                    describe={"labels": f"int64 class index 0..{k - 1} ({', '.join(model.classes)})"})
    if model.has_codes:
        return Plan(LatentGraph(model.G, 0, images), ["z", "codes"], out_name,
                    lambda s: (z_for(s), model.codes_for(s)), reference,
                    describe={"codes": f"float32 (N, {m.info_cat + m.info_cont}): one-hot "
                                       f"categorical code ({m.info_cat}) then continuous codes "
                                       f"({m.info_cont})"})
    return Plan(LatentGraph(model.G, 0, images), ["z"], out_name, lambda s: (z_for(s),), reference)


def _test_images(seeds: list[int], channels: int, size: tuple[int, int]) -> torch.Tensor:
    """One uniform-noise image in [-1, 1] per seed (a fixed input that needs no data)."""
    return torch.stack([torch.rand(channels, *size, generator=torch.Generator().manual_seed(s))
                        * 2 - 1 for s in seeds])


def _translation_plan(tr: Translator, direction: str | None) -> Plan:
    size = (tr.resolution, tr.resolution)
    if tr.kind == "paired":  # pix2pix: a fixed graph needs fixed masks, so dropout is off
        if direction not in (None, tr.direction):
            raise UsageError(f"this pix2pix model translates {tr.direction}, not '{direction}'",
                              hint="leave out --direction")
        tr.model.G.test_dropout = False
        return Plan(TranslationGraph(tr.model.G), ["image"], "translated",
                    lambda s: (_test_images(s, tr.channels, size),),
                    lambda s: tr(_test_images(s, tr.channels, size), dropout=False), spatial=True,
                    describe={"direction": f"{tr.direction} ({' -> '.join(tr.domains)}); dropout "
                                           f"off, sides multiples of {tr.model.G.multiple}"})
    if tr.kind == "cycle":
        d = direction or "a2b"
        if d not in ("a2b", "b2a"):
            raise UsageError(f"unknown direction '{d}'", hint="use a2b or b2a")
        graph = TranslationGraph(getattr(tr.model.G, d))
        return Plan(graph, ["image"], "translated",
                    lambda s: (_test_images(s, tr.channels, size),),
                    lambda s: tr(_test_images(s, tr.channels, size), direction=d), spatial=True,
                    describe={"direction": f"{d} ({' -> '.join(tr.domains if d == 'a2b' else tr.domains[::-1])})"})
    if direction is not None:
        raise UsageError("--direction is for CycleGAN; a StarGAN graph takes the target domain "
                          "as an input", hint=f"domains: {', '.join(tr.domains)}")
    k = len(tr.domains)
    if tr.multi_label:
        def target(seeds):
            return torch.nn.functional.one_hot(torch.tensor([s % k for s in seeds]), k).float()

        def reference(seeds):
            return torch.cat([tr(_test_images([s], tr.channels, size), target=[s % k])
                              for s in seeds])
        graph, note = TranslationGraph(tr.model.G), f"float32 (N, {k}) 0/1 attributes"
    else:
        def target(seeds):
            return torch.tensor([s % k for s in seeds], dtype=torch.long)

        def reference(seeds):
            return torch.cat([tr(_test_images([s], tr.channels, size), target=s % k)
                              for s in seeds])
        graph, note = TranslationGraph(tr.model.G, k), f"int64 domain index 0..{k - 1}"
    return Plan(graph, ["image", "target"], "translated",
                lambda s: (_test_images(s, tr.channels, size), target(s)), reference,
                spatial=True, describe={"target": f"{note} ({', '.join(tr.domains)})"})


def bake(graph: nn.Module) -> nn.Module:
    """Replace, in place, every parametrised weight (spectral norm) by the weight it computes
    in eval mode, W / (u . W v) with the stored power-iteration vectors: the same numbers, as a
    plain tensor (ONNX has no ``vdot``; the file gets smaller and faster). In place because
    removing a parametrisation edits the class that a ``deepcopy`` would share.

    A batch norm without affine parameters (BigGAN's conditional batch norm normalises
    before its own per-class gain) gets a unit weight and a zero bias: the same function, and
    the ONNX exporter needs them to know the channel count under a dynamic batch size."""
    from torch.nn.utils import parametrize

    graph.eval()
    with torch.no_grad():
        for module in list(graph.modules()):  # removing changes the tree
            if parametrize.is_parametrized(module):
                for name in list(module.parametrizations.keys()):
                    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is None:
                c = module.num_features
                module.weight = nn.Parameter(torch.ones(c), requires_grad=False)
                module.bias = nn.Parameter(torch.zeros(c), requires_grad=False)
    return graph


@contextmanager
def _native_output_to(sink):
    """Send file descriptors 1 and 2 to ``sink`` for a while: the ONNX exporter prints a
    whole graph dump on an unsupported operator (to stdout, where it would corrupt
    ``--json``), which the one-line error replaces."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def to_bytes(plan: Plan, fmt: str) -> bytes:
    """Trace ``plan.graph`` on the CPU, after baking its spectral norms (in place: compute the
    references first), and serialise it as ONNX or TorchScript."""
    graph = bake(plan.graph)
    example = plan.inputs(TRACE_SEEDS)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), tempfile.TemporaryFile() as log, \
            _native_output_to(log):
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the check below decides
        try:
            if fmt == "onnx":
                axes = {name: {0: "batch"} for name in plan.input_names + [plan.output_name]}
                if plan.spatial:
                    for name in {plan.input_names[0], plan.output_name}:
                        axes[name] = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(graph, example, buf, dynamo=False, opset_version=OPSET,
                                  input_names=plan.input_names, output_names=[plan.output_name],
                                  dynamic_axes=axes, do_constant_folding=True)
            else:
                torch.jit.save(torch.jit.trace(graph, example, check_trace=False), buf)
        except (RuntimeError, TypeError, ValueError) as e:
            raise ExportError(f"cannot export to {fmt}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}",
                              hint="try the other --format, or report it with GANCLI_DEBUG=1") \
                from None
    return buf.getvalue()


def run_exported(path: Path, fmt: str, names: list[str],
                 inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Run an exported file on ``inputs`` (CPU) and return its output."""
    if fmt == "onnx":
        ort = require("onnxruntime", "export", "checking an ONNX export")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feeds = {n: t.numpy() for n, t in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feeds)[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
        return module(*inputs).float()


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def format_for(fmt: str | None, out: Path) -> str:
    """The format from ``--format`` or the file suffix; a mismatch is an error."""
    by_suffix = SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        if by_suffix is None:
            raise UsageError(f"cannot tell the format of '{out}' from its suffix",
                              hint="use --format onnx|torchscript, or --out G.onnx / G.pt")
        return by_suffix
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'", hint="use --format onnx or torchscript")
    if by_suffix is not None and by_suffix != fmt:
        raise UsageError(f"--format {fmt} does not match the file name '{out.name}'",
                          hint=f"name it {out.stem}{'.onnx' if fmt == 'onnx' else '.pt'}")
    return fmt


def export(spec: str | Path, out: str | Path, fmt: str | None = None,
           direction: str | None = None, ema: bool = True) -> dict:
    """Export the generator of a run folder or checkpoint to ``out`` and check the file.

    Returns a report: ``out``, ``format``, ``bytes`` (file size), ``max_abs_diff`` (largest
    |exported - PyTorch| over seeds 0..7, output units), ``inputs`` / ``output`` names,
    ``checkpoint``, ``step``, ``weights`` (``G_ema`` or ``G``). Raises ``ExportError`` (nothing
    written) when the difference exceeds ``TOLERANCE``; ``GancliError`` for bad arguments or a
    missing ``gancli[export]`` extra.
    """
    out = Path(out).expanduser()
    fmt = format_for(fmt, out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="give a file name, e.g. --out G.onnx")
    if fmt == "onnx":  # before any work: both are needed to write and to check the file
        require("onnx", "export", "--format onnx")
        require("onnxruntime", "export", "--format onnx")
    path = checkpoints.resolve(spec)
    objective = (checkpoints.load(path, tensors=False).meta.get("config") or {}).get("objective")
    translation = (isinstance(objective, str) and objective in OBJECTIVES and
                   OBJECTIVES.get(objective).conditioning.translates)
    model = load_generator(path, torch.device("cpu"), translation=translation, ema=ema)
    plan = plan_for(model, direction)
    plan.graph.eval()
    inputs = plan.inputs(VERIFY_SEEDS)
    with torch.no_grad():  # references from the generator as loaded, before it is traced
        expected = plan.reference(VERIFY_SEEDS)
        if plan.spatial:  # any size divisible by 4: also twice the training resolution
            big = tuple(torch.nn.functional.interpolate(x, scale_factor=2.0) if x.dim() == 4
                        else x for x in inputs)
            expected_2x = plan.graph(*big)
    data = to_bytes(plan, fmt)
    report: dict = {}

    def check(tmp: Path) -> None:
        got = run_exported(tmp, fmt, plan.input_names, inputs)
        report["max_abs_diff"] = diff = max_abs_diff(got, expected)
        if plan.spatial:
            report["max_abs_diff_2x"] = diff2 = max_abs_diff(
                run_exported(tmp, fmt, plan.input_names, big), expected_2x)
            diff = max(diff, diff2)
        if not diff <= TOLERANCE:
            raise ExportError(f"the exported {fmt} file differs from the PyTorch generator by "
                              f"{diff:.3g} (> {TOLERANCE:g}) on seeds 0-7; nothing written",
                              hint="try the other --format, or report it with GANCLI_DEBUG=1")

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data, check)
    return {"out": str(out), "format": fmt, "bytes": out.stat().st_size, **report,
            "tolerance": TOLERANCE, "seeds": VERIFY_SEEDS, "inputs": plan.input_names,
            "output": plan.output_name, "dynamic": ["batch"] + (["height", "width"]
                                                                 if plan.spatial else []),
            "opset": OPSET if fmt == "onnx" else None, "checkpoint": str(model.path),
            "step": model.step, "preset": model.cfg.name, "weights": model.weights,
            "notes": plan.describe}
