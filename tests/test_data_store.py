"""Dataset stores (gancli.data.store / prepare / stored) and batches read from them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gancli.config import DataConfig
from gancli.data import images, load_dataset
from gancli.data.batches import Batches
from gancli.data.base import Dataset
from gancli.data.images import load_image_folder
from gancli.data.prepare import prepare
from gancli.data.store import Store, open_store
from gancli.errors import DataError

HERE = Path(__file__).resolve().parent


def _folder(root: Path, per_class: int = 12, size=(30, 22), classes=("cat", "dog")) -> Path:
    """Random RGB JPEGs/PNGs in class sub-folders, one grey PNG, two unreadable files."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            ext = "jpg" if i % 2 else "png"
            Image.fromarray(a).save(root / c / f"{i:03d}.{ext}")
    Image.fromarray(rng.integers(0, 256, (9, 13), dtype=np.uint8), "L").save(root / classes[0] / "grey.png")
    (root / classes[1] / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / classes[0] / "notes.png").write_text("hello")
    return root


def test_round_trip_pixels_labels_classes_and_skips(tmp_path, cli):
    src = _folder(tmp_path / "src")
    r = cli("data", "prepare", str(src), "--out", str(tmp_path / "st"), "--resolution", "8",
            "--labels", "--workers", "2", "--quiet")
    assert r.code == 0, r.err
    # the unreadable files are named with the decoder's reason
    assert "cat/notes.png: UnidentifiedImageError" in r.err
    assert "dog/broken.jpg: " in r.err
    opened = open_store(tmp_path / "st")
    ref = load_image_folder(src, 8, None, None, labels=True)  # the in-memory loader
    assert opened.x.shape == ref.x.shape == (25, 3, 8, 8)
    assert torch.equal(opened.x[torch.arange(25)], ref.x)
    assert torch.equal(opened.x[3], ref.x[3]) and torch.equal(opened.x[5:9], ref.x[5:9])
    assert torch.equal(opened.x[2, 1], ref.x[2, 1])
    assert torch.equal(opened.x[torch.tensor([7, 1]), :, 2:4], ref.x[torch.tensor([7, 1]), :, 2:4])
    assert torch.equal(opened.y, ref.y) and opened.store.classes == ref.classes == ["cat", "dog"]
    meta = opened.store.meta
    assert meta["counts"] == [13, 12] and meta["skipped"] == 2
    assert sorted(rel for rel, _ in meta["skipped_examples"]) == ["cat/notes.png", "dog/broken.jpg"]
    # info reports it; --verify re-hashes every byte
    r = cli("data", "info", str(tmp_path / "st"), "--verify", "--json")
    info = json.loads(r.out)
    assert r.code == 0 and info["n"] == 25 and info["counts"] == [13, 12]
    names = opened.store.names()  # each sample's source file, in the order of the listing
    assert names == sorted(images.list_image_files(src)[0][i][0] for i in range(27)
                           if images.list_image_files(src)[0][i][0] not in ("cat/notes.png", "dog/broken.jpg"))
    names_bytes = os.path.getsize(tmp_path / "st" / "names.jsonl")
    assert names_bytes == sum(len(json.dumps(n)) + 1 for n in names)
    assert info["bytes"] == 25 * 3 * 64 + 25 * 8 + names_bytes and info["verified"] == "sha256"
    # --data STORE gives the same dataset as the folder itself
    ds = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8, labels=True))
    assert len(ds) == 25 and ds.shape == (3, 8, 8) and ds.classes == ["cat", "dog"]


def test_one_worker_and_many_give_the_same_bytes(tmp_path):
    src = _folder(tmp_path / "src", per_class=20)
    a = prepare(src, tmp_path / "a", 8, workers=1)
    b = prepare(src, tmp_path / "b", 8, workers=2)
    assert (tmp_path / "a" / "pixels.u8").read_bytes() == (tmp_path / "b" / "pixels.u8").read_bytes()
    assert a["n"] == b["n"] == 41 and a["status"] == "prepared"
    assert prepare(src, tmp_path / "a", 8)["status"] == "exists"  # same files, same settings
    with pytest.raises(DataError, match="other files or settings"):
        prepare(src, tmp_path / "a", 4)


