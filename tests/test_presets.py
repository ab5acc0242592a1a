"""Every preset validates, resolves and carries its paper; lookup order and safety."""

from __future__ import annotations

import re

import pytest

from gancli.config import Config
from gancli.errors import PresetError
from gancli.presets import builtin_dir, find_preset, list_presets, load_preset, resolve_preset
from gancli.training.objectives.translation import CycleConfig

PRESETS = [ref.name for ref in list_presets()]
TWELVE = {"gan", "dcgan", "cgan", "acgan", "lsgan", "wgan", "wgan-gp", "sngan", "sagan", "infogan",
          "cyclegan", "stargan"}


def test_all_twelve_are_shipped():
    assert TWELVE <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_and_names_its_paper(name):
    cfg = resolve_preset(name)
    assert isinstance(cfg, Config)
    assert cfg.name == name
    assert cfg.paper.title and cfg.paper.authors and cfg.paper.arxiv
    assert 2013 <= cfg.paper.year <= 2030
    assert cfg.task in ("unconditional", "conditional", "translation", "multi-domain")
    assert cfg.description


def test_paper_settings_are_the_papers():
    wgan = resolve_preset("wgan")
    assert (wgan.optim.name, wgan.optim.lr_d, wgan.reg.clip, wgan.train.n_critic) == \
        ("rmsprop", 5e-5, 0.01, 5)
    gp = resolve_preset("wgan-gp")
    assert (gp.optim.lr_d, gp.optim.beta1, gp.optim.beta2, gp.reg.gp, gp.train.n_critic) == \
        (1e-4, 0.0, 0.9, 10.0, 5)
    assert gp.model.d_norm != "batch"  # no batch norm in the critic
    dc = resolve_preset("dcgan")
    assert (dc.optim.lr_g, dc.optim.beta1, dc.model.init) == (2e-4, 0.5, "dcgan")
    assert resolve_preset("gan").loss.name == "minimax"
    assert resolve_preset("lsgan").loss.name == "lsgan"
    sa = resolve_preset("sagan")
    assert (sa.optim.lr_g, sa.optim.lr_d, sa.loss.name) == (1e-4, 4e-4, "hinge")
    adc = resolve_preset("adcgan")  # ACGAN's nets with ADC-GAN's head, no batch norm in D
    assert (adc.objective, adc.model.aux_classifier, adc.model.d_norm) == ("acgan", "adc", "none")
    assert resolve_preset("acgan").model.aux_classifier == "ac"  # the acgan preset is Odena's
    cy = resolve_preset("cyclegan")
    cycle = cy.section(CycleConfig)  # the cycle objective's own section
    assert (cycle.cycle_weight, cycle.identity_weight, cy.train.pool_size) == (10.0, 0.5, 50)


def test_extends_merges_parent(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("extends: dcgan\nname: mine\ntrain:\n  steps: 7\n")
    monkeypatch.setenv("GANCLI_PRESETS", str(tmp_path))
    cfg = resolve_preset("mine")
    assert cfg.name == "mine" and cfg.train.steps == 7 and cfg.model.family == "dcgan"
    assert find_preset("mine").source == "user"


def test_user_folder_shadows_builtin(tmp_path, monkeypatch):
    text = re.sub(r"\n  steps: \d+", "\n  steps: 42", (builtin_dir() / "dcgan.yaml").read_text())
    (tmp_path / "dcgan.yaml").write_text(text)
    monkeypatch.setenv("GANCLI_PRESETS", str(tmp_path))
    assert resolve_preset("dcgan").train.steps == 42


def test_explicit_path(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("extends: gan\ntrain:\n  steps: 9\n")
    assert resolve_preset(str(p)).train.steps == 9


@pytest.mark.parametrize("text, match", [
    ("!!python/object/apply:os.system ['echo pwned']", "cannot parse"),
    ("model: !!python/name:os.system\n", "cannot parse"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("model: {family: [unclosed\n", "cannot parse"),
    ("extends: loop\n", "extends itself"),
    ("trian: {steps: 3}\n", "unknown config key"),
])
def test_bad_preset_files_are_refused(tmp_path, text, match):
    p = tmp_path / "loop.yaml"
    p.write_text(text)
    import os

    os.environ["GANCLI_PRESETS"] = str(tmp_path)
    try:
        with pytest.raises(PresetError if "config key" not in match else Exception, match=match):
            load_preset("loop")
    finally:
        del os.environ["GANCLI_PRESETS"]


def test_unknown_preset_suggests():
    with pytest.raises(PresetError) as e:
        find_preset("wgan-pg")
    assert "did you mean" in e.value.hint and "wgan" in e.value.hint
