"""Generation settings: one dataclass, filled from YAML files (`--config`, repeatable) and CLI
overrides, the way TRL's example scripts are configured (the layering is reflectevo.settings')."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from reflectevo.errors import UserError


@dataclass
class GenConfig:
    output: str = field(default="runs/gen", metadata={"help": "output folder (resumable)"})
    source: str = field(default="bbh-pool", metadata={"help": "question source: bbh-pool[:subtask,…] (BBH's generation pool, disjoint from its test split), bigbench[:task,…] (opt-in, needs the archive), math[:PATH|:ORG/NAME], mbpp[:PATH|:ORG/NAME] (docs/math-and-code.md) or a dataset spec .yaml; items of BBH's test split are refused"})
    answer_kinds: str | None = field(default=None, metadata={"help": "keep only questions with these answer kinds, comma-separated (choice, yes_no, true_false, valid_invalid, integer, dyck, word_sort, free_text, math, code); --limit counts the kept ones (default: every kind)"})
    question_ids: str | None = field(default=None, metadata={"help": "keep only these questions: ids comma-separated, or @file with one id per line (e.g. to regenerate a slice of an earlier run); --limit counts the kept ones (default: every question)"})
    limit: int | None = field(default=None, metadata={"help": "use the first N questions of the source (default: all of them)"})
    shard: str = field(default="0/1", metadata={"help": "i/N: process the i-th of N stable-hash shards of the questions"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "generator model (answers trial 1 and retries)"})
    model_revision: str | None = field(default=None, metadata={"help": "generator revision (default: the model's main branch)"})
    reflector: str | None = field(default=None, metadata={"help": "reflector model (default: the generator)"})
    reflector_revision: str | None = field(default=None, metadata={"help": "revision of --reflector (default: its main branch; without --reflector, the generator's revision)"})
    reflector_peft: str | None = field(default=None, metadata={"help": "LoRA adapter (folder or repo) on the reflector's base (default: none)"})
    reflector_peft_revision: str | None = field(default=None, metadata={"help": "adapter revision, recorded in provenance (default: main for a Hub adapter, the sha256 of its weights for a folder)"})
    reflector_merge_adapter: bool = field(default=False, metadata={"help": "serve that adapter merged into the weights: a plain model for the engine, where its LoRA path is slow (vLLM's CPU build); recorded in provenance"})
    engine: str = field(default="hf", metadata={"help": "hf, vllm or local-chat-completions"})
    model_args: str = field(default="", metadata={"help": "extra lm-eval model_args for the engine, k=v,k=v (default: none)"})
    dtype: str | None = field(default=None, metadata={"help": "float32, bfloat16, … (default: the model's own)"})
    batch_size: int = field(default=16, metadata={"help": "engine batch size"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, … (hf engine) (default: cpu)"})
    instruction_pool: str = field(default="abc", metadata={"help": "abc, legacy, default or a pool file"})
    instruction_ids: str = field(default="sample:2", metadata={"help": "comma-separated ids, 'all', or sample:K (K per question, stable hash)"})
    reflections_per_instruction: int = field(default=2, metadata={"help": "reflections sampled per instruction"})
    reflection_temperature: float = field(default=0.8, metadata={"help": "sampling temperature of reflections"})
    reflection_top_p: float = field(default=1.0, metadata={"help": "top-p of reflections"})
    reflection_max_new_tokens: int = field(default=512, metadata={"help": "max new tokens of a reflection"})
    trial_max_new_tokens: int = field(default=256, metadata={"help": "max new tokens of trial 1 and of the retry (greedy)"})
    seed: int = field(default=0, metadata={"help": "seed of reflection sampling (per chunk, so resumes repeat it)"})
    chunk_size: int = field(default=32, metadata={"help": "questions per atomically written chunk"})
    bbh_dir: str | None = field(default=None, metadata={"help": "local BBH folder (default: REFLECTEVO_BBH_DIR, else the Hub)"})
    trial1_from: str | None = field(default=None, metadata={"help": "take trial 1 from an earlier `gen run` folder instead of generating it: the same generator and trial settings (checked), e.g. a second round whose reflector is a trained adapter; every question must have been answered there (default: generate it)"})
    allow_unisolated_code: bool = field(default=False, metadata={"help": "where no isolated sandbox can be built, run code answers (mbpp) unisolated, as this user with the network and this user's files in reach; recorded in every record's provenance (default: refuse)"})

    def shard_parts(self) -> tuple[int, int]:
        try:
            i, n = (int(x) for x in self.shard.split("/"))
        except ValueError:
            raise UserError(f"--shard: expected i/N, got {self.shard!r}") from None
        if n < 1 or not 0 <= i < n:
            raise UserError(f"--shard: need 0 <= i < N, got {self.shard!r}")
        return i, n

    def check(self) -> None:
        self.shard_parts()
        for name in ("batch_size", "chunk_size", "reflections_per_instruction", "reflection_max_new_tokens", "trial_max_new_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name}: must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit: must be at least 1")
        from reflectevo_tasks.sources import parse_ids, parse_kinds

        parse_kinds(self.answer_kinds)
        parse_ids(self.question_ids)

    def identity(self) -> dict:
        """The settings that determine the records; a resumed run must match them."""
        d = asdict(self)
        # allow_unisolated_code changes where code runs, not its verdicts: each record says how it ran
        # trial1_from changes where trial 1's text comes from, not the text (the settings it depends on
        # are checked against that run's): each record says where it came from
        for volatile in ("output", "batch_size", "device", "allow_unisolated_code", "trial1_from"):
            d.pop(volatile)
        # left out when unset, so earlier runs still resume
        for added_later in ("answer_kinds", "question_ids", "reflector_merge_adapter"):
            if d[added_later] in (None, False):
                d.pop(added_later)
        if self.question_ids:  # the ids themselves, not the file that listed them
            from reflectevo_tasks.sources import parse_ids

            d["question_ids"] = sorted(parse_ids(self.question_ids))
            if self.limit is not None and self.limit >= len(d["question_ids"]):
                d["limit"] = None  # keeps every listed question, as no limit does: the same records
        from reflectevo_tasks.answers import GATE_VERSION

        # the trial-1 verdict (strict) decides which questions are reflected on: records gated by
        # another strict scorer must not be mixed with these. The key keeps its old name and value
        # (GATE_VERSION continues SCORING_VERSION 2) so that runs begun before the two were told
        # apart still resume; a flexible-only scorer change leaves it alone
        d["scoring_version"] = GATE_VERSION
        return d

    def identity_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]


def parse_config(cls, argv: list[str], prog: str):
    """Dataclass from `--config` YAML files (in order) plus CLI overrides: the layering every
    command shares (reflectevo.settings)."""
    from reflectevo.settings import parse

    (cfg,) = parse([cls], argv, prog).values
    return cfg