def test_shared_slots_are_reused_only_after_their_chunk_is_written(tmp_path, monkeypatch):
    """Chunks of one file each, many more than the pool's slots: every slot is decoded into
    again and again while others are in flight, and the store still equals the in-process one
    (a slot handed out again too early would repeat or mix rows)."""
    import gancli.data.prepare as p

    src = _folder(tmp_path / "src", per_class=20)
    a = prepare(src, tmp_path / "a", 8, workers=1)
    monkeypatch.setattr(p, "CHUNK_BYTES", 3 * 8 * 8)  # one RGB file per chunk: 43 chunks
    b = prepare(src, tmp_path / "b", 8, workers=2)
    pool = p._Pool(2, 1)
    assert pool.depth < 43
    pool.close()
    for name in ("pixels.u8", "names.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a["n"] == b["n"] == 41 and b["skipped"] == a["skipped"] == 2


def _loaders(tmp_path):
    src = _folder(tmp_path / "src", per_class=9)
    prepare(src, tmp_path / "st", 8, labels=True, workers=1)
    ram = load_image_folder(src, 8, None, None, labels=True)
    store = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8, labels=True))
    assert not isinstance(store.x, torch.Tensor)
    return ram, store


def test_store_batches_are_bit_identical_to_in_memory_ones(tmp_path):
    ram, store = _loaders(tmp_path)
    for world in (1, 2):
        for rank in range(world):
            a = Batches(ram, 4, seed=3, device=torch.device("cpu"), flip=True, rank=rank, world=world)
            b = Batches(store, 4, seed=3, device=torch.device("cpu"), flip=True, rank=rank, world=world)
            assert b.stream and not a.stream
            for _ in range(13):  # several epochs of 19 samples: the wrap-around included
                (xa, ya), (xb, yb) = a.next(), b.next()
                assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batch_order_is_deterministic_and_resumes_at_any_position(tmp_path):
    _, store = _loaders(tmp_path)
    straight = Batches(store, 5, seed=1, device=torch.device("cpu"), flip=True)
    seen = [straight.next()[0] for _ in range(10)]
    again = Batches(store, 5, seed=1, device=torch.device("cpu"), flip=True)
    assert all(torch.equal(x, again.next()[0]) for x in seen)
    other = Batches(store, 5, seed=2, device=torch.device("cpu"), flip=True)
    assert not torch.equal(seen[0], other.next()[0])
    resumed = Batches(store, 5, seed=1, device=torch.device("cpu"), flip=True)
    resumed.next()  # a read-ahead is pending for position 5 ...
    resumed.pos = 6 * 5  # ... when a resume moves the position
    assert all(torch.equal(seen[i], resumed.next()[0]) for i in range(6, 10))


def test_reads_run_concurrently_ahead_and_give_the_same_batches(tmp_path, monkeypatch):
    import threading

    import gancli.data.store as store_mod

    src = _folder(tmp_path / "src", per_class=10)
    prepare(src, tmp_path / "st", 4, workers=1)
    ds = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=4))
    mem = Batches(Dataset("ram", "images", ds.x[torch.arange(len(ds))]), 8, seed=7,
                  device=torch.device("cpu"), flip=True)
    want = [mem.next()[0] for _ in range(6)]
    real, lock, now = os.preadv, threading.Lock(), [0, 0]

    def slow(fd, bufs, offset):  # a disk that takes 10 ms per read, however many wait
        with lock:
            now[0] += 1
            now[1] = max(now[1], now[0])
        time.sleep(0.01)
        with lock:
            now[0] -= 1
        return real(fd, bufs, offset)

    monkeypatch.setattr(store_mod.os, "preadv", slow)
    for threads in (1, 3, 32):
        now[1] = 0
        b = Batches(ds, 8, seed=7, device=torch.device("cpu"), flip=True, read_threads=threads)
        got = [b.next()[0] for _ in range(6)]
        assert all(torch.equal(g, w) for g, w in zip(got, want)), threads
        # bounded: two batches read ahead, buffers made once
        assert b.ahead == 2 and len(b._bufs) == 3
        want_most = min(threads, 8)  # a batch's reads wait together (one may start late)
        assert now[1] == 1 if threads == 1 else want_most - 1 <= now[1] <= want_most, now[1]
        b.pos = 8 * 3  # a resume drops the reads ahead and reads from the new position
        assert torch.equal(b.next()[0], want[3]) and torch.equal(b.next()[0], want[4])
        b.close()


