"""One command-line style for every subcommand (issue #30, item 3; reflectevo.settings.one_style).

Every runnable subcommand's parser is walked, as the command builds it: the argparse commands from
`reflectevo.cli.build_parser`, and the dataclass commands (`gen run`, `train SETTING`, `evolve`)
from what their `--help` builds. Each must spell every option one way, with underscores; take a
repeatable `--config`; and name every option's default in its help. Old spellings (each hyphenated
one, and the names that changed) must still parse like the new spelling for one release, with one
deprecation line on stderr; `gen curate --config` must layer a YAML file under the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from reflectevo import settings
from reflectevo.cli import build_parser, leaf_parsers, main

OURS = {"reflectevo", "reflectevo_gen", "reflectevo_train", "reflectevo_tasks", "reflectevo_evolve",
        "harness_plugins", "leaderboards"}
STYLE = re.compile(r"--[a-z0-9]+(_[a-z0-9]+)*")


# ------------------------------------------------------------------ the parsers, as the commands build them
def _dataclass_parsers(monkeypatch) -> dict[str, argparse.ArgumentParser]:
    """prog -> parser of each command that parses its own arguments (`passthrough`), caught as its
    --help builds it (every parser of the shared style goes through settings.one_style)."""
    built: list[argparse.ArgumentParser] = []
    real = settings.one_style

    def recording(parser, *args, **kwargs):
        built.append(parser)
        return real(parser, *args, **kwargs)

    monkeypatch.setattr(settings, "one_style", recording)
    found = {}
    for leaf in leaf_parsers(build_parser()):
        if not leaf.get_default("passthrough"):
            continue
        path = leaf.prog.split()[1:]
        choices = next((a.choices for a in leaf._actions if not a.option_strings and a.choices), None)
        for argv in ([path + [c] for c in choices] if choices else [path]):
            built.clear()
            try:
                main([*argv, "--help"])
            except SystemExit as exc:
                assert exc.code == 0
            prog = " ".join(["reflectevo", *argv])
            mine = [p for p in built if p.prog == prog]
            assert len(mine) == 1, f"`{prog} --help` built {len(mine)} parsers named {prog!r}"
            found[prog] = mine[0]
    return found


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    monkeypatch = pytest.MonkeyPatch()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the --help texts are not this fixture's business
            found = {leaf.prog: leaf for leaf in leaf_parsers(build_parser()) if not leaf.get_default("passthrough")}
            found.update(_dataclass_parsers(monkeypatch))
    finally:
        monkeypatch.undo()
    return found


def test_every_subcommand_is_walked(parsers):
    expected = {"reflectevo model path", "reflectevo tasks list", "reflectevo tasks pool", "reflectevo tasks answer",
                "reflectevo hub serve", "reflectevo hub resolve", "reflectevo gen run", "reflectevo gen curate",
                "reflectevo gen push", "reflectevo gen merge", "reflectevo evolve", "reflectevo leaderboard build"}
    expected |= {f"reflectevo train {s}" for s in ("one_stage", "two_stage", "dpo_pm", "dpo_pref", "sft_qa")}
    assert set(parsers) == expected


def _visible(parser):
    return [a for a in parser._actions if a.help is not argparse.SUPPRESS]


def _our_options(parser) -> set[str] | None:
    """The dests of this project's own options (None: all of them, a plain argparse command)."""
    types = getattr(parser, "dataclass_types", None)
    if types is None:
        return None
    return {f for t in types if t.__module__.split(".")[0] in OURS for f in t.__dataclass_fields__} | {"config"}


# ------------------------------------------------------------------ the style
def test_every_option_is_spelt_one_way_with_underscores(parsers):
    wrong = []
    for prog, parser in parsers.items():
        for action in _visible(parser):
            longs = [s for s in action.option_strings if s.startswith("--")]
            shorts = set(action.option_strings) - set(longs)
            if action.option_strings and (len(longs) != 1 or not STYLE.fullmatch(longs[0]) or shorts - {"-h"}):
                wrong.append(f"{prog}: {', '.join(action.option_strings)}")
    assert not wrong, "options not spelt one way, with underscores:\n" + "\n".join(wrong)


