"""A scripted stand-in for the lm-eval models the engines build, so that a test can run the real
generation, curation and evaluation code (the commands and the Python API alike) without a
language model.

`use_scripted_models(monkeypatch)` makes every engine the project builds (the generator, the
reflector, the Dpref judge, the `reflectevo` lm-eval model's base and reflector) a `ScriptedLM`.
The script, per question of BBH (looked up by its text in the prompt):

* trial 1 is right for one question in three (by a stable hash of its text), else gives no answer;
* reflections cycle through four texts; a retry after the first or third is right, after the
  second or fourth it gives no answer; a one-stage reply ("Corrected solution:") is right;
* the log-likelihood of a continuation is -k after the k-th reflection text, so Dpref pairs of two
  fixing reflections have a margin of 2, well above curation's noise threshold.
"""

from __future__ import annotations

import hashlib

from reflectevo_tasks import bbh, prompts

REFLECTIONS = (
    "Diagnosis: I answered before checking each step named in the question. Plan: list every step first.",
    "Diagnosis: the second sentence was skipped entirely. Plan: restate every clause in my own words.",
    "Diagnosis: I trusted a first impression over the facts given. Plan: test the claim against each fact.",
    "Diagnosis: the wording confused me and I guessed. Plan: underline the key term, then reason slowly.",
)
NO_ANSWER = "I am not sure how to settle this one."


def right_at_trial_one(question_text: str) -> bool:
    return int(hashlib.sha256(question_text.strip().encode()).hexdigest(), 16) % 3 == 0


class ScriptedChat:
    """What the engines ask of an lm-eval model besides its replies: a chat template (each message
    tagged with its role), a name, one process. Test files' scripted models build on it."""

    tokenizer = None
    tokenizer_name = "scripted"
    rank, world_size = 0, 1

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"

    def chat_template(self, chat_template=False):
        return "scripted template"

    def get_model_info(self):
        return {}


class ScriptedLM(ScriptedChat):
    """An lm-eval model's interface (chat template, generate_until, loglikelihood) over the script."""

    def __init__(self, gold: dict[str, str]):
        self.gold = gold  # question text -> gold answer
        self.reflections = 0

    def get_model_info(self):
        return {"model_num_parameters": 0}

    def _question(self, context: str) -> str:
        hits = [text for text in self.gold if text in context]
        assert hits, f"scripted model: no BBH question in the prompt {context[:300]!r}"
        return max(hits, key=len)  # a short question may sit inside a longer one

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for context, _ in (r.args for r in requests):
            question = self._question(context)
            right = f"Checking it step by step. So the answer is {self.gold[question]}."
            last_user = context.rsplit("<user>", 1)[1]
            if prompts.CORRECTED_HEADING in last_user:
                out.append(f"{REFLECTIONS[0]}\n\n{prompts.CORRECTED_HEADING}\n{right}")
            elif "Write a reflection" in last_user:
                out.append(REFLECTIONS[self.reflections % len(REFLECTIONS)])
                self.reflections += 1
            elif "solve the question again" in last_user:
                fixes = any(REFLECTIONS[k] in last_user for k in (0, 2))
                out.append(right if fixes else NO_ANSWER)
            else:
                out.append(right if right_at_trial_one(question) else NO_ANSWER)
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        scores = []
        for context, _continuation in (r.args for r in requests):
            k = next((i for i, text in enumerate(REFLECTIONS) if text in context), len(REFLECTIONS))
            scores.append((-float(k), False))
        return scores


def bbh_gold(folder=None) -> dict[str, str]:
    """Question text -> gold answer over every item of every BBH subtask (both splits)."""
    return {q.question.strip(): q.answer for q in bbh.load_all(folder)}


def use_scripted_models(monkeypatch, folder=None) -> dict[str, str]:
    """Make every engine the project builds a ScriptedLM; returns the gold answers it knows."""
    import harness_plugins.reflect_model as reflect_model
    import reflectevo_tasks.engine as engine_module

    gold = bbh_gold(folder)

    def build(cfg):
        return ScriptedLM(gold)

    # looked up at call time by engine_pair, Engine and the lm-eval model, so every model they build is this one
    monkeypatch.setattr(engine_module, "build_lm", build)
    monkeypatch.setattr(reflect_model, "_build", build)
    return gold
