"""The typed config: parsing, validation, precedence."""

from __future__ import annotations

import pytest

from gancli.config import (Config, check_layer, describe_schema, from_dict, load_config_file, parse_set,
                           resolve, schema_keys)
from gancli.errors import ConfigError
from gancli.presets import load_preset


def test_set_values_are_typed_by_the_schema():
    layer = parse_set(["train.steps=10", "optim.lr_g=1e-4", "data.flip=true", "data.channels=null",
                       "loss.name=hinge", "data.source=./my folder"])
    assert layer["train"]["steps"] == 10 and isinstance(layer["train"]["steps"], int)
    assert layer["optim"]["lr_g"] == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string
    assert layer["data"]["flip"] is True
    assert layer["data"]["channels"] is None
    assert layer["loss"]["name"] == "hinge"
    assert layer["data"]["source"] == "./my folder"


@pytest.mark.parametrize("item, words", [
    ("train.stepz=3", ["unknown config key 'train.stepz'", "did you mean 'train.steps'"]),
    ("trian.steps=3", ["unknown config key 'trian.steps'", "train"]),
    ("optim.lr_g=fast", ["expects float"]),
    ("train.steps=1.5", ["expects int"]),
    ("train.steps=0", ["out of range"]),
    ("train.steps=-5", ["out of range"]),
    ("optim.name=adamw", ["bad value 'adamw'", "adam"]),
    ("model.g_norm=btach", ["did you mean 'batch'"]),
    ("data.flip=maybe", ["expects bool"]),
    ("optim.lr_g=.nan", ["finite"]),
    ("novalue", ["expected key=value"]),
    ("=3", ["expected key=value"]),
])
def test_bad_set_is_a_config_error_naming_the_key(item, words):
    with pytest.raises(ConfigError) as e:
        parse_set([item])
    text = e.value.message + " " + (e.value.hint or "")
    for w in words:
        assert w in text
    assert e.value.exit_code == 2


def test_precedence_defaults_preset_file_set_flags(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("train:\n  steps: 111\n  batch_size: 7\noptim:\n  lr_g: 0.001\n")
    cfg = resolve([
        ("preset", load_preset("dcgan")),
        ("file", load_config_file(user)),
        ("--set", parse_set(["train.steps=222", "train.seed=5"])),
        ("flags", {"train": {"steps": 333}}),
    ])
    assert cfg.train.steps == 333           # flag beats --set beats file beats preset
    assert cfg.train.seed == 5              # --set beats defaults
    assert cfg.train.batch_size == 7        # file beats preset
    assert cfg.optim.lr_g == pytest.approx(1e-3)
    assert cfg.model.family == "dcgan"      # preset beats defaults
    assert cfg.optim.beta2 == Config().optim.beta2  # untouched default


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config_file(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_config_file(evil)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train: 3\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config_file(wrong)


def test_round_trip_through_dict():
    cfg = resolve([("preset", load_preset("wgan-gp"))])
    again = resolve([("saved", cfg.to_dict())])
    assert again == cfg
    assert cfg.regularizers == ["gp"]


def test_schema_is_documented():
    rows = describe_schema()
    assert {r[0] for r in rows} == set(schema_keys())
    assert all(r[3] for r in rows), "every config key needs a help text"


def test_check_layer_rejects_unknown_sections():
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        check_layer({"bogus": {"x": 1}}, "test")


def test_every_key_is_in_the_docs():
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "presets.md").read_text()
    missing = [k for k in schema_keys() if f"`{k}`" not in docs]
    assert not missing, f"docs/presets.md lacks {missing}"
    from gancli.config import MOVED_KEYS

    moved = [old for old, new in MOVED_KEYS.items() if f"| `{old}` | `{new}` |" not in docs]
    assert not moved, f"docs/presets.md's table of moved keys lacks {moved}"


# -- sections registered by an objective or a toolbox ------------------------------------------


def test_a_registered_section_is_walked_like_a_builtin_one(tmp_path):
    """pix2pix's own section (declared in its objective module): --set typing, ranges,
    suggestions, YAML files, the docs rows, to_dict and the typed accessor."""
    from gancli.training.objectives.pix2pix import Pix2PixConfig

    assert {"pix2pix.l1_weight", "pix2pix.gan_weight"} <= set(schema_keys())
    rows = {r[0]: r for r in describe_schema()}
    assert rows["pix2pix.l1_weight"][1:3] == ("float", "100.0")
    layer = parse_set(["pix2pix.l1_weight=50", "ada.kimg=1e2", "stylegan2.r1_every=16"])
    assert layer == {"pix2pix": {"l1_weight": 50.0}, "ada": {"kimg": 100.0},
                     "stylegan2": {"r1_every": 16}}
    for item, words in [("pix2pix.l1_weight=-1", ["out of range"]),
                        ("stylegan2.r1_every=1.5", ["expects int"]),
                        ("pix2pix.l1_wieght=3", ["did you mean 'pix2pix.l1_weight'"]),
                        ("pix2px.l1_weight=3", ["did you mean 'pix2pix.l1_weight'", "pix2pix"])]:
        with pytest.raises(ConfigError) as e:
            parse_set([item])
        assert all(w in f"{e.value.message} {e.value.hint}" for w in words), (item, e.value)
    user = tmp_path / "user.yaml"
    user.write_text("pix2pix:\n  gan_weight: 0\n")
    cfg = resolve([("preset", load_preset("pix2pix")), ("file", load_config_file(user)),
                   ("--set", layer)])
    own = cfg.section(Pix2PixConfig)
    assert (own.l1_weight, own.gan_weight) == (50.0, 0.0)
    saved = cfg.to_dict()
    assert saved["pix2pix"] == {"l1_weight": 50.0, "gan_weight": 0.0}
    assert list(saved)[-len(cfg.sections):] == sorted(cfg.sections)  # after the shared ones
    assert resolve([("saved", saved)]) == cfg
    import yaml

    assert yaml.safe_load(cfg.to_yaml())["stylegan2"]["r1_every"] == 16


def test_every_moved_key_typed_by_a_user_names_its_new_place(tmp_path):
    from gancli.config import MOVED_KEYS

    for old, new in MOVED_KEYS.items():
        with pytest.raises(ConfigError) as e:
            parse_set([f"{old}=1"])
        assert e.value.message.startswith(f"config key '{old}' has moved to '{new}'")
        assert e.value.exit_code == 2 and f"write {new} instead" in e.value.hint
    user = tmp_path / "old.yaml"
    user.write_text("loss:\n  l1_weight: 10\n")
    with pytest.raises(ConfigError, match="'loss.l1_weight' has moved to 'pix2pix.l1_weight'"):
        load_config_file(user)


def test_a_moved_key_on_the_command_line_is_one_line_exit_2(cli):
    r = cli("train", "pix2pix", "--set", "loss.l1_weight=5", "--dry-run")
    assert r.code == 2 and "'loss.l1_weight' has moved to 'pix2pix.l1_weight'" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) <= 2  # error + hint
    r = cli("train", "pix2pix", "--set", "pix2pix.l1_weight=5", "--dry-run", "--json")
    import json

    assert r.code == 0 and json.loads(r.out)["pix2pix"]["l1_weight"] == 5.0


