"""scripts/cap_study.py (issue #32's cap study) on a scripted model whose replies reach their answers
at known token counts, with a one-token-per-word tokenizer: every count of the report follows."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks.engine import Engine, EngineConfig
from scripted_models import ScriptedChat

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cap_study_script", ROOT / "scripts" / "cap_study.py")
cap_study = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cap_study  # dataclasses look their module up
_spec.loader.exec_module(cap_study)

FILLER = "first I look at each part of the question in turn"  # 11 words
KEY = "KEYSTEP"


class Words:
    """One token per word; decoding keeps the space before the first word, as BPE tokenizers do."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}

    def decode(self, ids):
        return " " + " ".join(ids)


class Script(ScriptedChat):
    """Trial 1: the answer statement (5 words) at once for even questions, after 11 filler words for
    odd ones. Reflection: 20 words, KEY the 10th. Retry: the answer if KEY reached the prompt, else
    a non-answer."""

    def __init__(self, golds: dict[str, str]):
        self.golds = golds
        self.order = list(golds)

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for context, _ in (r.args for r in requests):
            text = max((t for t in self.golds if t in context), key=len)
            gold, n = self.golds[text], self.order.index(text)
            last = context.rsplit("<user>", 1)[1]
            if "Write a reflection" in last:
                out.append(" ".join(["step"] * 9 + [KEY] + ["plan"] * 10))
            elif "solve the question again" in last:
                out.append(f"So the answer is {gold}." if KEY in last else "I do not know this one.")
            else:
                out.append(("" if n % 2 == 0 else FILLER + " ") + f"So the answer is {gold}.")
        return out


def study(tmp_path, bbh_dir, **over):
    settings = dict(output=str(tmp_path / "study"), per_subtask=2, subtasks="boolean_expressions,navigate",
                    caps="4,8,16", trial_cap=8, reflection_caps="4,16", chunk_size=3, bbh_dir=bbh_dir, model="scripted")
    cfg = cap_study.StudyConfig(**{**settings, **over})
    qs = cap_study.questions(cfg)
    engine = Engine(EngineConfig(model="scripted"), lm=Script({q.question.strip(): q.answer for q in qs}))
    return cfg, qs, engine


def test_each_turn_is_scored_as_if_cut_at_each_cap(tmp_path, bbh_dir):
    cfg, qs, engine = study(tmp_path, bbh_dir)
    assert [q.source for q in qs] == ["bbh/boolean_expressions", "bbh/navigate"] * 2  # the pool's interleaved order
    summary = cap_study.run(cfg, engine, Words())
    assert summary == {"chunks": 2, "resumed_chunks": 0, "questions": 4, "subtasks": 2}
    rep = json.loads((tmp_path / "study" / "report.json").read_text())
    # even questions: right once 5 words fit; odd ones need 16 words
    assert [rep["trial1"][c]["correct"] for c in ("4", "8", "16")] == [0, 2, 4]
    assert [rep["trial1"][c]["no_answer"] for c in ("4", "8", "16")] == [4, 2, 0]
    # a 5-word reply reaches a cap of 4 and of 8 (within the plugin's slack of 3), not one of 16
    assert [rep["trial1"][c]["reached"] for c in ("4", "8", "16")] == [4, 4, 2]
    # the two odd questions are wrong under the 8-token trial cap; their reflection holds KEY at word 10
    assert rep["reflection"] == {"4": {"n": 2, "reached": 2}, "16": {"n": 2, "reached": 2}}
    assert [rep["retry"][f"4/{c}"]["correct"] for c in (4, 8, 16)] == [0, 0, 0]
    assert [rep["retry"][f"16/{c}"]["correct"] for c in (4, 8, 16)] == [0, 2, 2]
    md = (tmp_path / "study" / "report.md").read_text()
    assert "| 16 | 100.0% [51.0, 100.0] (n=4) |" in md and "| 16 | 100.0% [34.2, 100.0] (n=2) | 8 |" in md
    # the stored records hold every raw reply: the trial-1 reply the reflection was written on is cut at 8
    rec = next(json.loads(line) for line in (tmp_path / "study" / "parts" / "chunk-000000.jsonl").read_text().splitlines()[1:]
               if json.loads(line).get("reflection"))
    assert rec["trial1"]["tokens"] == 16 and set(rec["retries"]) == {"4", "16"}


def test_a_killed_run_resumes_and_other_settings_are_refused(tmp_path, bbh_dir):
    cfg, _, engine = study(tmp_path, bbh_dir)
    cap_study.run(cfg, engine, Words())
    first = (tmp_path / "study" / "report.json").read_text()
    (tmp_path / "study" / "parts" / "chunk-000001.jsonl").unlink()  # as if killed inside the last chunk
    assert cap_study.run(cfg, engine, Words())["resumed_chunks"] == 1
    assert (tmp_path / "study" / "report.json").read_text() == first
    other, _, _ = study(tmp_path, bbh_dir, trial_cap=16)
    with pytest.raises(UserError, match="other settings .*trial_cap"):
        cap_study.run(other, engine, Words())


@pytest.mark.parametrize("over, message", [
    ({"caps": "128,x"}, "--caps: expected comma-separated token counts"),
    ({"trial_cap": 100}, "--trial_cap: 100 is not one of --caps"),
    ({"reflection_caps": "128,1024"}, "--reflection_caps: 1024 is above the longest cap"),
    ({"chunk_size": 0}, "--chunk_size: must be at least 1"),
])
def test_bad_settings_are_one_error_naming_the_option(tmp_path, over, message):
    cfg = cap_study.StudyConfig(output=str(tmp_path / "s"), **over)
    with pytest.raises(UserError, match=message):
        cfg.check()


def test_the_stops_are_the_bbh_tasks_own():
    assert cap_study.task_stops() == ("</s>", "Q:", "<|im_end|>")


def test_report_only_reads_the_finished_chunks_with_the_folders_own_settings(tmp_path, bbh_dir):
    """A report of a study still running (or stopped part way): from its folder's settings, whatever
    the command line says besides --output, and generating nothing."""
    cfg, _, engine = study(tmp_path, bbh_dir)
    cap_study.run(cfg, engine, Words())
    (tmp_path / "study" / "parts" / "chunk-000001.jsonl").unlink()  # one of two chunks finished
    (tmp_path / "study" / "report.json").unlink()
    args = cap_study.parse_args(["--output", str(tmp_path / "study"), "--report_only", "true", "--caps", "1,2"])
    assert args.report_only is True
    assert cap_study.run(args) == {"chunks_finished": 1, "questions": 3, "subtasks": 2}
    rep = json.loads((tmp_path / "study" / "report.json").read_text())
    assert set(rep["trial1"]) == {"4", "8", "16"} and rep["trial1"]["16"]["n"] == 3
    assert not (tmp_path / "study" / "parts" / "chunk-000001.jsonl").exists()  # nothing generated
    assert cap_study.parse_args(["--report_only", "false"]).report_only is False
    with pytest.raises(UserError, match="no cap study here"):
        cap_study.run(cap_study.parse_args(["--output", str(tmp_path / "none"), "--report_only", "true"]))
