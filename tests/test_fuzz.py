"""Property-based fuzzing: whatever a user types, the answer is exit 0, 1 or 2 and no traceback."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gancli.config import parse_set, schema_keys
from gancli.errors import ConfigError

from conftest import no_traceback

KEYS = schema_keys()
text = st.text(alphabet=string.printable, max_size=30)
key = st.one_of(st.sampled_from(KEYS), text)
item = st.builds(lambda k, v, sep: f"{k}{sep}{v}", key, text, st.sampled_from(["=", "", "==", ":"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(item, max_size=4))
def test_set_parsing_only_ever_raises_config_errors(items):
    try:
        layer = parse_set(items)
    except ConfigError as e:
        assert e.message and e.exit_code == 2
    else:
        assert isinstance(layer, dict)


WORDS = ["train", "sample", "interpolate", "zoo", "dcgan", "gan", "wgan-gp-toy", "nope",
         "--set", "--steps", "--seeds", "--n", "--out", "--data", "--device", "--json", "--quiet",
         "--class", "--config", "--resume", "--method", "--truncation", "--arith", "-1", "0", "3",
         "1e-4", "train.steps=2", "optim.lr_g=x", "toy:grid25", "digits", "/no/such", "cpu",
         "0-3", "1,2", "slerp", "--help", "--version", "--filter", "*gan*",
         "--on-nan", "rollback", "stop", "run.name=../../x", "train.batch_size=1e12",
         "model.g_width=-3", "train.on_nan=maybe", "optim.lr_d=!!python/object:os.system",
         "train.nan_retries=1e9", "data.size=nan", "--resume", "--config", "/dev/null"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(WORDS), text), min_size=1, max_size=6))
def test_any_command_line_exits_cleanly(cli, tmp_path_factory, argv):
    # never start real training: a dry run resolves everything a real run would check first
    if argv[0] == "train" and "--help" not in argv:
        argv = argv + ["--dry-run"]
    out = tmp_path_factory.mktemp("fuzz")
    r = cli(*[a.replace("/no/such", str(out / "no" / "such")) for a in argv])
    assert r.code in (0, 1, 2), (argv, r.code, r.err[-500:])
    assert no_traceback(r.err), (argv, r.err[-800:])
    assert "internal error" not in r.err, (argv, r.err[-800:])  # a bug, not a user error


NUMERIC = [k for k in KEYS if k.startswith(("train.", "model.", "data.size", "data.resolution",
                                            "optim."))]
value = st.one_of(st.integers(min_value=-(10**15), max_value=10**15).map(str),
                  st.sampled_from(["1e12", "-0", "nan", "inf", "-inf", "1e309", "0x10", "true",
                                   "null", "[1, 2]", "{a: 1}", "!!python/object/apply:os.getpid []",
                                   "10**9", "1_000_000_000"]),
                  text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NUMERIC), value), min_size=1, max_size=3))
def test_absurd_values_are_config_errors_before_anything_is_allocated(pairs):
    """Any value for a numeric key: validation or the size pre-flight refuses it as a
    ConfigError (exit 2), or the toy run it describes fits in memory. Nothing is allocated."""
    from gancli.config import resolve
    from gancli.preflight import check_data_size, check_sizes, estimate
    from gancli.presets import load_preset

    items = [f"{k}={v}" for k, v in pairs] + ["model.family=mlp", "data.source=toy:grid25"]
    try:
        cfg = resolve([("preset", load_preset("gan")), ("--set", parse_set(items))])
        check_data_size(cfg)
        check_sizes(cfg, estimate(cfg, (2,), "points", 0))
    except ConfigError as e:
        assert e.message and e.exit_code == 2
