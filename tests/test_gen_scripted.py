"""reflectevo_gen on the scripted generator (a stand-in model whose replies follow a script, so that
every count is known): curation's exact sizes, the progress bar, sharding and merge, bad input rows.
Moved from tests/test_gen_pipeline.py, which keeps the checks on the README demo's generation, so that
these run beside that long model run instead of after it (their own xdist group)."""

import json
from pathlib import Path

import pytest

from curation_checks import check_curated_configs
from reflectevo.chunk_store import read_records
from reflectevo.errors import UserError
from reflectevo_gen.config import GenConfig
from reflectevo_gen.curate import CurateOptions, curate, write_curated
from reflectevo_gen.merge import merge
from reflectevo_gen.pipeline import run
from reflectevo_tasks.questions import Question
from scripted_models import ScriptedChat

pytestmark = pytest.mark.slow

SMALL = dict(trial_max_new_tokens=40, reflection_max_new_tokens=40, chunk_size=16, batch_size=16)


class ScriptedGenerator(ScriptedChat):
    """Stands in for the generator and reflector where exact counts are wanted.

    The embedded model's fixes are sampled, so its curated configs have rows but no predictable
    sizes. This scripted model answers trial 1 right for every third question, writes four
    different reflections per failed question, and retries right after the first and third of
    them, so each config's size follows from the script."""

    tokenizer, tokenizer_name, rank, world_size = None, "scripted", 0, 1
    REFLECTIONS = (
        "Diagnosis: I answered before checking the dates named in the question. Plan: list each date first.",
        "Diagnosis: the second sentence was skipped entirely. Plan: restate every clause in my own words.",
        "Diagnosis: I trusted a first impression over the facts given. Plan: test the claim against each fact.",
        "Diagnosis: the wording confused me and I guessed. Plan: underline the key term, then reason slowly.",
    )

    def __init__(self, questions: list[Question]):
        self.by_text = {q.question.strip(): (n, q.answer) for n, q in enumerate(questions)}
        self.reflections = 0

    def _question(self, context: str) -> tuple[int, str]:
        hits = [v for text, v in self.by_text.items() if text in context]
        assert len(hits) == 1, context[:200]
        return hits[0]

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for context, _ in (r.args for r in requests):
            n, gold = self._question(context)
            wrong = "no" if gold.strip().lower() == "yes" else "yes"
            last_user = context.rsplit("<user>", 1)[1]
            if "Write a reflection" in last_user:
                out.append(self.REFLECTIONS[self.reflections % 4])
                self.reflections += 1
            elif "Use the reflection" in last_user:
                fixes = any(self.REFLECTIONS[k] in last_user for k in (0, 2))
                out.append(f"Reading it again carefully. So the answer is {gold if fixes else wrong}.")
            else:
                out.append(f"Let me see. So the answer is {gold if n % 3 == 0 else wrong}.")
        return out


@pytest.fixture(scope="module")
def scripted_curated(engine, tmp_path_factory):
    """15 yes/no questions of BBH's pool through the real pipeline with the scripted generator; Dpref ranked
    by the embedded model's log-likelihoods (its 10 pairs are most of this fixture's time: the contexts
    are few-shot prompts)."""
    from reflectevo_gen.pipeline import Engines, plan_questions
    from reflectevo_tasks.engine import Engine, EngineConfig

    out = tmp_path_factory.mktemp("gen") / "scripted"
    cfg = GenConfig(output=str(out), source="bbh-pool:navigate,sports_understanding,causal_judgement", limit=15, **SMALL)
    lm = ScriptedGenerator(plan_questions(cfg)[0])
    scripted = Engine(EngineConfig(model="scripted"), lm=lm)
    run(cfg, engines=Engines(scripted, scripted), show_progress=False)
    result = curate(read_records(out), CurateOptions(), engine)
    folder = tmp_path_factory.mktemp("cur") / "scripted"
    write_curated(result, folder, "test")
    return result, folder


def test_progress_bar_says_which_pass_a_chunk_is_in(tmp_path, capsys):
    """Moved from tests/test_gen_pipeline.py::test_progress_bar_says_which_pass_a_chunk_is_in."""
    from reflectevo_gen.pipeline import Engines, plan_questions
    from reflectevo_tasks.engine import Engine, EngineConfig

    cfg = GenConfig(output=str(tmp_path / "run"), source="bbh-pool:navigate,sports_understanding", limit=6, **SMALL)
    scripted = Engine(EngineConfig(model="scripted"), lm=ScriptedGenerator(plan_questions(cfg)[0]))
    run(cfg, engines=Engines(scripted, scripted), show_progress=True)
    err = capsys.readouterr().err
    # questions 0 and 3 are right at trial 1 (every third), so 4 wrong x 2 instructions x 2 reflections
    for stage in ("now=trial 1: 6", "now=reflections: 16", "now=retries: 16"):
        assert stage in err, err[-2000:]
    assert "wrong@t1=4" in err and "reflections=16" in err and "fixed=8" in err


