"""Training data: load curated rows, build prompts with the shared builders, tokenize.

Rows come from a Hub dataset repo at a revision (through `reflectevo.hub.client.pull_dataset`,
which records the resolved sha and verifies the files) or from a local curated folder
(`<config>.jsonl`, as `reflectevo gen curate` writes them). Every check on the rows happens here,
before a model is loaded, so bad input stops a run with one `UserError` line.

Prompts are built with `reflectevo_tasks.prompts` -- the same functions generation and evaluation
call -- and rendered exactly like `reflectevo_tasks.engine.Engine.render`: the model's own chat
template with the generation prompt, followed by the prompt's `reply_prefix`. The completion is
what the model wrote after that point (recorded outputs include the prefix, which is cut off),
followed by the tokenizer's end-of-sequence token.

Prompt and completion are tokenized separately and concatenated, which is what the model sees at
inference (the rendered prompt is tokenized on its own, then tokens are generated after it); the
labels are -100 on every prompt token, so the loss covers completion tokens only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from reflectevo.errors import UserError
from reflectevo_tasks import prompts as P
from reflectevo_tasks.answers import CODE, WRONG
from reflectevo_tasks.instructions import Instruction, find_instruction
from reflectevo_tasks.questions import Question
from reflectevo_train.config import Setting

IGNORE_INDEX = -100
LEAK_MIN_CHARS = 16  # targets shorter than this can occur in a prompt by chance; not checked


# ---------------------------------------------------------------------------------------- loading
@dataclass
class TrainingRows:
    rows: list[dict]
    columns: list[str]
    source: dict  # provenance of the data, safe to publish
    held_out: list[dict] = field(default_factory=list)  # validation rows (--validation_fraction), never trained on
    two_answer_excluded: int = 0  # rows left out by --exclude_two_answer
    fraction_of_questions: tuple[int, int] | None = None  # (questions kept, of) by --data_fraction


def _looks_local(spec: str) -> bool:
    return os.path.exists(os.path.expanduser(spec)) or spec.startswith((".", "/", "~"))


def load_rows(spec: str, config: str, split: str = "train", *, token: str | None = None,
              endpoint: str | None = None, cache_dir: str | None = None) -> TrainingRows:
    """Rows of `config` from a Hub dataset `namespace/name@revision` or a local curated folder."""
    if _looks_local(spec):
        return _load_local(Path(os.path.expanduser(spec)), config)
    from reflectevo.hub.client import parse_repo_ref, pull_dataset

    ref = parse_repo_ref(spec)  # UserError when it is neither a folder nor a repo reference
    if ref.repo_type not in (None, "dataset"):
        raise UserError(f"--dataset {spec}: expected a dataset repo, got a {ref.repo_type} reference")
    from reflectevo.hub.errors import HubError

    try:
        pulled = pull_dataset(ref.repo_id, config, ref.revision or "main", cache_dir, token=token, endpoint=endpoint)
    except HubError as exc:
        # `datasets` refuses to load a split whose parquet file has no rows (what `gen push` writes
        # for an empty set); say so in the same words as for any other empty set
        if "corresponds to no data" in str(exc):
            raise UserError(f"dataset {ref.repo_id}@{ref.revision or 'main'}: {_set_name(config)} is empty "
                            f"(config '{config}' has 0 rows), nothing to train on") from None
        raise
    if split not in pulled.dataset:
        raise UserError(f"dataset {ref.repo_id}@{pulled.sha} config '{config}' has no split '{split}' "
                        f"(splits: {', '.join(pulled.dataset)})")
    ds = pulled.dataset[split]
    source = {"kind": "hub", "repo_id": ref.repo_id, "config": config, "split": split,
              "revision": ref.revision or "main", "sha": pulled.sha, "endpoint": pulled.endpoint,
              "files": dict(pulled.files), "content_hash": pulled.content_hashes.get(split)}
    return TrainingRows(ds.to_list(), list(ds.column_names), source)


def _load_local(path: Path, config: str) -> TrainingRows:
    if path.is_file():
        file = path
    elif path.is_dir():
        file = path / f"{config}.jsonl"
        if not file.is_file():
            have = ", ".join(sorted(p.stem for p in path.glob("*.jsonl"))) or "none"
            raise UserError(f"{path}: no {config}.jsonl in this folder (configs found: {have})")
    else:
        raise UserError(f"--dataset {path}: no such file or folder")
    rows, columns = [], {}
    raw = file.read_bytes()
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}:{n}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{file}:{n}: not a JSON object")
        rows.append(row)
        columns.update(dict.fromkeys(row))
    source = {"kind": "local", "path": str(file.resolve()), "config": config,
              "sha256": hashlib.sha256(raw).hexdigest()}
    return TrainingRows(rows, list(columns), source)


def describe_source(source: dict) -> str:
    if source.get("kind") == "hub":
        return f"{source['repo_id']}@{source['sha'][:12]} (config {source['config']})"
    return f"{source.get('path')}"


def _set_name(config: str) -> str:
    return {"d_plus": "D+", "d_pm": "D±", "d_pref": "Dpref", "sft_qa": "sft_qa"}.get(config, f"config '{config}'")


def check_rows(data: TrainingRows, setting: Setting, where: str) -> None:
    """Refuse an empty set or rows without the columns the setting needs (before any training)."""
    if not data.rows:
        raise UserError(f"{where}: {_set_name(data.source.get('config', ''))} is empty (0 rows), nothing to train {setting.name} on; "
                        "generate more data or pick another config/revision")
    missing = [c for c in setting.columns if c not in data.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)} needed by {setting.name} "
                        f"(has: {', '.join(data.columns)})")
    for i, row in enumerate(data.rows):
        absent = [c for c in setting.columns if c not in row]
        if absent:
            raise UserError(f"{where}: row {i} lacks {', '.join(absent)}")


# ---------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class SFTExample:
    prompt: P.Prompt
    completion: str  # the text the model writes after the rendered prompt (no end-of-sequence token)
    row: int


@dataclass(frozen=True)
class PreferenceExample:
    prompt: P.Prompt
    chosen: str
    rejected: str
    row: int


@dataclass
class BuildStats:
    rows: int = 0
    examples: int = 0
    dropped: dict = field(default_factory=dict)  # reason -> rows left out
    notes: dict = field(default_factory=dict)  # reason -> rows kept but worth knowing about

    def drop(self, why: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def note(self, what: str) -> None:
        self.notes[what] = self.notes.get(what, 0) + 1

    def as_dict(self) -> dict:
        return {"rows": self.rows, "examples": self.examples, "dropped": dict(self.dropped), "notes": dict(self.notes)}


def _question(row: dict, i: int, where: str) -> Question:
    raw = row["question_json"]
    try:
        d = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return Question.from_dict(d)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{where}: row {i}: question_json is not a question record ({type(exc).__name__}: {exc})") from None


def after_prefix(output: str, prefix: str) -> tuple[str, bool]:
    """(what follows `prefix` in a recorded output, whether the prefix was there).

    Recorded trial and retry outputs start with the reply prefix we wrote for the model; the model
    wrote only the rest. An output without the prefix is kept whole, after one space.
    """
    if not prefix:
        return output.rstrip(), True
    if output.startswith(prefix):
        return output[len(prefix):].rstrip(), True
    return " " + output.strip(), False


def _text(row: dict, key: str) -> str:
    v = row.get(key)
    return v if isinstance(v, str) else ""


def _feedback(row: dict, q: Question, i: int, where: str) -> str | None:
    """The trial-1 feedback the row's reflection and retry prompts showed beyond the verdict (code
    items: the first failing test); None for other items, whose prompts show the verdict alone."""
    if q.kind != CODE:
        return None
    text = row.get("trial1_feedback")
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{where}: row {i}: a code item without trial1_feedback (the first failing test its "
                        "prompts showed); curate the run again with this version")
    return text


def build_examples(setting: Setting, stage: str, rows: Iterable[dict], instruction: str | Instruction,
                   where: str = "dataset") -> tuple[list, BuildStats]:
    """Examples of one stage of a setting, from curated rows.

    Rows with an empty target are dropped and counted; a row whose prompt would contain its
    target verbatim is dropped and counted as a leak (see `leaks`).
    """
    ins = instruction if isinstance(instruction, Instruction) else find_instruction(instruction)
    stats = BuildStats()
    out: list = []
    for i, row in enumerate(rows):
        stats.rows += 1
        q = _question(row, i, where)
        trial1 = _text(row, "trial1")
        feedback = _feedback(row, q, i, where)
        if setting.is_dpo:
            chosen, rejected = _text(row, "chosen").strip(), _text(row, "rejected").strip()
            if not trial1.strip() or not chosen or not rejected:
                stats.drop("empty_field")
                continue
            if chosen == rejected:
                stats.drop("chosen_equals_rejected")
                continue
            ex = PreferenceExample(P.reflection_prompt(q, trial1, ins, WRONG, feedback), chosen, rejected, i)
        elif stage == "answer":
            completion, had = after_prefix(_text(row, "answer"), P.reply_prefix(q.kind))
            if not had:
                stats.note("answer_without_reply_prefix")
            if not completion.strip():
                stats.drop("empty_field")
                continue
            ex = SFTExample(P.trial_prompt(q), completion, i)
        else:
            reflection, retry = _text(row, "reflection").strip(), _text(row, "retry")
            if not trial1.strip() or not reflection or not retry.strip():
                stats.drop("empty_field")
                continue
            if stage == "one_stage":
                corrected, had = after_prefix(retry, P.reply_prefix(q.kind))
                if not had:
                    stats.note("retry_without_reply_prefix")
                ex = SFTExample(P.one_stage_prompt(q, trial1, ins, WRONG, feedback),
                                P.one_stage_target(reflection, corrected), i)
            elif stage == "reflection":
                ex = SFTExample(P.reflection_prompt(q, trial1, ins, WRONG, feedback), reflection, i)
            elif stage == "retry":
                p = P.retry_prompt(q, trial1, reflection, WRONG, feedback_text=feedback)
                completion, had = after_prefix(retry, p.reply_prefix)
                if not had:
                    stats.note("retry_without_reply_prefix")
                if not completion.strip():
                    stats.drop("empty_field")
                    continue
                ex = SFTExample(p, completion, i)
            else:  # pragma: no cover - stages come from SETTINGS
                raise ValueError(f"unknown stage {stage!r}")
        if leaks(ex):
            stats.drop("target_in_prompt")
            continue
        out.append(ex)
    stats.examples = len(out)
    return out, stats


def targets(ex) -> list[str]:
    return [ex.chosen, ex.rejected] if isinstance(ex, PreferenceExample) else [ex.completion]


def prompt_text_of(prompt: P.Prompt) -> str:
    """All the text a prompt shows the model (messages and reply prefix), template aside."""
    return "\n".join(m["content"] for m in prompt.messages) + "\n" + prompt.reply_prefix


def leaks(ex) -> bool:
    """True when a target (long enough to tell) appears verbatim in its own prompt."""
    shown = prompt_text_of(ex.prompt)
    return any(len(t.strip()) >= LEAK_MIN_CHARS and t.strip() in shown for t in targets(ex))


# ---------------------------------------------------------------------------------------- tokens
def render(tokenizer, prompt: P.Prompt) -> str:
    """The prompt as the evaluator renders it: chat template with generation prompt + reply prefix."""
    return tokenizer.apply_chat_template(prompt.as_list(), add_generation_prompt=True, tokenize=False) + prompt.reply_prefix


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt, the way lm-eval's HF model encodes a context: the tokenizer's
    own special-token default, except when the text already starts with the BOS token."""
    bos = getattr(tokenizer, "bos_token", None)
    kwargs = {"add_special_tokens": False} if bos and text.startswith(bos) else {}
    return list(tokenizer(text, **kwargs)["input_ids"])