def test_the_kernel_is_told_the_samples_of_the_batches_ahead(tmp_path, monkeypatch):
    import gancli.data.store as store_mod
    from gancli.data.translation import PairedImages

    src = _folder(tmp_path / "src", per_class=10)
    prepare(src, tmp_path / "st", 4, workers=1)
    ds = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=4))
    advised: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def record(fd, offset, length, advice):
        if advice == os.POSIX_FADV_WILLNEED:
            advised.append((fd, offset, length))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(store_mod.os, "posix_fadvise", record)
    b = Batches(ds, 5, seed=2, device=torch.device("cpu"), read_threads=2)
    b.next()
    b._advice.submit(lambda: None).result()  # the advice thread has caught up
    size = 3 * 4 * 4
    want = [int(i) * size for pos in (0, 5, 10) for i in b._plan(pos).idx]  # this one + 2 ahead
    assert [o for _, o, _ in advised] == want and {n for _, _, n in advised} == {size}
    b.close()
    advised.clear()
    a, bb = (open_store(tmp_path / "st").x for _ in range(2))
    pairs = PairedImages(a, bb, seed=1)
    pairs.will_need([3])  # the A image 3 and the B image perm[3]
    assert advised == [(a._fd, 3 * size, size), (bb._fd, int(pairs.perm[3]) * size, size)]


def test_a_failing_store_read_is_one_line_naming_the_file(tmp_path, cli, monkeypatch):
    import errno

    import gancli.data.store as store_mod

    src = _folder(tmp_path / "src", per_class=10)
    prepare(src, tmp_path / "st", 8, workers=1)
    pixels = tmp_path / "st" / "pixels.u8"
    ds = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8))
    real, calls = os.preadv, [0]

    def failing(fd, bufs, offset):
        calls[0] += 1
        if calls[0] > 20:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, bufs, offset)

    monkeypatch.setattr(store_mod.os, "preadv", failing)
    b = Batches(ds, 4, seed=0, device=torch.device("cpu"), read_threads=8)
    with pytest.raises(DataError, match=f"{pixels}.*Input/output error"):
        for _ in range(10):
            b.next()
    b.close()
    common = ["train", "dcgan", "--data", str(tmp_path / "st"), "--batch-size", "4", "--quiet",
              "--set", "data.resolution=8", "--set", "model.g_width=4", "--set", "model.d_width=4",
              "--sample-every", "0", "--ckpt-every", "0", "--steps", "20"]
    calls[0] = 0
    r = cli(*common, "--out", str(tmp_path / "r1"))
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert len(r.err.strip().splitlines()) == 2 and f"{pixels} cannot be read: Input/output error" in r.err
    monkeypatch.setattr(store_mod.os, "preadv", real)
    ds = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8))  # checked, then ...
    os.truncate(pixels, 5 * 3 * 8 * 8 + 10)  # ... truncated while in use
    b = Batches(ds, 4, seed=0, device=torch.device("cpu"), read_threads=8)
    with pytest.raises(DataError, match=f"{pixels} ended early"):
        for _ in range(10):
            b.next()
    b.close()