def test_every_subcommand_takes_repeatable_config(parsers):
    for prog, parser in parsers.items():
        action = parser._option_string_actions.get("--config")
        assert action is not None, f"{prog} has no --config"
        assert isinstance(action, argparse._AppendAction), f"{prog}: --config is not repeatable"


def test_every_help_text_names_its_default(parsers):
    missing = []
    for prog, parser in parsers.items():
        ours = _our_options(parser)
        formatter = parser._get_formatter()
        for action in _visible(parser):
            if action.dest == "help" or action.required or (not action.option_strings and action.nargs in (None, "+")):
                continue  # nothing to default: it must be given
            text = formatter._expand_help(action)
            if "default" not in text.lower():
                missing.append(f"{prog} {action.option_strings or action.dest}: {text!r}")
            elif (ours is None or action.dest in ours) and "(default: None)" in text:
                missing.append(f"{prog} {action.option_strings or action.dest}: says '(default: None)', not what happens")
    assert not missing, "help texts that do not name their default:\n" + "\n".join(missing)


def test_the_help_of_a_command_shows_its_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["gen", "curate", "--help"])
    out = capsys.readouterr().out
    assert "--max_pairs MAX_PAIRS" in out and "(default: 4)" in out and "--max-pairs" not in out
    assert "--config YAML" in out


# ------------------------------------------------------------------ old spellings
@contextlib.contextmanager
def _nothing_required(parser):
    """Let a parser parse one option alone: nothing required, positionals optional (then restored)."""
    saved = [(a, a.required, a.nargs) for a in parser._actions]
    for a in parser._actions:
        a.required = False
        if not a.option_strings:
            a.nargs = {None: "?", "+": "*"}.get(a.nargs, a.nargs)
    try:
        yield parser
    finally:
        for a, required, nargs in saved:
            a.required, a.nargs = required, nargs


CANDIDATE_VALUES = (["3"], ["0.5"], ["true"], ["x"], ["{a: 1}"], ["none"])  # "none": TRL's optional dict options


def _parse(parser, argv):
    try:
        ns, rest = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None
    return None if rest else ns


def test_every_old_spelling_parses_like_the_new_one_with_one_deprecation_line(parsers, capsys):
    checked = 0
    for prog, parser in parsers.items():
        for old in (a for a in parser._actions if isinstance(a, settings.OldSpelling)):
            new = old.new_spelling
            assert new != old.option_strings[0] and STYLE.fullmatch(new)
            with _nothing_required(parser):
                values = [[]] if old.nargs == 0 else [[str(next(iter(old.choices)))]] if old.choices else CANDIDATE_VALUES
                for value in values:
                    expected = _parse(parser, [new, *value])
                    if expected is not None:
                        break
                assert expected is not None, f"{prog} {new}: no test value parses"
                capsys.readouterr()
                for spelling in old.option_strings:
                    got = _parse(parser, [spelling, *value])
                    err = capsys.readouterr().err.strip().splitlines()
                    assert got is not None and getattr(got, old.dest) == getattr(expected, old.dest), (prog, spelling)
                    assert len(err) == 1 and spelling in err[0] and new in err[0] and "deprecated" in err[0], err
                    checked += 1
    assert checked > 100  # every hyphenated TRL option of every setting, and ours


# the spellings of release 0.1, before the style was one (issue #30): each still reaches its option
OLD_SPELLINGS = [
    (["gen", "curate", "--input", "r", "--output", "c"], "reflectevo_gen.cli", "_curate",
     {"--max-pairs": ("2", "max_pairs", 2), "--near-duplicate": ("0.5", "near_duplicate", 0.5),
      "--min-margin": ("0.1", "min_margin", 0.1), "--judge-model": ("m", "judge_model", "m"),
      "--batch-size": ("3", "batch_size", 3)}),
    (["gen", "push", "--input", "c"], "reflectevo_gen.cli", "_push",
     {"--repo": ("me/data", "push_to_repo", "me/data"), "--tag": ("run-1", "push_tag", "run-1"),
      "--private": (None, "push_private", True), "--endpoint": ("http://127.0.0.1:1", "hub_endpoint", "http://127.0.0.1:1")}),
    (["tasks", "answer"], "reflectevo_tasks.cli", "_answer",
     {"--revision": ("v1", "model_revision", "v1"), "--batch-size": ("2", "batch_size", 2),
      "--model-args": ("a=1", "model_args", "a=1"), "--bbh-dir": ("d", "bbh_dir", "d"),
      "--max-new-tokens": ("5", "max_new_tokens", 5)}),
    (["tasks", "pool"], "reflectevo_tasks.cli", "_pool",
     {"--per-task": ("3", "per_task", 3), "--bbh-dir": ("d", "bbh_dir", "d")}),
    (["hub", "serve", "--data", "d"], "reflectevo.hub.cli", "_serve", {"--allow-remote": (None, "allow_remote", True)}),
    (["hub", "resolve", "me/x"], "reflectevo.hub.cli", "_resolve", {"--repo-type": ("dataset", "repo_type", "dataset")}),
]


