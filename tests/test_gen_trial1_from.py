"""`gen run --trial1_from`: a second round takes the first round's trial 1 instead of generating it,
and refuses a first round whose trial 1 could differ. On the scripted generator (no model loads)."""

import json
import os
from pathlib import Path

import pytest

from reflectevo.chunk_store import read_part, read_records, seal, write_chunk_file
from reflectevo.errors import UserError
from reflectevo_gen.config import GenConfig
from reflectevo_gen.pipeline import Engines, plan_questions, run
from reflectevo_tasks.engine import Engine, EngineConfig
from test_gen_scripted import SMALL, ScriptedGenerator

SOURCE = "bbh-pool:navigate,sports_understanding"


class CountingGenerator(ScriptedGenerator):
    """The scripted generator, counting the trial-1 prompts it is asked to answer."""

    def __init__(self, questions, reflection_offset=0):
        super().__init__(questions)
        self.reflections = reflection_offset  # another reflector: other reflections for the same questions
        self.trial_prompts = 0

    def generate_until(self, requests, disable_tqdm=False):
        requests = list(requests)
        for context, _ in (r.args for r in requests):
            last_user = context.rsplit("<user>", 1)[1]
            if "Write a reflection" not in last_user and "Use the reflection" not in last_user:
                self.trial_prompts += 1
        return super().generate_until(requests, disable_tqdm)


def _engines(lm):
    scripted = Engine(EngineConfig(model="scripted"), lm=lm)
    return Engines(scripted, scripted)


def _round(tmp_path, name, limit=6, offset=0, **settings):
    cfg = GenConfig(output=str(tmp_path / name), source=SOURCE, limit=limit, **{**SMALL, **settings})
    lm = CountingGenerator(plan_questions(cfg)[0], offset)
    return cfg, lm


def test_second_round_takes_trial1_and_writes_new_reflections(tmp_path):
    cfg1, lm1 = _round(tmp_path, "round-1")
    run(cfg1, engines=_engines(lm1), show_progress=False)
    assert lm1.trial_prompts == 6
    cfg2, lm2 = _round(tmp_path, "round-2", offset=1, trial1_from=cfg1.output)
    summary = run(cfg2, engines=_engines(lm2), show_progress=False)
    assert lm2.trial_prompts == 0  # not one trial-1 prompt reached the model
    first, second = read_records(cfg1.output), read_records(cfg2.output)
    trial1 = {r["question_id"]: r["trial1"] for r in first}
    assert {r["question_id"]: r["trial1"] for r in second} == trial1
    assert summary["wrong_at_t1"] == 4 and summary["reflections"] == 16
    # the reflections are the new reflector's (shifted by one in the script), so other retries fix
    assert [r["reflection"]["output"] for r in second if r["reflection"]] != \
        [r["reflection"]["output"] for r in first if r["reflection"]]
    # recorded with a path relative to the working folder (records are committed and published)
    assert all(r["trial1_from"] == {"run": os.path.relpath(cfg1.output), "config_hash": cfg1.identity_hash()}
               for r in second)
    # where trial 1 came from does not change what the records are: a plain resume of round 2 is the same run
    assert json.loads((Path(cfg2.output) / "run_config.json").read_text())["config_hash"] == \
        GenConfig(**{**vars(cfg2), "trial1_from": None}).identity_hash()


def _refused_before_generation(tmp_path, match, limit=3, **change):
    """Round 1 on 3 questions, then a round 2 that must stop with `match` before asking the model
    anything or writing a chunk."""
    cfg1, lm1 = _round(tmp_path, "round-1", limit=3)
    run(cfg1, engines=_engines(lm1), show_progress=False)
    cfg2, lm2 = _round(tmp_path, "round-2", limit=limit, trial1_from=cfg1.output, **change)
    with pytest.raises(UserError, match=match(cfg1, cfg2)):
        run(cfg2, engines=_engines(lm2), show_progress=False)
    assert lm2.trial_prompts == 0 and not list((Path(cfg2.output) / "parts").glob("chunk-*"))


@pytest.mark.parametrize("change, message", [
    ({"trial_max_new_tokens": 41}, "trial_max_new_tokens: 40 there, 41 here"),
    ({"model": "another-model"}, "model: 'smollm2-135m-instruct' there, 'another-model' here"),
])
def test_other_trial_settings_are_refused(tmp_path, change, message):
    _refused_before_generation(tmp_path, lambda cfg1, cfg2: f"--trial1_from {cfg1.output}: .*{message}", **change)


def test_a_question_the_first_round_lacks_is_refused_before_generation(tmp_path):
    _refused_before_generation(tmp_path, lambda cfg1, cfg2: f"no trial 1 for {plan_questions(cfg2)[0][3].id} there",
                               limit=6)


def test_another_trial_prompt_is_refused(tmp_path):
    cfg1, lm1 = _round(tmp_path, "round-1", limit=3)
    run(cfg1, engines=_engines(lm1), show_progress=False)
    part = next((Path(cfg1.output) / "parts").glob("chunk-*.jsonl"))
    records = read_part(part)
    for r in records:  # as if the prompt had been worded otherwise when round 1 ran
        r["trial1"]["messages"][0]["content"] += " (old wording)"
        r.pop("content_hash", None)
    write_chunk_file(part, [seal(r) for r in records])
    cfg2, lm2 = _round(tmp_path, "round-2", limit=3, trial1_from=cfg1.output)
    with pytest.raises(UserError, match="asked with another trial-1 prompt there"):
        run(cfg2, engines=_engines(lm2), show_progress=False)


def test_the_output_folder_itself_and_a_folder_that_is_no_run_are_refused(tmp_path):
    cfg, lm = _round(tmp_path, "self", limit=3, trial1_from=str(tmp_path / "self"))
    with pytest.raises(UserError, match="the output folder itself"):
        run(cfg, engines=_engines(lm), show_progress=False)
    cfg2, lm2 = _round(tmp_path, "round-2", limit=3, trial1_from=str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="not a generation run"):
        run(cfg2, engines=_engines(lm2), show_progress=False)
    assert lm.trial_prompts == lm2.trial_prompts == 0


def test_records_name_an_adapter_folder_relative_to_the_working_folder(tmp_path):
    """A second round's reflector is an adapter folder: the committed records must not carry this
    machine's absolute path to it."""
    cfg, lm = _round(tmp_path, "round-2", limit=3)
    engines = _engines(lm)
    reflector = Engine(EngineConfig(model="scripted"), lm=lm)
    folder = tmp_path / "adapters" / "two_stage"
    reflector.describe = lambda: {"model": "scripted", "adapter": str(folder), "adapter_revision": "sha256:ab"}
    run(cfg, engines=Engines(engines.generator, reflector), show_progress=False)
    models = read_records(cfg.output)[0]["models"]
    assert models["reflector"]["adapter"] == os.path.relpath(folder) and not os.path.isabs(models["reflector"]["adapter"])
