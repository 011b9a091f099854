"""Trial 1 taken from an earlier generation run (`gen run --trial1_from DIR`).

A second self-evolution round asks a trained reflector for new reflections on the same questions.
Trial 1 is the generator's greedy reply: with the same generator, settings and prompt it is the reply
the first round already stored, so generating it again spends about a fifth of the run (20% of the
test-split pool generation's time, benchmarks/RESULTS.md) for the same text.
This module reads those replies and refuses a run whose trial 1 could differ.
"""

from __future__ import annotations

from pathlib import Path

from reflectevo.chunk_store import RecordStore, read_json_object
from reflectevo.errors import UserError
from reflectevo_tasks import prompts as P
from reflectevo_tasks.questions import Question

# the settings a greedy trial-1 reply depends on; every other setting (reflector, instructions,
# reflection sampling, seed, chunking) may differ between the two runs
TRIAL1_SETTINGS = ("model", "model_revision", "engine", "model_args", "dtype", "trial_max_new_tokens")


class Trial1Source:
    """question id -> the trial-1 turn an earlier run stored for it."""

    def __init__(self, folder: str | Path, turns: dict[str, dict], config_hash: str):
        self.folder = str(folder)
        self.turns = turns
        self.config_hash = config_hash

    @classmethod
    def load(cls, folder: str | Path, identity: dict) -> "Trial1Source":
        """The stored trial 1 of `folder`'s finished chunks, after checking that the run there
        answered with the same generator and settings as the run of `identity`."""
        folder = Path(folder)
        config = folder / "run_config.json"
        if not config.is_file():
            raise UserError(f"--trial1_from {folder}: not a generation run (no run_config.json)")
        other = read_json_object(config, "a run config")
        theirs = other.get("identity")
        if not isinstance(theirs, dict):
            raise UserError(f"{config}: names no single run's settings (a merged folder?); "
                            "--trial1_from needs the folder of one `gen run`")
        differ = [k for k in TRIAL1_SETTINGS if theirs.get(k) != identity.get(k)]
        if differ:
            shown = ", ".join(f"{k}: {theirs.get(k)!r} there, {identity.get(k)!r} here" for k in differ)
            raise UserError(f"--trial1_from {folder}: its trial 1 was answered under other settings ({shown})")
        store = RecordStore(folder)
        turns: dict[str, dict] = {}
        for chunk in sorted(store.done_chunks()):
            for record in store.read_chunk(chunk) or []:
                turns.setdefault(record["question_id"], record["trial1"])
        return cls(folder, turns, other.get("config_hash", ""))

    def replies(self, questions: list[Question]) -> list[str]:
        """The stored trial-1 replies of `questions`, in order; one error names the first question the
        earlier run has not answered, or answered from another prompt."""
        out = []
        for q in questions:
            turn = self.turns.get(q.id)
            if turn is None:
                raise UserError(f"--trial1_from {self.folder}: no trial 1 for {q.id} there (that run has not "
                                "reached it, or drew other questions); finish or resume that run first")
            prompt = P.trial_prompt(q)
            if turn.get("messages") != prompt.as_list() or turn.get("reply_prefix") != prompt.reply_prefix:
                raise UserError(f"--trial1_from {self.folder}: {q.id} was asked with another trial-1 prompt there "
                                "(prompts changed since that run)")
            out.append(turn["output"])
        return out

    def describe(self) -> dict:
        """What the records say of where their trial 1 came from."""
        return {"run": self.folder, "config_hash": self.config_hash}