def _run_main(monkeypatch, argv, module_name, func_name) -> argparse.Namespace:
    import importlib

    seen = []
    monkeypatch.setattr(importlib.import_module(module_name), func_name, lambda args: seen.append(args) or 0)
    assert main(argv) == 0
    (args,) = seen
    return args


@pytest.mark.parametrize("argv, module_name, func_name, old", OLD_SPELLINGS,
                         ids=[" ".join(case[0][:2]) for case in OLD_SPELLINGS])
def test_the_spellings_of_the_last_release_still_work(argv, module_name, func_name, old, monkeypatch, capsys):
    given = [a for spelling, (value, _, _) in old.items() for a in ([spelling] if value is None else [spelling, value])]
    args = _run_main(monkeypatch, argv + given, module_name, func_name)
    for spelling, (_, dest, expected) in old.items():
        assert getattr(args, dest) == expected, spelling
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(old)
    for line, (spelling, (_, dest, _)) in zip(lines, old.items()):
        assert line == (f"{' '.join(['reflectevo', *argv[:2]])}: {spelling} is deprecated and goes in the next "
                        f"release; use --{dest}")


def test_the_dataclass_commands_read_their_hyphenated_spellings(capsys):
    from reflectevo_evolve.loop import load_config
    from reflectevo_gen.config import GenConfig, parse_config
    from reflectevo_train.config import parse_run

    assert parse_config(GenConfig, ["--batch-size", "4", "--chunk_size", "2"], prog="reflectevo gen run").batch_size == 4
    run = parse_run("one_stage", ["--dataset", "x/y", "--learning-rate", "1e-5"])
    assert run.training.learning_rate == 1e-5 and run.recipe["learning_rate"] == 1e-5
    assert load_config(["--train-from", "base", "--no-baseline"]).train_from == "base"
    assert capsys.readouterr().err.strip().splitlines() == [
        "reflectevo gen run: --batch-size is deprecated and goes in the next release; use --batch_size",
        "reflectevo train one_stage: --learning-rate is deprecated and goes in the next release; use --learning_rate",
        "reflectevo evolve: --train-from is deprecated and goes in the next release; use --train_from",
        "reflectevo evolve: --no-baseline is deprecated and goes in the next release; use --no_baseline"]


def test_the_new_spellings_print_nothing(monkeypatch, capsys):
    args = _run_main(monkeypatch, ["gen", "curate", "--input", "r", "--output", "c", "--max_pairs", "2"],
                     "reflectevo_gen.cli", "_curate")
    assert args.max_pairs == 2 and capsys.readouterr().err == ""