def test_upgrade_stored_moves_old_keys_with_their_values():
    """A config as format-1 checkpoints and run folders stored it (literal old names)."""
    from gancli.config import upgrade_stored

    old = {"name": "x", "loss": {"name": "hinge", "l1_weight": 50.0, "gan_weight": 0.0,
                                 "info_weight": 0.5, "cycle_weight": 5.0, "identity_weight": 0.1,
                                 "rec_weight": 3.0, "cls_fake": 0.0, "cls_weight": 2.0},
           "reg": {"r1": 0.01, "r1_every": 16, "pl": 2.0},
           "train": {"steps": 7, "ada_target": 0.7, "ada_kimg": 100.0, "style_mixing": 0.9,
                     "phase_images": 4800}}
    frozen = repr(old)
    new = upgrade_stored(old)
    assert repr(old) == frozen  # the input is not changed
    assert new == {"name": "x", "loss": {"name": "hinge", "cls_weight": 2.0},
                   "reg": {"r1": 0.01}, "train": {"steps": 7},
                   "pix2pix": {"l1_weight": 50.0, "gan_weight": 0.0},
                   "infogan": {"info_weight": 0.5},
                   "cycle": {"cycle_weight": 5.0, "identity_weight": 0.1},
                   "stargan": {"rec_weight": 3.0}, "acgan": {"cls_fake": 0.0},
                   "stylegan2": {"r1_every": 16, "pl_weight": 2.0, "style_mixing": 0.9},
                   "ada": {"target": 0.7, "kimg": 100.0},
                   "progressive": {"phase_images": 4800}}
    assert upgrade_stored(new) == new  # idempotent: a new config passes unchanged
    assert upgrade_stored({"loss": {"l1_weight": 1.0}, "pix2pix": {"l1_weight": 2.0}}) == \
        {"loss": {}, "pix2pix": {"l1_weight": 2.0}}  # the new place wins
    assert upgrade_stored({"loss": 3}) == {"loss": 3}  # not a mapping: check_layer's to refuse
    cfg = from_dict(old | {"name": "x"})
    assert cfg.to_dict()["stylegan2"] == {"r1_every": 16, "pl_weight": 2.0, "style_mixing": 0.9}


def test_register_section_refuses_what_the_walkers_could_not_show():
    from dataclasses import dataclass, field

    from gancli.config import config_field, register_section

    @dataclass
    class Knobs:
        weight: float = config_field(1.0, "a weight", min=0)

    @dataclass
    class NoHelp:
        weight: float = field(default=1.0)

    for name, cls, words in [("loss", Knobs, "built-in"), ("pix2pix", Knobs, "twice"),
                             ("My-Knobs", Knobs, "identifier"), ("knobs", dict, "not a dataclass"),
                             ("knobs", NoHelp, "config_field")]:
        with pytest.raises(ValueError, match=words):
            register_section(name)(cls)
    assert "knobs" not in schema_keys()