def encode_completion(tokenizer, text: str) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has no end-of-sequence token; cannot mark where a reply ends")
    return ids + [tokenizer.eos_token_id]


@dataclass
class TokenStats:
    examples: int = 0
    truncated: int = 0
    dropped_prompt_too_long: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def tokenize_sft(examples: list[SFTExample], tokenizer, max_length: int | None,
                 truncation_mode: str = "keep_start") -> tuple[Any, TokenStats]:
    """A `datasets.Dataset` with input_ids and labels (-100 on prompt tokens)."""
    from datasets import Dataset

    st = TokenStats()
    cols: dict[str, list] = {"input_ids": [], "labels": []}
    for ex in examples:
        p = encode_prompt(tokenizer, render(tokenizer, ex.prompt))
        c = encode_completion(tokenizer, ex.completion)
        ids, labels = p + c, [IGNORE_INDEX] * len(p) + c
        if max_length is not None and len(ids) > max_length:
            if truncation_mode == "keep_end":
                ids, labels = ids[-max_length:], labels[-max_length:]
            else:
                if len(p) >= max_length:
                    st.dropped_prompt_too_long += 1
                    continue
                ids, labels = ids[:max_length], labels[:max_length]
            st.truncated += 1
        st.examples += 1
        st.prompt_tokens += sum(1 for x in labels if x == IGNORE_INDEX)
        st.completion_tokens += sum(1 for x in labels if x != IGNORE_INDEX)
        cols["input_ids"].append(ids)
        cols["labels"].append(labels)
    return Dataset.from_dict(cols), st