def test_random_crop_is_per_sample_deterministic_and_center_crop_is_fixed(tmp_path):
    src = _folder(tmp_path / "src", per_class=6)
    cfg = DataConfig(source=str(src), resolution=6, crop_scale=1.5, crop="random", cache=False)
    ds = load_dataset(cfg)
    assert ds.x.shape[-1] == 9 and ds.shape == (3, 6, 6)
    wide = ds.x[torch.arange(len(ds))]
    b = Batches(ds, 4, seed=0, device=torch.device("cpu"))
    x, _ = b.next()
    assert x.shape == (4, 3, 6, 6)
    plan = b._plan(0)
    for k in range(4):  # each sample is its own window of the 9 px image
        i, t, l = int(plan.idx[k]), int(plan.top[k]), int(plan.left[k])
        want = wide[i, :, t:t + 6, l:l + 6].float() / 127.5 - 1
        assert torch.equal(x[k], want)
    assert len({(int(t), int(l)) for t, l in zip(plan.top, plan.left)}) > 1
    center = load_dataset(DataConfig(source=str(src), resolution=6, crop_scale=1.5, cache=False))
    xc, _ = Batches(center, 4, seed=0, device=torch.device("cpu")).next()
    assert torch.equal(xc[0], wide[int(plan.idx[0]), :, 1:7, 1:7].float() / 127.5 - 1)


def test_damaged_store_is_refused_naming_the_file(tmp_path, cli):
    src = _folder(tmp_path / "src")
    prepare(src, tmp_path / "st", 16, labels=True, workers=1)
    pixels, labels, meta = (tmp_path / "st" / n for n in ("pixels.u8", "labels.i64", "meta.json"))
    good = pixels.read_bytes()

    def refused(*names):
        r = cli("data", "info", str(tmp_path / "st"))
        assert r.code == 1 and len(r.err.strip().splitlines()) == 2, r.err  # error + hint
        assert all(n in r.err for n in names), r.err
        assert "Traceback" not in r.err
        return r

    pixels.write_bytes(good[:-100])  # truncated
    refused("pixels.u8", "truncated")
    r = cli("train", "dcgan", "--data", str(tmp_path / "st"), "--set", "data.resolution=16",
            "--steps", "1", "--out", str(tmp_path / "runs"))
    assert r.code == 1 and "pixels.u8" in r.err and not (tmp_path / "runs").exists()
    edited = bytearray(good)
    edited[10] ^= 0xFF  # inside a fingerprinted block: caught on every open
    pixels.write_bytes(bytes(edited))
    refused("pixels.u8", "edited")
    pixels.write_bytes(good)
    r = cli("data", "info", str(tmp_path / "st"), "--verify")
    assert r.code == 0, r.err
    # an edit the quick check may miss is found by --verify
    big = tmp_path / "big"
    prepare(src, big, 64, workers=1)  # 25 x 12288 bytes: more than the sampled blocks
    raw = bytearray((big / "pixels.u8").read_bytes())
    raw[4096 + 10] ^= 0xFF  # between the first and the second sampled block
    (big / "pixels.u8").write_bytes(bytes(raw))
    assert cli("data", "info", str(big)).code == 0  # sizes and fingerprint still match
    r = cli("data", "info", str(big), "--verify")
    assert r.code == 1 and "pixels.u8" in r.err and "sha256" in r.err
    good_labels = labels.read_bytes()
    labels.write_bytes(good_labels[:-8])
    refused("labels.i64")
    labels.write_bytes(good_labels)
    names = tmp_path / "st" / "names.jsonl"
    names.write_bytes(names.read_bytes().replace(b'"cat/', b'"dog/', 1))  # same size, edited
    refused("names.jsonl", "edited")
    meta.write_text(meta.read_text().replace('"n": 25', '"n": 26'))
    refused("meta.json", "inconsistent")
    meta.write_text("{not json")
    refused("meta.json")


_SLOW_PREPARE = """
import sys, time
from gancli.data import images, prepare as p
decode = images.decode_image
def slow(*a, **k):
    time.sleep(0.02)
    return decode(*a, **k)
images.decode_image = slow
p.JOURNAL_EVERY_S = 0.0
p.CHUNK_BYTES = 8 * 8 * 3 * 4  # 4 files per chunk
p.prepare(sys.argv[1], sys.argv[2], 8, labels=True, workers=2)
"""


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and text in Path(f"/proc/{d}/cmdline").read_bytes().decode(errors="replace"):
                found.append(int(d))
        except OSError:
            pass
    return found


