"""One configuration layering for every entry point (reflectevo.settings): dataclass defaults <-
built-in YAML <- each --config YAML in order <- the command line (for the lm-eval model: config=
files <- the other model_args). Each entry point is checked for the same precedence, for an
unknown YAML key named with its file, and for a badly typed value named with its option."""

from __future__ import annotations

import pytest
import yaml
from reflectevo.errors import UserError


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@pytest.fixture()
def layers(tmp_path):
    """Two YAML files: `only_a` is set in A only, `a_then_b` in both, `all_three` in both and on
    the command line; each entry point maps the three onto options of its own."""

    def make(only_a, a_then_b, all_three, extra_a=None, extra_b=None):
        a = _yaml(tmp_path / "a.yaml", {only_a[0]: only_a[1], a_then_b[0]: a_then_b[1], all_three[0]: all_three[1],
                                        **(extra_a or {})})
        b = _yaml(tmp_path / "b.yaml", {a_then_b[0]: a_then_b[2], all_three[0]: all_three[2], **(extra_b or {})})
        return a, b

    return make


# ------------------------------------------------------------------------------------ gen run
def _gen(argv):
    from reflectevo_gen.config import GenConfig, parse_config

    return parse_config(GenConfig, argv, prog="reflectevo gen run")


def test_gen_run_layers(layers):
    a, b = layers(("limit", 5), ("seed", 1, 2), ("batch_size", 4, 8))
    cfg = _gen(["--config", a, "--config", b, "--batch_size", "16"])
    assert (cfg.limit, cfg.seed, cfg.batch_size) == (5, 2, 16)
    cfg = _gen(["--config", b, "--config", a])  # the order of the files decides, not their names
    assert (cfg.seed, cfg.batch_size) == (1, 4)


# ------------------------------------------------------------------------------------ train
def test_train_layers_over_the_builtin_recipe(layers):
    from reflectevo_train.config import RECIPES_DIR, parse_run

    builtin = yaml.safe_load((RECIPES_DIR / "one_stage.yaml").read_text())
    assert builtin["learning_rate"] != 3e-4  # so that A's value below is A's, not the recipe's
    a, b = layers(("learning_rate", 3e-4), ("lora_r", 4, 6), ("max_length", 300, 400))
    run = parse_run("one_stage", ["--config", a, "--config", b, "--dataset", "x/y@v1", "--max_length", "500"])
    assert run.training.learning_rate == 3e-4 and run.model.lora_r == 6 and run.training.max_length == 500
    assert run.model.model_name_or_path == builtin["model_name_or_path"]  # the built-in recipe is the first layer
    assert run.recipe_files == [str(RECIPES_DIR / "one_stage.yaml"), a, b]
    assert {k: run.recipe[k] for k in ("learning_rate", "lora_r", "max_length", "dataset")} == {
        "learning_rate": 3e-4, "lora_r": 6, "max_length": 500, "dataset": "x/y@v1"}


# ------------------------------------------------------------------------------------ evolve
def test_evolve_layers_and_merges_sections(layers):
    from reflectevo_evolve.loop import load_config

    a, b = layers(("name", "from-a"), ("namespace", "a", "b"), ("rounds", 2, 3),
                  extra_a={"gen": {"limit": 5, "seed": 1}}, extra_b={"gen": {"seed": 2}})
    cfg = load_config(["--config", a, "--config", b, "--rounds", "4", "--set", "gen.batch_size=3"])
    assert (cfg.name, cfg.namespace, cfg.rounds) == ("from-a", "b", 4)
    assert cfg.gen == {"limit": 5, "seed": 2, "batch_size": 3}  # a section merges option by option
    assert load_config(["--config", a, "--set", "rounds=5", "--rounds", "6"]).rounds == 6  # flags come last
    # a section given as a flag is one more layer: it changes only the options it names
    assert load_config(["--config", a, "--config", b, "--gen", "{seed: 9}"]).gen == {"limit": 5, "seed": 9}
    with pytest.raises(UserError, match="--gen: expected a YAML mapping"):
        load_config(["--gen", "limit=3"])


def test_evolve_demo_loop_still_parses():
    from reflectevo_evolve.loop import load_config

    cfg = load_config(["--config", "demo"])
    assert cfg.name == "demo" and cfg.gen["trial_max_new_tokens"] == 128 and cfg.train["config"] == ["demo"]


