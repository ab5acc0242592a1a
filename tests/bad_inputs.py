"""The bad-input cases of docs/reliability.md: each one a one-line error or a counted skip.

Shared by tests/test_bad_inputs.py (which asserts each row) and benchmarks/bad_inputs.py
(which runs each row through the real entry point and prints the docs table). A case is
(id, what, setup, exit code, a fragment the output must hold); ``setup(tmp, ckpt, stack)``
builds the files and returns the command line (``stack`` takes patches for the two cases a
test can only simulate: an unreadable folder when running as root, and a full disk).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Callable
from unittest import mock

import numpy as np
from PIL import Image

Setup = Callable[[Path, Path, ExitStack], list[str]]

TINY = ["--set", "data.size=512", "--set", "model.g_width=8", "--set", "model.d_width=8",
        "--set", "model.g_depth=2", "--set", "model.d_depth=2", "--set", "train.sample_n=4",
        "--steps", "2", "--set", "train.batch_size=8", "--sample-every", "0"]
IMG = ["--set", "data.resolution=8", "--set", "model.g_width=8", "--set", "model.d_width=8",
       "--set", "train.sample_n=4", "--set", "data.cache=false", "--steps", "1", "--batch-size", "4",
       "--sample-every", "0"]


def train_gan(tmp: Path, *extra: str) -> list[str]:
    return ["train", "gan", *TINY, "--out", str(tmp / "runs"), "--quiet", *extra]


def train_folder(tmp: Path, folder: Path) -> list[str]:
    return ["--json", "train", "dcgan", "--data", str(folder), *IMG, "--out", str(tmp / "runs")]


def _good(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (12, 12), (40 * i, 100, 200)).save(folder / f"good{i}.png")
    return folder


def bad_files(tmp, ckpt, stack):
    d = _good(tmp / "imgs")
    (d / "zero.png").write_bytes(b"")
    jpeg = d / "photo.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(jpeg, quality=90)
    (d / "truncated.jpg").write_bytes(jpeg.read_bytes()[:300])
    jpeg.unlink()
    (d / "text.png").write_text("not an image")  # mislabelled
    return train_folder(tmp, d)


def only_bad_files(tmp, ckpt, stack):
    d = tmp / "imgs"
    d.mkdir()
    (d / "zero.png").write_bytes(b"")
    (d / "text.jpg").write_text("not an image")
    return train_folder(tmp, d)


def odd_modes(tmp, ckpt, stack):
    d = tmp / "imgs"
    d.mkdir()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(d / "cmyk.jpg")
    Image.fromarray(np.full((10, 14), 40000, np.uint16)).save(d / "grey16.png")
    Image.new("RGB", (20, 20), (9, 9, 200)).convert("P").save(d / "palette.png")
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGB", (1, 1), (0, 255, 0)).save(d / "one.png")
    Image.new("RGB", (10000, 10), (0, 255, 0)).save(d / "strip.png")
    return train_folder(tmp, d)


def empty_dir(tmp, ckpt, stack):
    (tmp / "empty").mkdir()
    return train_folder(tmp, tmp / "empty")


def unreadable_dir(tmp, ckpt, stack):
    d = _good(tmp / "locked")
    os.chmod(d, 0)
    stack.callback(os.chmod, d, 0o755)
    if os.geteuid() == 0:  # root reads anything: make listing it fail the way it would for a user
        real = os.scandir

        def scandir(path="."):
            if Path(path) == d:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real(path)

        stack.enter_context(mock.patch("os.scandir", scandir))
    return train_folder(tmp, d)


def symlink_loop(tmp, ckpt, stack):
    d = _good(tmp / "imgs")
    (d / "loop").symlink_to(d, target_is_directory=True)
    (d / "a.png").symlink_to(d / "b.png")
    (d / "b.png").symlink_to(d / "a.png")  # a <-> b: a loop of file links
    (d / "c.png").symlink_to(d / "c.png")  # a link to itself
    return train_folder(tmp, d)


def foreign_safetensors(tmp, ckpt, stack):
    from safetensors.torch import save_file
    import torch

    f = tmp / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(f))
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def class_on_unconditional(tmp, ckpt, stack):
    return ["sample", str(ckpt), "--class", "3", "--out", str(tmp / "x.png")]


def config_as_checkpoint(tmp, ckpt, stack):
    return ["sample", str(ckpt.parent.parent / "config.yaml"), "--out", str(tmp / "x.png")]


def _rewrite(ckpt: Path, dest: Path, edit: Callable[[dict, dict], None]) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(ckpt), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(meta, tensors)
    save_file(tensors, str(dest), metadata=meta)
    return dest


def newer_format(tmp, ckpt, stack):
    f = _rewrite(ckpt, tmp / "new.safetensors", lambda m, t: m.update(gancli_format="99"))
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def truncated(tmp, ckpt, stack):
    f = tmp / "cut.safetensors"
    data = ckpt.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def tampered_header(tmp, ckpt, stack):
    f = tmp / "hdr.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[8:20] = b"#" * 12  # the JSON header is no longer JSON
    f.write_bytes(bytes(data))
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def _config_edit(section: str, key: str, value):
    def edit(meta, tensors):
        cfg = json.loads(meta["config"])
        cfg[section][key] = value
        meta["config"] = json.dumps(cfg)
    return edit


def tampered_width(tmp, ckpt, stack):
    f = _rewrite(ckpt, tmp / "wide.safetensors", _config_edit("model", "g_width", 10**9))
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def tampered_shapes(tmp, ckpt, stack):
    def edit(meta, tensors):
        key = next(k for k in tensors if k.startswith("G.") and tensors[k].dim() == 2)
        tensors[key] = tensors[key][:, :1].contiguous()
    f = _rewrite(ckpt, tmp / "shape.safetensors", edit)
    return ["sample", str(f), "--out", str(tmp / "x.png")]


def tampered_run_name(tmp, ckpt, stack):
    f = _rewrite(ckpt, tmp / "escape.safetensors", _config_edit("run", "name", "../../escaped"))
    return ["train", "--resume", str(f), "--quiet"]


def tampered_run_out(tmp, ckpt, stack):
    # a loose checkpoint resumed into a new run folder: the stored run.out is ignored
    f = _rewrite(ckpt, tmp / "out.safetensors", _config_edit("run", "out", str(tmp / "elsewhere")))
    stack.callback(os.chdir, os.getcwd())
    os.chdir(tmp)  # the default --out (runs/) lands under tmp
    return ["train", "--resume", str(f), "--quiet", "--steps", "3"]


def yaml_tag_config(tmp, ckpt, stack):
    f = tmp / "evil.yaml"
    f.write_text(f'train: !!python/object/apply:os.system ["touch {tmp}/pwned"]\n')
    return ["train", "gan", "--config", str(f), "--dry-run"]


def yaml_tag_preset(tmp, ckpt, stack):
    d = tmp / "presets"
    d.mkdir()
    (d / "evil.yaml").write_text(f'name: !!python/object/new:os.system ["touch {tmp}/pwned"]\n')
    stack.enter_context(mock.patch.dict(os.environ, {"GANCLI_PRESETS": str(d)}))
    return ["train", "evil", "--dry-run"]


def preset_run_out(tmp, ckpt, stack):
    f = tmp / "mine.yaml"
    f.write_text("extends: gan\nrun:\n  out: /etc\n")
    return ["train", str(f), "--dry-run"]


def run_name_escape(tmp, ckpt, stack):
    return train_gan(tmp, "--set", "run.name=../../x")


def sets(*items: str) -> Setup:
    def setup(tmp, ckpt, stack):
        return train_gan(tmp, *[x for s in items for x in ("--set", s)])
    return setup


def disk_full_preflight(tmp, ckpt, stack):
    import shutil

    usage = shutil.disk_usage(tmp)
    stack.enter_context(mock.patch("gancli.preflight.shutil.disk_usage",
                                   return_value=usage._replace(free=4096)))
    return train_gan(tmp)


def out_is_a_file(tmp, ckpt, stack):
    (tmp / "file").write_text("x")
    return train_gan(tmp, "--out", str(tmp / "file" / "runs"))


def disk_full_during_checkpoint(tmp, ckpt, stack):
    real = os.fsync

    def fsync(fd):  # the 3rd checkpoint's data cannot be flushed: the disk is full
        if ".step-0000003" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    stack.enter_context(mock.patch("os.fsync", fsync))
    return train_gan(tmp, "--steps", "5", "--ckpt-every", "1")


def resume_nothing(tmp, ckpt, stack):
    (tmp / "run").mkdir()
    return ["train", "--resume", str(tmp / "run")]


# -- issue 15 kinds 4-6: work sized by user input, non-regular files, data structure ----------

def _alias_bomb() -> str:
    """A 261-byte "billion laughs" YAML flow sequence: 8 levels of shared anchors, each level
    holding the one below and 8 aliases of it, 9**8 strings once expanded."""
    inner = '&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    for i, name in enumerate("bcdefgh"):
        prev = "a" if i == 0 else "bcdefgh"[i - 1]
        inner = f"&{name} [" + ",".join([inner] + [f"*{prev}"] * 8) + "]"
    return inner


def yaml_alias_bomb(tmp, ckpt, stack):
    f = tmp / "bomb.yaml"
    f.write_text(f"train:\n  batch_size: {_alias_bomb()}\n")
    return ["train", "gan", "--config", str(f), "--dry-run"]


def set_alias_bomb(tmp, ckpt, stack):
    return train_gan(tmp, "--set", f"train.batch_size={_alias_bomb()}")


def huge_seed_range(tmp, ckpt, stack):
    return ["sample", str(ckpt), "--seeds", "0-99999999", "--out", str(tmp / "x.png")]


def sample_with(*args: str) -> Setup:
    return lambda tmp, ckpt, stack: ["sample", str(ckpt), *args, "--out", str(tmp / "x.png")]


def huge_walk(tmp, ckpt, stack):
    return ["interpolate", str(ckpt), "--seeds", "0-99999", "--steps", "1000",
            "--out", str(tmp / "w.png")]


def _noise_folder(folder: Path, n: int, size: tuple[int, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / f"img{i:03d}.png")
    return folder


def evaluate_folder(folder: Path, *extra: str) -> list[str]:
    return ["--json", "evaluate", "is", "--features", "digits", "--fake", str(folder), "--n", "20",
            *extra]


def evaluate_thumbnail(tmp, ckpt, stack):
    d = _noise_folder(tmp / "photos", 20, (48, 40))
    Image.new("RGB", (9, 7)).save(d / "000-thumb.png")  # first by name
    return evaluate_folder(d)


def evaluate_one_big_photo(tmp, ckpt, stack):
    d = _noise_folder(tmp / "photos", 20, (48, 40))
    Image.new("RGB", (1600, 1200), (90, 90, 90)).save(d / "000-big.png")  # first by name
    return evaluate_folder(d)


def _small_pixel_limit(stack, pixels: int = 10_000):
    stack.enter_context(mock.patch.dict(os.environ, {"GANCLI_MAX_IMAGE_PIXELS": str(pixels)}))


def large_image_beside_good(tmp, ckpt, stack):
    d = _good(tmp / "imgs")
    Image.new("RGB", (200, 100), (5, 5, 5)).save(d / "scan.png")  # 20,000 px > the 10,000 limit
    _small_pixel_limit(stack)
    return train_folder(tmp, d)


def lone_large_image(tmp, ckpt, stack):
    d = tmp / "imgs"
    d.mkdir()
    Image.new("RGB", (200, 100), (5, 5, 5)).save(d / "scan.png")
    _small_pixel_limit(stack)
    return train_folder(tmp, d)


def bad_pixel_limit(tmp, ckpt, stack):
    _small_pixel_limit(stack)
    os.environ["GANCLI_MAX_IMAGE_PIXELS"] = "lots"  # restored by the patch above
    return train_folder(tmp, _good(tmp / "imgs"))


def make_fifo(path: Path, stack: ExitStack, after: float = 15.0) -> Path:
    """A FIFO at ``path``. Code that opens it for reading would wait forever for a writer; so
    that such code fails a test instead of hanging it, a writer opens and closes it after
    ``after`` seconds (the reader then sees an empty file)."""
    os.mkfifo(path)

    def unblock():
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            return
        threading.Event().wait(0.5)
        os.close(fd)

    timer = threading.Timer(after, unblock)
    timer.daemon = True
    timer.start()
    stack.callback(timer.cancel)
    return path


def fifo_in_train_folder(tmp, ckpt, stack):
    d = _good(tmp / "imgs")
    make_fifo(d / "pipe.png", stack)
    return train_folder(tmp, d)


def fifo_in_evaluate_folder(tmp, ckpt, stack):
    d = _noise_folder(tmp / "photos", 20, (48, 40))
    make_fifo(d / "000-pipe.png", stack)  # first by name
    return evaluate_folder(d)


# a tiny translation run: these cases stop while loading the data, before any step
TRANSLATION = ["--set", "data.resolution=16", "--set", "model.g_width=4", "--set", "model.d_width=4",
               "--set", "model.res_blocks=1", "--set", "data.cache=false", "--steps", "1",
               "--batch-size", "2", "--sample-every", "0", "--quiet"]


def _classes(tmp: Path, names: tuple[str, ...], empty: str) -> Path:
    d = tmp / "classes"
    for name in names:
        _good(d / name)
    (d / empty).mkdir(parents=True)
    (d / empty / "notes.txt").write_text("no image here")
    return d


def empty_class_folder(tmp, ckpt, stack):
    d = _classes(tmp, ("black", "white"), "brown")
    return [*train_folder(tmp, d), "--set", "data.labels=true"]


def empty_class_allowed(tmp, ckpt, stack):
    d = _classes(tmp, ("black", "white"), "brown")
    return [*train_folder(tmp, d), "--set", "data.labels=true", "--set",
            "data.allow_empty_classes=true"]


def empty_domain_folder(tmp, ckpt, stack):
    d = _classes(tmp, ("black", "blond"), "brown")
    return ["train", "stargan", "--data", str(d), *TRANSLATION, "--out", str(tmp / "runs")]


def empty_train_b(tmp, ckpt, stack):
    d = tmp / "horse2zebra"
    _good(d / "trainA")
    (d / "trainB").mkdir()
    return ["train", "cyclegan", "--data", str(d), *TRANSLATION, "--out", str(tmp / "runs")]


def attribute_set_for_no_image(tmp, ckpt, stack):
    d = _good(tmp / "faces", 3)
    rows = [f"good{i}.png {'1' if i else '-1'} -1 1" for i in range(3)]
    (d / "list_attr_celeba.txt").write_text("3\nBlack_Hair Bald Male\n" + "\n".join(rows) + "\n")
    return ["train", "stargan", "--data", str(d), "--set", "data.attributes=Black_Hair,Bald,Male",
            *TRANSLATION, "--out", str(tmp / "runs")]


# (id, case, setup, exit code, fragment of stdout+stderr)
# -- kind 3: every file gancli reads is checked before it is used ------------------------------

def _loose(tmp: Path, ckpt: Path, name: str, edit: Callable[[dict, dict], None]) -> Path:
    """A damaged copy of the checkpoint, named like a step file, outside any run folder."""
    (tmp / "loose").mkdir(exist_ok=True)
    return _rewrite(ckpt, tmp / "loose" / name, edit)


def _resume(tmp: Path, f: Path) -> list[str]:
    return ["train", "--resume", str(f), "--steps", "3", "--out", str(tmp / "runs"), "--quiet"]


def moment_longer(tmp, ckpt, stack):
    import torch

    def edit(meta, tensors):  # Adam's first moment of G's first weight, one element too long
        t = tensors["opt_G.0.exp_avg"].reshape(-1)
        tensors["opt_G.0.exp_avg"] = torch.cat([t, t[:1]])
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors", edit))


def moment_shorter(tmp, ckpt, stack):
    def edit(meta, tensors):  # the second moment of D's last weight cut to its first row
        key = max((k for k in tensors if k.startswith("opt_D.") and k.endswith(".exp_avg_sq")
                   and len(tensors[k]) > 1), key=lambda k: int(k.split(".")[1]))
        tensors[key] = tensors[key][:1].contiguous()
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors", edit))


def moment_missing(tmp, ckpt, stack):
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors",
                               lambda m, t: t.pop("opt_D.1.exp_avg")))


def rng_missing(tmp, ckpt, stack):
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors",
                               lambda m, t: t.pop("rng.noise")))


def step_text(tmp, ckpt, stack):
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors",
                               lambda m, t: m.update(step='"two"')))


def optimizers_list(tmp, ckpt, stack):
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors",
                               lambda m, t: m.update(optimizers="[]")))


def betas_text(tmp, ckpt, stack):
    def edit(meta, tensors):
        opts = json.loads(meta["optimizers"])
        opts["opt_G"]["param_groups"][0]["betas"] = ["a", 0.999]
        meta["optimizers"] = json.dumps(opts)
    return _resume(tmp, _loose(tmp, ckpt, "step-0000002.safetensors", edit))


def nan_weight_sample(tmp, ckpt, stack):
    def edit(meta, tensors):
        key = next(k for k in tensors if k.startswith("G.") and tensors[k].is_floating_point())
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = float("nan")
    f = _loose(tmp, ckpt, "nan.safetensors", edit)
    return ["sample", str(f), "--n", "4", "--out", str(tmp / "x.png")]


def data_shape_text(tmp, ckpt, stack):
    def edit(meta, tensors):
        data = json.loads(meta["data"])
        data["shape"] = "22"
        meta["data"] = json.dumps(data)
    f = _loose(tmp, ckpt, "data.safetensors", edit)
    return ["sample", str(f), "--n", "4", "--out", str(tmp / "x.png")]


def _train_in_process(argv: list[str]) -> None:
    from gancli.cli import main

    try:
        main(argv)
    except SystemExit as e:
        assert not e.code, f"setup run failed: {argv}"


def _grey(folder: Path, n: int, sub: str = "") -> Path:
    (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (12, 12), 30 * i).save(folder / sub / f"grey{i}.png")
    return folder


def colour_image_added(tmp, ckpt, stack):
    d = _grey(tmp / "imgs", 4)
    _train_in_process(["train", "dcgan", "--data", str(d), *IMG, "--out", str(tmp / "runs"),
                       "--quiet"])
    Image.new("RGB", (12, 12), (200, 10, 10)).save(d / "colour.png")
    return ["train", "--resume", str(tmp / "runs" / "dcgan-001"), "--steps", "2", "--json"]


def class_added(tmp, ckpt, stack):
    d = _grey(_grey(tmp / "imgs", 2, "a"), 2, "b")
    _train_in_process(["train", "cgan", "--data", str(d), "--set", "data.labels=true", *IMG,
                       "--out", str(tmp / "runs"), "--quiet"])
    _grey(d, 2, "c")
    return ["train", "--resume", str(tmp / "runs" / "cgan-001"), "--steps", "2"]


def npz_labels_text(tmp, ckpt, stack):
    rng = np.random.default_rng(0)
    np.savez(tmp / "p.npz", samples=rng.normal(size=(50, 2)).astype(np.float32),
             labels=np.array(["a"] * 50))
    return ["evaluate", "modes", "--fake", str(tmp / "p.npz"), "--real", "toy:grid25"]


def npz_points_nan(tmp, ckpt, stack):
    pts = np.zeros((50, 2), np.float32)
    pts[3] = np.nan
    np.savez(tmp / "p.npz", samples=pts)
    return ["evaluate", "modes", "--fake", str(tmp / "p.npz"), "--real", "toy:grid25"]


def _stats(tmp: Path, mu, sigma, meta: str) -> Path:
    f = tmp / "stats.npz"
    np.savez(f, mu=mu, sigma=sigma, meta=np.array(meta))
    return f


def stats_meta_list(tmp, ckpt, stack):
    from gancli.metrics.digits import FEATURE_DIM

    f = _stats(tmp, np.zeros(FEATURE_DIM), np.eye(FEATURE_DIM), "[1, 2]")
    return ["evaluate", "fid", "--features", "digits", "--fake", "digits", "--real", str(f),
            "--n", "64"]


def stats_nan(tmp, ckpt, stack):
    from gancli.metrics.digits import FEATURE_DIM

    mu = np.zeros(FEATURE_DIM)
    mu[5] = np.nan
    f = _stats(tmp, mu, np.eye(FEATURE_DIM), '{"count": 100}')
    return ["evaluate", "fid", "--features", "digits", "--fake", "digits", "--real", str(f),
            "--n", "64"]


CASES: list[tuple[str, str, Setup, int, str]] = [
    ("bad-image-files", "zero-byte, truncated and mislabelled (text) images beside good ones",
     bad_files, 0, '"skipped": 3'),
    ("only-bad-images", "a folder holding only unreadable images", only_bad_files, 1,
     "no usable image"),
    ("odd-image-modes", "CMYK, 16-bit grey, palette, animated GIF, 1x1 and 10000x10 images",
     odd_modes, 0, '"files": 6, "skipped": 0'),
    ("empty-folder", "an empty folder", empty_dir, 1, "no usable image"),
    ("unreadable-folder", "a folder that cannot be listed", unreadable_dir, 1,
     "cannot read image folder"),
    ("symlink-loops", "a link to its own folder, two file links to each other, a self link",
     symlink_loop, 0, '"skipped": 3'),
    ("foreign-safetensors", "sample from a safetensors file that is not a gancli checkpoint",
     foreign_safetensors, 1, "not a gancli checkpoint"),
    ("class-unconditional", "sample --class from an unconditional model", class_on_unconditional,
     2, "--class needs a conditional model"),
    ("yaml-as-checkpoint", "sample from a run's config.yaml instead of a checkpoint",
     config_as_checkpoint, 1, "cannot read checkpoint"),
    ("newer-format", "a checkpoint from a newer format version", newer_format, 1,
     "written by a newer gancli"),
    ("truncated-checkpoint", "a checkpoint cut in half", truncated, 1, "cannot read checkpoint"),
    ("tampered-header", "a checkpoint whose header is not JSON", tampered_header, 1,
     "cannot read checkpoint"),
    ("tampered-config-width", "a checkpoint whose stored config says model.g_width=10**9",
     tampered_width, 1, "does not match its own config"),
    ("tampered-tensor-shape", "a checkpoint with a G weight cut to another shape",
     tampered_shapes, 1, "does not match its own config"),
    ("tampered-run-name", "resume a checkpoint whose stored run.name is ../../escaped",
     tampered_run_name, 2, "not a plain folder name"),
    ("tampered-run-out", "resume a loose checkpoint whose stored run.out is another folder",
     tampered_run_out, 0, ""),
    ("yaml-tag-config", "--config with a !!python/object/apply tag", yaml_tag_config, 2,
     "cannot parse"),
    ("yaml-tag-preset", "a user preset with a !!python/object/new tag", yaml_tag_preset, 2,
     "cannot parse preset"),
    ("preset-run-out", "a preset that sets run.out", preset_run_out, 2,
     "may not choose where files are written"),
    ("run-name-escape", "--set run.name=../../x", run_name_escape, 2, "not a plain folder name"),
    ("set-unknown-key", "--set train.stpes=5", sets("train.stpes=5"), 2, "did you mean 'train.steps'"),
    ("set-wrong-type", "--set train.steps=many", sets("train.steps=many"), 2, "expects int"),
    ("set-negative", "--set train.batch_size=-8", sets("train.batch_size=-8"), 2, "out of range"),
    ("set-nan", "--set optim.lr_g=nan", sets("optim.lr_g=nan"), 2, "finite number"),
    ("augment-ada-in-list", "--set train.augment=ada,translation", sets("train.augment=ada,translation"),
     2, "does not combine with DiffAugment"),
    ("set-no-equals", "--set train.steps", sets("train.steps"), 2, "expected key=value"),
    ("absurd-batch", "--set train.batch_size=10**12", sets("train.batch_size=1000000000000"), 2,
     "memory per batch"),
    ("absurd-width", "--set model.g_width=10**9", sets("model.g_width=1000000000"), 2,
     "the networks would need"),
    ("absurd-data-size", "--set data.size=10**12", sets("data.size=1000000000000"), 2,
     "for the data"),
    ("absurd-conv-width", "dcgan --set model.d_width=10**9 (shapes overflow)",
     lambda tmp, ckpt, stack: ["train", "dcgan", "--set", "model.d_width=1000000000", "--out",
                               str(tmp / "runs")], 2, "more memory than can be addressed"),
    ("diverging-lr", "a learning rate of 1e30 (diverges at once)",
     sets("optim.lr_g=1e30", "optim.lr_d=1e30"), 3, "training diverged: NaN/inf"),
    ("disk-full-foreseen", "free space below one checkpoint", disk_full_preflight, 1,
     "not enough free space"),
    ("out-is-a-file", "--out under a regular file", out_is_a_file, 1, "is a file, not a folder"),
    ("disk-full-at-checkpoint", "ENOSPC while the 3rd checkpoint is flushed",
     disk_full_during_checkpoint, 1, "No space left on device"),
    ("resume-no-checkpoint", "--resume a folder without checkpoints", resume_nothing, 1,
     "no readable checkpoint"),
    # issue 15 kind 4: work sized by user input is bounded before it is allocated
    ("yaml-alias-bomb", "--config with a 261-byte YAML alias bomb (9**8 strings once expanded)",
     yaml_alias_bomb, 2, "alias bomb"),
    ("set-alias-bomb", "--set train.batch_size=<the same alias bomb>", set_alias_bomb, 2,
     "expects int"),
    ("huge-seed-range", "sample --seeds 0-99999999", huge_seed_range, 2, "too many seeds"),
    ("seed-beyond-int64", "sample --seeds 99999999999999999999 (over 2^64)",
     sample_with("--seeds", "99999999999999999999"), 2, "seeds go up to 2^63 - 1"),
    ("seeds-empty-part", "sample --seeds 3,,4", sample_with("--seeds", "3,,4"), 2, "an empty part"),
    ("seeds-empty", "sample --seeds ''", sample_with("--seeds", ""), 2, "no seeds given"),
    # every float option is finite: click's bounds let nan through, inf made black samples
    ("out-empty", "sample --out ''", lambda tmp, ckpt, stack: ["sample", str(ckpt), "--out", ""], 2,
     "--out is empty"),
    ("truncation-inf", "sample --truncation inf", sample_with("--truncation", "inf"), 2,
     "not a finite number"),
    ("truncation-nan", "sample --truncation nan", sample_with("--truncation", "nan"), 2,
     "not a finite number"),
    ("threshold-nan", "sample --truncation-threshold nan", sample_with("--truncation-threshold", "nan"),
     2, "not a finite number"),
    ("ckpt-minutes-nan", "train --ckpt-minutes nan", lambda tmp, ckpt, stack: train_gan(
        tmp, "--ckpt-minutes", "nan"), 2, "not a finite number"),
    ("huge-walk", "interpolate --seeds 0-99999 --steps 1000", huge_walk, 2,
     "too many images in the walk"),
    ("evaluate-thumbnail", "evaluate a folder of 48x40 images and one 9x7 thumbnail",
     evaluate_thumbnail, 2, "differ too much in size"),
    ("evaluate-big-photo", "evaluate a folder of 48x40 images and one 1600x1200 photo",
     evaluate_one_big_photo, 0, '"chosen_by": "feature network"'),
    ("large-image", "an image over GANCLI_MAX_IMAGE_PIXELS beside good ones", large_image_beside_good,
     0, "over the pixel limit: scan.png"),
    ("lone-large-image", "a folder holding only an image over GANCLI_MAX_IMAGE_PIXELS",
     lone_large_image, 1, "set GANCLI_MAX_IMAGE_PIXELS=20000"),
    ("bad-pixel-limit", "GANCLI_MAX_IMAGE_PIXELS=lots", bad_pixel_limit, 2,
     "is not a positive number of pixels"),
    # kind 5: only regular files are read
    ("fifo-train", "a FIFO named pipe.png in a train folder", fifo_in_train_folder, 0,
     '"not a regular file": 1'),
    ("fifo-evaluate", "a FIFO named 000-pipe.png in an evaluate folder", fifo_in_evaluate_folder, 0,
     "not regular files"),
    # kind 6: data whose structure is not what the model needs
    ("empty-class-folder", "labels: class folder brown/ holds no image", empty_class_folder, 1,
     "class folder"),
    ("empty-class-allowed", "the same with data.allow_empty_classes=true", empty_class_allowed, 0,
     '"empty_classes": ["brown"]'),
    ("empty-domain-folder", "stargan: domain folder brown/ holds no image", empty_domain_folder, 1,
     "brown holds no usable image"),
    ("empty-trainB", "cyclegan: trainB/ is empty", empty_train_b, 1,
     "domain folder"),
    ("attribute-never-set", "stargan: attribute Bald is set for no image", attribute_set_for_no_image,
     1, "attribute Bald is set for none"),
    ("moment-longer", "resume a checkpoint whose Adam moment is one element too long",
     moment_longer, 1, "tensor opt_G.0.exp_avg is (17,) float32, its parameter is (8, 2) float32"),
    ("moment-shorter", "resume a checkpoint whose Adam second moment lost all rows but one",
     moment_shorter, 1, "its parameter is"),
    ("moment-missing", "resume a checkpoint with one Adam moment dropped", moment_missing, 1,
     "tensor opt_D.1.exp_avg is missing"),
    ("rng-missing", "resume a checkpoint without its noise generator state", rng_missing, 1,
     "tensor rng.noise is missing"),
    ("meta-step-text", "resume a checkpoint whose step is the text \"two\"", step_text, 1,
     "metadata 'step' must be an integer >= 0, found 'two'"),
    ("meta-optimizers-list", "resume a checkpoint whose optimizer state is a list",
     optimizers_list, 1, "metadata 'optimizers' must be a mapping, found list"),
    ("meta-betas-text", "resume a checkpoint whose stored Adam betas are [\"a\", 0.999]",
     betas_text, 1, "opt_G.param_groups[0].betas is ['a', 0.999]"),
    ("nan-weight", "sample from a checkpoint with a NaN in a G weight", nan_weight_sample, 1,
     "holds NaN or inf"),
    ("meta-data-shape-text", "sample from a checkpoint whose data shape is the text \"22\"",
     data_shape_text, 1, "metadata data.shape must be a list"),
    ("colour-image-added", "resume a grey folder run after a colour image was added",
     colour_image_added, 0, '"event": "done"'),
    ("class-added", "resume a labelled folder run after a class folder was added", class_added,
     1, "its class count was 2, it is now 3"),
    ("npz-labels-text", "evaluate --fake an .npz whose labels are text", npz_labels_text, 1,
     "`labels` must be 50 class indices"),
    ("npz-points-nan", "evaluate --fake an .npz of points holding a NaN", npz_points_nan, 1,
     "holds NaN or inf points"),
    ("stats-meta-list", "evaluate --real a statistics .npz whose meta is a JSON list",
     stats_meta_list, 1, "`meta` must be a JSON object"),
    ("stats-nan", "evaluate --real a statistics .npz whose mu holds a NaN", stats_nan, 1,
     "mu or sigma holds NaN or inf"),
]


def make_checkpoint(tmp: Path) -> Path:
    """A tiny gan run (2 steps) to tamper with: its final checkpoint."""
    import torch

    from gancli import checkpoints, load_config
    from gancli.reporting import Reporter
    from gancli.runs import create_run_dir, write_config
    from gancli.training.loop import train

    sets = [s for s in TINY if s != "--set" and "=" in s] + ["train.steps=2",
                                                             "train.sample_every=0"]
    cfg = load_config("gan", sets)
    run = create_run_dir(tmp, "gan")
    write_config(run, cfg)
    train(cfg, run, torch.device("cpu"), Reporter())
    return checkpoints.resolve(run)