def test_sigkill_during_prepare_then_the_same_command_gives_the_same_store(tmp_path, cli):
    src = _folder(tmp_path / "src", per_class=30)
    ref = prepare(src, tmp_path / "ref", 8, labels=True, workers=1)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PREPARE, str(src), str(out)], env=env)
    journal = tmp_path / "killed.partial" / "journal.json"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and json.loads(journal.read_text() or "{}").get("done", 0) >= 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # its decoding workers end with it (no orphan keeps running)
    while _processes_mentioning(str(out)) and time.time() < deadline:
        time.sleep(0.05)
    assert not _processes_mentioning(str(out))
    assert not out.exists() and (tmp_path / "killed.partial").is_dir()
    r = cli("data", "info", str(tmp_path / "killed.partial"))  # never read as a store
    assert r.code == 1 and "interrupted" in r.err
    r = cli("data", "prepare", str(src), "--out", str(out), "--resolution", "8", "--labels",
            "--workers", "1", "--json")
    done = json.loads(r.out.strip().splitlines()[-1])
    assert r.code == 0 and done["status"] == "resumed", r.out + r.err
    assert not (tmp_path / "killed.partial").exists()
    a, b = Store(tmp_path / "ref"), Store(out)
    assert a.meta["files"] == b.meta["files"]  # byte sizes, sha256 and fingerprints
    assert (a.meta["skipped_examples"], a.meta["counts"]) == (b.meta["skipped_examples"], b.meta["counts"])
    assert ref["n"] == b.n == 61


def test_unreadable_folder_and_missing_store_are_one_line_errors(tmp_path, cli):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("no")
    r = cli("data", "prepare", str(tmp_path / "junk"), "--out", str(tmp_path / "st"))
    assert r.code == 1 and "no usable image" in r.err and not (tmp_path / "st").exists()
    assert not (tmp_path / "st.partial").exists()
    r = cli("data", "info", str(tmp_path / "nope"))
    assert r.code == 1 and "neither a dataset store nor an image folder" in r.err


def test_preflight_refuses_before_decoding(tmp_path, cli, monkeypatch):
    src = _folder(tmp_path / "src")

    def no_decode(*a, **k):
        raise AssertionError("decoded before the preflight refused")

    monkeypatch.setattr(images, "decode_image", no_decode)
    # a store that cannot fit on the disk: refused before any decoding, nothing written
    import shutil as sh
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    r = cli("data", "prepare", str(src), "--out", str(tmp_path / "st"), "--resolution", "64")
    assert r.code == 1 and "not enough free space" in r.err and "hint:" in r.err
    assert not (tmp_path / "st").exists() and not (tmp_path / "st.partial").exists()
    monkeypatch.undo()
    # generated data held in memory that cannot fit: refused before drawing it, exit 2;
    # 10,000 default shapes at 64 px: 10,000 x 64^2 x (3 channels + 1 mask) bytes = 164 MB
    from gancli import preflight
    from gancli.data import shapes

    monkeypatch.setattr(shapes, "draw_masks", no_decode)
    monkeypatch.setattr(preflight, "memory_bytes", lambda device="cpu": 200_000_000)
    r = cli("train", "dcgan", "--data", "shapes", "--set", "data.resolution=64", "--steps", "1",
            "--out", str(tmp_path / "runs"))
    assert r.code == 2 and "shapes at 64 px needs about 0.164 GB" in r.err, r.err
    assert "lower data.resolution" in r.err and not (tmp_path / "runs").exists()
    # shapes-colours: 5,000 x 128^2 x 4 bytes = 328 MB > 0.8 x 200 MB; 1,000 at 64 px fits
    r = cli("train", "stargan", "--data", "domains:shapes-colours", "--set", "data.size=5000",
            "--set", "data.resolution=128", "--steps", "1", "--out", str(tmp_path / "runs"))
    assert r.code == 2 and "data.size=5000 needs about 0.328 GB" in r.err, r.err
    assert "hint: lower data.size" in r.err
    from gancli import load_config

    fits = load_config("stargan", ["data.source=domains:shapes-colours", "data.size=1000",
                                   "data.resolution=64"])
    preflight.check_data_size(fits)  # 16 MB: no error


