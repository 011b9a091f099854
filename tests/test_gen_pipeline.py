"""reflectevo_gen end to end on the README demo's generation: its records, their curation and publishing
to the loopback Hub. On the scripted generator (exact counts, sharding and merge, bad input rows):
tests/test_gen_scripted.py; resume after SIGKILL: tests/test_multiprocess.py."""

from pathlib import Path

import pytest

from curation_checks import check_curated_configs
from hub_fixtures import hub, hub_server  # noqa: F401  (fixtures)
from reflectevo.errors import UserError
from reflectevo_gen.config import GenConfig
from reflectevo_gen.curate import CONFIGS, CurateOptions, curate, read_curated, write_curated
from reflectevo_gen.pipeline import run
from reflectevo.chunk_store import read_records
from reflectevo_tasks import prompts
from reflectevo_tasks.answers import CORRECT
from reflectevo_tasks.instructions import find_instruction
from reflectevo_tasks.questions import Question

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gen_run(demo_generation):
    """The README demo's generation step (conftest's demo_generation, shared with tests/test_evolve.py)."""
    cfg, summary = demo_generation
    return cfg, summary, read_records(cfg.output)


@pytest.fixture(scope="module")
def curated(gen_run, engine, tmp_path_factory):
    _, _, records = gen_run
    result = curate(records, CurateOptions(), engine)
    folder = tmp_path_factory.mktemp("cur") / "curated"
    write_curated(result, folder, "test")
    return result, folder


def test_records_cover_every_question_with_provenance(gen_run):
    cfg, summary, records = gen_run
    assert summary["questions"] == 16 and len({r["question_id"] for r in records}) == 16
    assert len({r["record_id"] for r in records}) == len(records)
    for r in records:
        assert r["source"].startswith("bbh/") and isinstance(r["index"], int)
        assert r["models"]["generator"]["model_revision"].startswith("sha256:")
        assert r["sampling"]["reflection"]["temperature"] == 0.8 and r["versions"]["lm_eval"]
        if r["reflection"] is None:
            assert r["trial1"]["outcome"] == CORRECT
        else:
            assert r["trial1"]["outcome"] != CORRECT
            # the retry is built on trial 1 and the reflection, never on another retry
            retry_msgs = r["retry"]["messages"]
            assert retry_msgs[-2] == {"role": "assistant", "content": r["trial1"]["output"].strip()}
            assert r["reflection"]["output"].strip() in retry_msgs[-1]["content"]
            # the reflection prompt is a function of question, attempt, instruction and verdict only
            q = Question.from_dict(r["question"])
            again = prompts.reflection_prompt(q, r["trial1"]["output"], find_instruction(r["reflection"]["instruction_id"]),
                                              r["trial1"]["outcome"])
            assert r["reflection"]["messages"] == again.as_list()
    wrong = {r["question_id"] for r in records if r["reflection"] is not None}
    per_q = [sum(r["question_id"] == q for r in records) for q in wrong]
    assert cfg.instruction_ids == "sample:2"
    assert per_q and all(n == 2 * cfg.reflections_per_instruction for n in per_q)  # instructions x reflections


def test_curated_configs_are_consistent(curated):
    """Carries test_curated_configs_are_consistent[embedded] (the [scripted] case is in tests/test_gen_scripted.py)."""
    result, folder = curated
    check_curated_configs(result, folder, questions=16)


def test_resume_refuses_other_settings(tmp_path, gen_run):
    cfg, _, _ = gen_run
    other = GenConfig(**{**cfg.__dict__, "seed": 5})
    with pytest.raises(UserError, match="other settings .*seed"):
        run(other, show_progress=False)


def test_push_then_pull_at_tag_is_identical_and_card_has_stats(curated, hub):  # noqa: F811
    from reflectevo.hub.client import pull_dataset
    from reflectevo_gen.publish import push

    result, folder = curated
    repo = hub.repo("reflections")
    sha = push(str(folder), repo, tag="run-1", token=hub.token, endpoint=hub.url, command="reflectevo gen push …")
    assert len(sha) == 40
    local = read_curated(folder)
    for config in CONFIGS:  # pull_dataset itself checks file and row hashes against the repo at the tag
        pulled = pull_dataset(repo, config, "run-1", cache_dir=hub.fresh_dir(f"pull-{config}"), token=hub.token, endpoint=hub.url)
        rows = pulled.dataset["train"].to_list()
        assert len(rows) == len(local[config]) > 0, config
        assert [r["question_id"] for r in rows] == [r["question_id"] for r in local[config]], config
    from huggingface_hub import hf_hub_download

    card = Path(hf_hub_download(repo, "README.md", repo_type="dataset", revision="run-1", token=hub.token,
                                cache_dir=hub.fresh_dir("card"))).read_text()
    assert "| source task |" in card and "license: apache-2.0" in card and "d_pm" in card