def tokenize_preferences(examples: list[PreferenceExample], tokenizer, max_length: int | None,
                         truncation_mode: str = "keep_start") -> tuple[Any, TokenStats]:
    """A `datasets.Dataset` with prompt_ids, chosen_ids, rejected_ids (TRL's DPO collator builds the
    completion mask from them: 0 on prompt tokens, 1 on chosen/rejected tokens)."""
    from datasets import Dataset

    st = TokenStats()
    cols: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for ex in examples:
        p = encode_prompt(tokenizer, render(tokenizer, ex.prompt))
        ch, rj = encode_completion(tokenizer, ex.chosen), encode_completion(tokenizer, ex.rejected)
        if max_length is not None:
            if len(p) >= max_length and truncation_mode == "keep_start":  # nothing of the reply would remain
                st.dropped_prompt_too_long += 1
                continue
            if len(p) + max(len(ch), len(rj)) > max_length:
                st.truncated += 1  # TRL's collator cuts each sequence to max_length (truncation_mode)
        st.examples += 1
        st.prompt_tokens += len(p)
        st.completion_tokens += len(ch) + len(rj)
        cols["prompt_ids"].append(p)
        cols["chosen_ids"].append(ch)
        cols["rejected_ids"].append(rj)
    return Dataset.from_dict(cols), st


def drop_two_answer_rows(data: TrainingRows, where: str) -> None:
    """--exclude_two_answer: the rows whose question has two possible answers leave `data.rows`."""
    from reflectevo_tasks.bbh import has_two_answers

    kept = [r for i, r in enumerate(data.rows) if not has_two_answers(_question(r, i, where))]
    data.two_answer_excluded = len(data.rows) - len(kept)
    if not kept:
        raise UserError(f"{where}: every one of its {len(data.rows)} rows is on a question with two possible "
                        f"answers; nothing is left to train on without --exclude_two_answer")
    data.rows = kept
