"""docs/api.md is a contract (issue #30, item 4): every Python snippet in it runs as written.

The snippets run in the order the page gives them, in one namespace (as a reader pasting them into
one session would), in a fresh folder, with every language model the project builds replaced by
the scripted one of `scripted_models`: the code under test is the real pipeline, curation, trainer
and lm-eval model. Fast: every snippet but those of the "Train" section, which trains the embedded
model for a few steps. Slow: the whole page, training included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripted_models import use_scripted_models

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SECTIONS = ("Generate", "Curate", "Evaluate", "Train")  # the page's sections, in its order
SLOW_SECTIONS = {"Train"}
TASK = "reflectevo_bbh_test_navigate"


def snippets(text: str) -> list[tuple[str, str]]:
    """(section heading, code) of every ```python block, in the page's order."""
    found, section, code = [], None, None
    for line in text.splitlines():
        if code is not None:
            if line.strip() == "```":
                found.append((section, "\n".join(code) + "\n"))
                code = None
            else:
                code.append(line)
        elif line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```python":
            code = []
    assert code is None, "docs/api.md: a ```python block is never closed"
    return found


def run_snippets(selected: list[tuple[str, str]], folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "api_docs"}
    for section, code in selected:
        try:
            exec(compile(code, f"docs/api.md ({section})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"a snippet of section {section!r} failed: {type(exc).__name__}: {exc}\n{code}") from exc
    return namespace


def test_the_page_has_a_snippet_for_each_step():
    found = snippets(DOC.read_text(encoding="utf-8"))
    assert [s for s in dict.fromkeys(section for section, _ in found)] == list(SECTIONS)
    assert len(found) >= len(SECTIONS)


def _check_generated_and_curated(folder: Path, out: str) -> None:
    summary = json.loads((folder / "runs/api/gen/summary.json").read_text())
    assert summary["questions"] == 6 and summary["records"] > 6 and summary["fixed_by_retry"] > 0
    assert f"{summary['records']} records, {summary['fixed_by_retry']} fixed by a retry" in out
    assert "6 4" in out  # the YAML snippet: limit from its file, seed from the option after it
    stats = json.loads((folder / "runs/api/curated/stats.json").read_text())
    assert stats["options"]["max_pairs"] == 4
    for name in ("d_plus", "d_pm", "d_pref", "sft_qa"):
        rows = (folder / f"runs/api/curated/{name}.jsonl").read_text().splitlines()
        assert rows, f"{name} is empty: the scripted run should give every set rows"


def test_every_snippet_but_training_runs_on_scripted_models(bbh_dir, tmp_path, monkeypatch, capsys):
    use_scripted_models(monkeypatch, bbh_dir)
    fast = [(s, c) for s, c in snippets(DOC.read_text(encoding="utf-8")) if s not in SLOW_SECTIONS]
    namespace = run_snippets(fast, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    _check_generated_and_curated(tmp_path, out)
    row = namespace["results"]["results"][TASK]
    # scripted: a right trial 1 stays right (oracle mode), a wrong one is fixed by reflections 1 and 3
    assert 0 <= row["acc_t1,none"] <= row["acc_t2,none"] <= 1
    assert f"trial 1: {row['acc_t1,none']} after reflection: {row['acc_t2,none']}" in out
    assert namespace["results"]["config"]["reflectevo"]["base"]["model"] == "smollm2-135m-instruct"


@pytest.mark.slow
def test_the_whole_page_runs_training_included(bbh_dir, embedded_model_dir, tmp_path, monkeypatch, capsys):
    use_scripted_models(monkeypatch, bbh_dir)
    namespace = run_snippets(snippets(DOC.read_text(encoding="utf-8")), tmp_path, monkeypatch)
    out = capsys.readouterr().out
    _check_generated_and_curated(tmp_path, out)
    trained = Path(namespace["trained"].output_dir)
    assert (trained / "adapter_model.safetensors").is_file() and (trained / "provenance.json").is_file()
    assert all(stage["train_loss"] == stage["train_loss"] for stage in namespace["trained"].stages)  # not NaN
    info = namespace["adapter"]["config"]["reflectevo"]
    assert info["reflector"] != "same as base" and "after reflection, trained reflector:" in out