def test_resume_with_a_store_is_bit_identical(tmp_path, cli):
    from safetensors.torch import load_file

    src = _folder(tmp_path / "src", per_class=10)
    assert cli("data", "prepare", str(src), "--out", str(tmp_path / "st"), "--resolution", "8",
               "-q").code == 0
    common = ["--data", str(tmp_path / "st"), "--batch-size", "4", "--quiet", "--set",
              "data.resolution=8", "--set", "model.g_width=4", "--set", "model.d_width=4",
              "--set", "data.flip=true", "--sample-every", "0", "--ckpt-every", "3"]
    assert cli("train", "dcgan", "--steps", "8", "--out", str(tmp_path / "a"), *common).code == 0
    r = cli("train", "dcgan", "--steps", "3", "--out", str(tmp_path / "b"), *common)
    assert r.code == 0, r.err
    r = cli("train", "--resume", str(tmp_path / "b" / "dcgan-001"), "--steps", "8", "--quiet")
    assert r.code == 0, r.err
    a = load_file(str(tmp_path / "a/dcgan-001/checkpoints/step-0000008.safetensors"))
    b = load_file(str(tmp_path / "b/dcgan-001/checkpoints/step-0000008.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_folder_is_prepared_into_the_cache_with_progress(tmp_path, cli):
    src = _folder(tmp_path / "src")
    args = ["train", "dcgan", "--data", str(src), "--steps", "1", "--batch-size", "4",
            "--set", "data.resolution=8", "--set", "model.g_width=4", "--set", "model.d_width=4",
            "--sample-every", "0", "--out", str(tmp_path / "runs")]
    r = cli(*args)
    assert r.code == 0, r.err
    assert "preparing data: 27/27 files (100%)" in r.err and "2 skipped" in r.err
    stores = list((Path(os.environ["GANCLI_CACHE"]) / "datasets").glob("store-*"))
    assert len(stores) == 1 and Store(stores[0]).n == 25
    r = cli(*args, "--json")
    events = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and events[0]["event"] == "start"  # a cache hit decodes nothing
    assert events[0]["data_info"]["cache"] == "hit"


def test_rank_sharding_under_two_gloo_processes(tmp_path):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("no gloo backend in this PyTorch build")
    from test_distributed import torchrun

    src = _folder(tmp_path / "src", per_class=9)
    prepare(src, tmp_path / "st", 8, workers=1)
    torchrun(str(HERE / "store_dist_worker.py"), str(tmp_path / "st"), str(tmp_path))
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # each rank read exactly its half of every global batch, nothing else
    ram = Dataset("ram", "images", open_store(tmp_path / "st").x[torch.arange(19)])
    whole = Batches(ram, 6, seed=5, device=torch.device("cpu"), flip=True)
    for step in range(7):
        plan = whole._plan(step * 6)
        assert got[0]["read"][step] == plan.idx[:3].tolist()
        assert got[1]["read"][step] == plan.idx[3:].tolist()
    assert got[0]["identical"] and got[1]["identical"]


def test_crop_applies_to_builtins_and_translation_pairs_alike():
    cfg = DataConfig(source="pair:digits-recoloured", resolution=8, crop_scale=1.5, crop="random")
    ds = load_dataset(cfg, task="translation")
    assert ds.x.shape[-1] == 12 and ds.shape == (2, 3, 8, 8)
    b = Batches(ds, 4, seed=0, device=torch.device("cpu"))
    x, _ = b.next()
    plan = b._plan(0)
    i, t, l = int(plan.idx[1]), int(plan.top[1]), int(plan.left[1])
    assert x.shape == (4, 2, 3, 8, 8)
    assert torch.equal(x[1], ds.x[i, :, :, t:t + 8, l:l + 8].float() / 127.5 - 1)  # A and B alike
    assert ds.fit(ds.x[:2]).shape == (2, 2, 3, 8, 8)  # previews see the centre window
    digits = load_dataset(DataConfig(source="digits", resolution=8, crop_scale=1.5))
    assert digits.x.shape[-1] == 12 and digits.shape == (1, 8, 8)


def test_progress_modes_report_files_per_second_and_eta():
    import io

    from gancli.data.progress import PrepareProgress

    tick = {"phase": "decode", "done": 50, "total": 100, "used": 49, "skipped": 1,
            "files_s": 25.0, "eta_s": 2.0}
    for mode, want in (("plain", "50/100 files (50%), 25 files/s, ETA 00:02, 1 skipped"),
                       ("rich", "25 files/s"), ("json", '"files_s": 25.0')):
        out = io.StringIO()
        p = PrepareProgress(mode, stream=out)
        p(tick)
        p({**tick, "done": 100, "eta_s": 0.0})
        p.close()
        assert want in out.getvalue(), (mode, out.getvalue())
    lines = [json.loads(s) for s in out.getvalue().splitlines()]
    assert lines[-1]["event"] == "prepare" and lines[-1]["done"] == 100  # the last one always


def test_evaluate_reads_a_store_and_a_folder_alike(tmp_path, cli):
    from gancli.data.digits import load_digits

    x = load_digits(16).x[:60, 0].numpy()
    (tmp_path / "imgs").mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img).save(tmp_path / "imgs" / f"{i:03d}.png")
    assert cli("data", "prepare", str(tmp_path / "imgs"), "--out", str(tmp_path / "st"),
               "--resolution", "16", "-q").code == 0
    scores = []
    for spec in (tmp_path / "imgs", tmp_path / "st"):
        r = cli("evaluate", "fid", "--features", "digits", "--fake", str(spec), "--real", "digits",
                "--json", "--no-cache")
        assert r.code == 0, r.err
        out = json.loads(r.out)
        assert out["samples"]["fake"] == 60
        scores.append(out["values"]["fd_digits"]["mean"])
    assert scores[0] == scores[1]  # the same pixels, read from the folder's cached store or the store
    # neither is one tensor of the whole set; preparing a new folder shows progress
    from gancli.data.store import LazyImages
    from gancli.metrics.sources import resolve_source

    for spec in (tmp_path / "imgs", tmp_path / "st"):
        assert isinstance(resolve_source(str(spec), torch.device("cpu")).x, LazyImages)
    (tmp_path / "imgs" / "000.png").unlink()  # another listing: prepared again
    r = cli("evaluate", "fid", "--features", "digits", "--fake", str(tmp_path / "imgs"), "--real",
            "digits", "--no-cache")
    assert r.code == 0 and "preparing data: 59/59 files (100%)" in r.err, r.err
    assert list((Path(os.environ["GANCLI_CACHE"]) / "datasets").glob("store-*"))


def test_a_store_with_an_empty_class_folder_is_refused_like_the_folder(tmp_path, cli):
    """A class folder without a usable image must not vanish and shift every later label."""
    src = _folder(tmp_path / "src", per_class=3, classes=("ant", "bee", "cow"))
    for f in (src / "bee").iterdir():
        f.unlink()
    (src / "bee" / "junk.png").write_text("not an image")
    r = cli("data", "prepare", str(src), "--out", str(tmp_path / "st"), "--resolution", "8",
            "--labels", "--quiet")
    assert r.code == 0, r.err
    cfg = DataConfig(source=str(tmp_path / "st"), resolution=8, labels=True)
    with pytest.raises(DataError, match=r"class folder .*bee holds no usable image"):
        load_dataset(cfg)
    with pytest.raises(DataError, match=r"class folder .*bee holds no usable image"):
        load_dataset(DataConfig(source=str(src), resolution=8, labels=True, cache=False))
    allowed = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8, labels=True,
                                      allow_empty_classes=True))
    assert allowed.classes == ["ant", "cow"] and allowed.info["empty_classes"] == ["bee"]