# ------------------------------------------------------------------ --config for the argparse commands
def _yaml(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_config_layers_for_an_argparse_command(tmp_path, monkeypatch):
    a = _yaml(tmp_path / "a.yaml", {"input": "from-a", "output": "out-a", "max_pairs": 3, "near_duplicate": 0.5})
    b = _yaml(tmp_path / "b.yaml", {"max_pairs": 5, "ranking": "judge"})
    args = _run_main(monkeypatch, ["gen", "curate", "--config", a, "--config", b, "--max_pairs", "7", "--output", "o"],
                     "reflectevo_gen.cli", "_curate")
    # a's required --input is enough; b overrides a; the command line overrides both
    assert (args.input, args.output, args.max_pairs, args.near_duplicate, args.ranking) == ("from-a", "o", 7, 0.5, "judge")
    # a positional and a repeatable option from a file
    c = _yaml(tmp_path / "c.yaml", {"results": ["r1.json", "r2.json"], "output": "board"})
    args = _run_main(monkeypatch, ["leaderboard", "build", "--config", c], "leaderboards.cli", "_build")
    assert args.results == ["r1.json", "r2.json"] and args.output == "board"
    d = _yaml(tmp_path / "d.yaml", {"token": ["t1", "t2"], "allow_remote": True, "port": "0"})
    args = _run_main(monkeypatch, ["hub", "serve", "--data", "x", "--config", d, "--token", "t3"], "reflectevo.hub.cli", "_serve")
    assert args.token == ["t1", "t2", "t3"] and args.allow_remote is True and args.port == 0


@pytest.mark.parametrize("layer, message", [
    ({"colour": "blue", "max_pairs": 2}, r": unknown option\(s\) colour for `reflectevo gen curate` "
                                         r"\(see `reflectevo gen curate --help`\)"),
    ({"max_pairs": "lots"}, r": max_pairs: invalid int value: 'lots'"),
    ({"ranking": "vibes"}, r": ranking: invalid choice: 'vibes'"),
    ({"max_pairs": [1, 2]}, r": max_pairs: expected one value, got \[1, 2\]"),
    ({"max_pairs": None}, r": max_pairs: expected a value, got null"),
    ({"push_private": "yes"}, r": unknown option\(s\) push_private"),
])
def test_a_bad_layer_is_one_line_naming_the_file_and_the_option(layer, message, tmp_path, monkeypatch, capsys):
    path = _yaml(tmp_path / "bad.yaml", layer)
    monkeypatch.setattr("reflectevo_gen.cli._curate", lambda args: pytest.fail("the command ran"))
    assert main(["gen", "curate", "--input", "r", "--output", "c", "--config", path]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"reflectevo: error: {re.escape(path)}{message}.*", lines[0]), lines


def test_a_layers_env_is_set_once_the_arguments_parse(tmp_path, monkeypatch):
    monkeypatch.delenv("REFLECTEVO_TEST_CLI_LAYER", raising=False)
    path = _yaml(tmp_path / "env.yaml", {"env": {"REFLECTEVO_TEST_CLI_LAYER": "on"}, "max_pairs": 2})
    monkeypatch.setattr("reflectevo_gen.cli._curate", lambda args: pytest.fail("the command ran"))
    with pytest.raises(SystemExit):  # --input missing: argparse refuses, and nothing is set
        main(["gen", "curate", "--config", path])
    assert "REFLECTEVO_TEST_CLI_LAYER" not in os.environ
    _run_main(monkeypatch, ["gen", "curate", "--config", path, "--input", "r", "--output", "c"], "reflectevo_gen.cli", "_curate")
    assert os.environ["REFLECTEVO_TEST_CLI_LAYER"] == "on"


def test_gen_curate_curates_with_a_config_file_and_an_override(bbh_dir, tmp_path, monkeypatch, capsys):
    """The real command on a real (scripted) run: the file names the folders and two options, the
    command line overrides one of them, and the curated folder records what was used."""
    from scripted_models import use_scripted_models

    from reflectevo_gen.config import GenConfig
    from reflectevo_gen.pipeline import run

    use_scripted_models(monkeypatch, bbh_dir)
    run(GenConfig(output=str(tmp_path / "run"), source="bbh-pool:navigate", limit=6, trial_max_new_tokens=32,
                  reflection_max_new_tokens=32), show_progress=False)
    path = _yaml(tmp_path / "curate.yaml", {"input": str(tmp_path / "run"), "output": str(tmp_path / "curated"),
                                            "max_pairs": 3, "near_duplicate": 0.9})
    assert main(["gen", "curate", "--config", path, "--max_pairs", "1"]) == 0
    options = json.loads((tmp_path / "curated" / "stats.json").read_text())["options"]
    assert options["max_pairs"] == 1 and options["near_duplicate"] == 0.9
    d_pm = [json.loads(line) for line in (tmp_path / "curated" / "d_pm.jsonl").read_text().splitlines()]
    per_question = {}
    for row in d_pm:
        per_question[row["question_id"]] = per_question.get(row["question_id"], 0) + 1
    assert per_question and max(per_question.values()) == 1  # --max_pairs 1 applied, not the file's 3
    assert f"curated: {tmp_path / 'curated'}" in capsys.readouterr().out