def test_every_config_gets_the_rows_the_script_implies(scripted_curated):
    """Moved from tests/test_gen_pipeline.py::test_every_config_gets_the_rows_the_script_implies."""
    result, _ = scripted_curated
    questions = {r["question_id"] for r in result["raw"]}
    right = {r["question_id"] for r in result["raw"] if r["record_id"].endswith("#t1")}
    assert len(questions) == 15 and len(right) == 5
    assert len(result["sft_qa"]) == 5
    assert len(result["raw"]) == 5 + 10 * 4  # a right question is one record, a wrong one four
    # reflections 1 and 3 fix, with the same retry text: D+ keeps one per question, the copy is counted
    assert len(result["d_plus"]) == 10 and result["stats"]["d_plus_duplicates_dropped"] == 10
    assert len(result["d_pm"]) == 10 * 4  # 2 fixing x 2 failing reflections per question
    ties, low = result["stats"]["dpref_ties_dropped"], result["stats"]["dpref_low_margin_dropped"]
    assert len(result["d_pref"]) + ties + low == 10 and len(result["d_pref"]) > 0


def test_curated_configs_are_consistent(scripted_curated):
    """Carries tests/test_gen_pipeline.py::test_curated_configs_are_consistent[scripted]."""
    result, folder = scripted_curated
    check_curated_configs(result, folder, questions=15)


def _record_set(folder):
    return sorted((r["record_id"], r["content_hash"]) for r in read_records(folder))


def test_shards_merge_and_refuse_overlap(tmp_path):
    """Merging, on shards made by the scripted generator: what the embedded model's shards give is
    compared with one process's run in tests/test_multiprocess.py (two concurrent `gen run` shards).
    Moved from tests/test_gen_pipeline.py::test_shards_merge_and_refuse_overlap."""
    from reflectevo_gen.pipeline import Engines, plan_questions
    from reflectevo_tasks.engine import Engine, EngineConfig

    settings = dict(limit=6, reflections_per_instruction=1, instruction_ids="sample:1", **SMALL)
    questions = plan_questions(GenConfig(output=str(tmp_path / "whole"), **settings))[0]
    scripted = Engine(EngineConfig(model="scripted"), lm=ScriptedGenerator(questions))
    outs = []
    for i in range(2):
        cfg = GenConfig(output=str(tmp_path / f"s{i}"), shard=f"{i}/2", **settings)
        run(cfg, engines=Engines(scripted, scripted), show_progress=False)
        outs.append(str(tmp_path / f"s{i}"))
    ids = [{r["question_id"] for r in read_records(o)} for o in outs]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 6
    summary = merge(outs, str(tmp_path / "merged"))
    assert summary["all_shards_present"] and summary["questions"] == 6
    assert _record_set(tmp_path / "merged") == sorted(_record_set(outs[0]) + _record_set(outs[1]))
    with pytest.raises(UserError, match="shard given twice"):
        merge([outs[0], outs[0]], str(tmp_path / "m2"))
    other = json.loads((Path(outs[1]) / "run_config.json").read_text())
    other["identity"]["seed"] = 99
    (Path(outs[1]) / "run_config.json").write_text(json.dumps(other))
    with pytest.raises(UserError, match="inconsistent .* seed"):
        merge(outs, str(tmp_path / "m3"))


def test_bad_rows_rejected_rest_processed(tmp_path, engine):
    """Moved from tests/test_gen_pipeline.py::test_bad_rows_rejected_rest_processed."""
    from reflectevo_gen.pipeline import Engines

    data = tmp_path / "mine.jsonl"
    rows = [{"q": "What is 2 + 3?", "a": "5"}, {"q": "", "a": "1"}, {"a": "2"}, {"q": ["x"], "a": "1"}, {"q": "What is 4 - 1?", "a": 3}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"name: mine\npath: {data}\ncolumns: {{question: q, answer: a}}\n")
    cfg = GenConfig(output=str(tmp_path / "out"), source=str(spec), reflections_per_instruction=1, instruction_ids="sample:1",
                    **{**SMALL, "trial_max_new_tokens": 24, "reflection_max_new_tokens": 24})
    summary = run(cfg, engines=Engines(engine, engine), show_progress=False)
    assert summary["rejected_rows"] == 3 and summary["questions"] == 2
    rejected = (tmp_path / "out" / "rejected.txt").read_text().splitlines()
    assert [line.split(": row ")[1].split(":")[0] for line in rejected] == ["2", "3", "4"]
    assert all(line.startswith(str(data)) for line in rejected)
    assert {r["index"] for r in read_records(tmp_path / "out")} == {0, 4}