def test_a_fifo_and_a_too_large_image_are_named_in_the_store_path(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", per_class=2, classes=("a", "b"))
    os.mkfifo(src / "a" / "pipe.png")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(src / "a" / "big.png")
    monkeypatch.setenv("GANCLI_MAX_IMAGE_PIXELS", "20000")
    ds = load_dataset(DataConfig(source=str(src), resolution=8, cache=False))
    notes = " | ".join(ds.info["notes"])
    assert "not regular files (FIFOs, sockets, devices): a/pipe.png" in notes
    assert "over the pixel limit: a/big.png: too large" in notes
    assert ds.info["skipped_reasons"]["not a regular file"] == 1


def test_translation_folder_is_read_from_two_stores_as_make_pairs_would(tmp_path):
    from gancli.data.store import LazyImages
    from gancli.data.translation import PairedImages, make_pairs

    rng = np.random.default_rng(1)
    root = tmp_path / "h2z"
    for d, n, mode in (("trainA", 7, "L"), ("trainB", 11, "RGB"), ("testA", 3, "RGB"),
                       ("testB", 2, "RGB")):
        (root / d).mkdir(parents=True)
        for i in range(n):
            shape = (14, 12) if mode == "L" else (14, 12, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / d / f"{i}.png")
    cfg = DataConfig(source=str(root), resolution=8, crop_scale=1.25, crop="random")
    ds = load_dataset(cfg, task="translation")
    assert isinstance(ds.x, PairedImages) and isinstance(ds.test, LazyImages)  # no whole tensor
    assert ds.kind == "pairs" and ds.x.shape == (11, 2, 3, 10, 10) and ds.shape == (2, 3, 8, 8)
    assert ds.info["samples_A"] == 7 and ds.info["samples_B"] == 11 and ds.info["test"] == 3
    # the same samples as the in-memory pairing of the decoded folders (grey A made RGB)
    a, b = (load_image_folder(root / d, 10, 3, None).x for d in ("trainA", "trainB"))
    ref = make_pairs(a, b)
    assert torch.equal(ds.x[torch.arange(11)], ref) and torch.equal(ds.x[4], ref[4])
    ta, tb = (load_image_folder(root / d, 10, 3, None).x for d in ("testA", "testB"))
    assert torch.equal(ds.test[:], make_pairs(ta, tb))
    # batches (random crops, flips) from the stores equal those from the tensor
    mem = Dataset(ds.name, "pairs", ref, crop_to=8, crop="random")
    s, m = (Batches(d, 4, seed=3, device=torch.device("cpu"), flip=True) for d in (ds, mem))
    assert s.stream and not m.stream
    for _ in range(4):
        assert torch.equal(s.next()[0], m.next()[0])
    s.close()


def test_attribute_folder_is_read_from_a_store_by_file_name(tmp_path):
    from gancli.data.store import RowImages

    rng = np.random.default_rng(2)
    root = tmp_path / "celeba"
    root.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (10, 9, 3), dtype=np.uint8)).save(root / f"{i:06d}.jpg")
    (root / "000006.jpg").write_bytes(b"not a jpeg")  # listed, unreadable: skipped and counted
    rows = ["000006.jpg 1 -1", "000004.jpg 1 1", "000001.jpg -1 1", "000002.jpg 1 -1",
            "000009.jpg 1 1"]  # 000000, 000003 and 000005 unlisted; 000009 absent
    (root / "list_attr_celeba.txt").write_text("5\nBlack_Hair Male\n" + "\n".join(rows) + "\n")
    cfg = DataConfig(source=str(root), resolution=8, attributes="Black_Hair,Male")
    ds = load_dataset(cfg, task="multi-domain")
    assert isinstance(ds.x, RowImages) and ds.classes == ["Black_Hair", "Male"]
    assert ds.info["files"] == 4 and ds.info["skipped"] == 1  # 6 is listed but unreadable
    ref = load_image_folder(root, 8, 3, None).x  # 000000 ... 000005 in file order
    assert torch.equal(ds.x[:], ref[torch.tensor([1, 2, 4])])
    assert ds.y.tolist() == [[0, 1], [1, 0], [1, 1]]
    sub = load_dataset(DataConfig(source=str(root), resolution=8, attributes="Black_Hair,Male",
                                  size=2, allow_empty_classes=True), task="multi-domain")
    assert torch.equal(sub.x[:], ref[torch.tensor([1, 2])]) and len(sub) == 2
    # a store prepared from the folder: the table is found next to its source folder
    prepare(root, tmp_path / "st", 8)
    st = load_dataset(DataConfig(source=str(tmp_path / "st"), resolution=8,
                                 attributes="Black_Hair,Male"), task="multi-domain")
    assert isinstance(st.x, RowImages) and torch.equal(st.x[:], ds.x[:]) and torch.equal(st.y, ds.y)
