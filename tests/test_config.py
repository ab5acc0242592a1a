"""The typed config: parsing, validation, precedence."""

from __future__ import annotations

import pytest

from gancli.config import (Config, check_layer, describe_schema, load_config_file, parse_set, resolve,
                           schema_keys)
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