# ------------------------------------------------------------------------------------ the lm-eval model
def test_lm_eval_model_args_layers(layers):
    from harness_plugins.reflect_model import parse_model_args

    a, b = layers(("seed", 7), ("mode", "intrinsic", "retry_only"), ("reflection_max_gen_toks", 100, 200))
    # lm-eval hands model_args over as text (or numbers and booleans it recognised)
    args, rest = parse_model_args({"config": f"{a}:{b}", "reflection_max_gen_toks": "300", "pretrained": "m",
                                   "one_stage": "true"})
    assert (args.seed, args.mode, args.reflection_max_gen_toks, args.one_stage) == (7, "retry_only", 300, True)
    assert rest == {"pretrained": "m"}  # the base model's own arguments pass through untouched
    args, _ = parse_model_args({"config": a, "max_gen_toks": 64})
    assert (args.mode, args.max_gen_toks) == ("intrinsic", 64)


# ------------------------------------------------------------------------------------ errors
def _entry_points(tmp_path):
    """Each entry point as a function of (its YAML file, extra command-line options)."""
    from harness_plugins.reflect_model import ReflectEvoLM
    from reflectevo_evolve.loop import load_config
    from reflectevo_train.config import parse_run

    def plugin(path, options):
        return ReflectEvoLM(pretrained="smollm2-135m-instruct", config=path, **options)

    return {
        "gen": (lambda path, argv: _gen(["--config", path, *argv]), ["--limit", "many"], "--limit"),
        "train": (lambda path, argv: parse_run("one_stage", ["--dataset", "x/y", "--config", path, *argv]),
                  ["--lora_r", "many"], "--lora_r"),
        "evolve": (lambda path, argv: load_config(["--config", path, *argv]), ["--rounds", "many"], "--rounds"),
        "plugin": (lambda path, argv: plugin(path, dict(zip(argv[::2], argv[1::2]))), ["seed", "many"], "seed"),
    }


OPTION = {"gen": "limit", "train": "lora_r", "evolve": "rounds", "plugin": "seed"}


@pytest.mark.parametrize("entry", ["gen", "train", "evolve", "plugin"])
def test_unknown_yaml_key_names_the_file_and_the_key(entry, tmp_path):
    run, _, _ = _entry_points(tmp_path)[entry]
    path = _yaml(tmp_path / "mine.yaml", {OPTION[entry]: 3, "colour": "blue", "sizee": 2})
    with pytest.raises(UserError, match=rf"{path}: unknown option\(s\) colour, sizee for `[^`]+` \(see `[^`]+ --help`\)"):
        run(path, [])


@pytest.mark.parametrize("entry", ["gen", "train", "evolve", "plugin"])
def test_a_badly_typed_value_names_the_option(entry, tmp_path):
    run, bad_cli, label = _entry_points(tmp_path)[entry]
    path = _yaml(tmp_path / "mine.yaml", {OPTION[entry]: "lots"})
    with pytest.raises(UserError, match=rf"{path}: {OPTION[entry]}: invalid int value: 'lots'"):
        run(path, [])
    empty = _yaml(tmp_path / "empty.yaml", {})
    with pytest.raises(UserError, match=rf"{label}: invalid int value: 'many'"):
        run(empty, bad_cli)


def test_a_yaml_value_is_typed_like_the_same_flag(tmp_path):
    path = _yaml(tmp_path / "mine.yaml", {"reflection_temperature": 1, "model_args": 5})
    cfg = _gen(["--config", path])
    assert cfg.reflection_temperature == 1.0 and isinstance(cfg.reflection_temperature, float)
    assert cfg.model_args == "5"


def test_env_mapping_is_set_after_the_layers_are_checked(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("REFLECTEVO_TEST_LAYER", raising=False)
    bad = _yaml(tmp_path / "bad.yaml", {"env": {"REFLECTEVO_TEST_LAYER": "x"}, "colour": 1})
    with pytest.raises(UserError, match="colour"):
        _gen(["--config", bad])
    assert "REFLECTEVO_TEST_LAYER" not in os.environ
    good = _yaml(tmp_path / "good.yaml", {"env": {"REFLECTEVO_TEST_LAYER": "y"}})
    _gen(["--config", good])
    assert os.environ["REFLECTEVO_TEST_LAYER"] == "y"


def test_config_without_a_file_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(UserError, match="--config needs a YAML file"):
        _gen(["--config"])
    with pytest.raises(UserError, match="nope.yaml: no such file"):
        _gen(["--config", str(tmp_path / "nope.yaml")])
