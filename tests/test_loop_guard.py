"""reflectevo_tasks.loop_guard: where a reply starts repeating itself, in one pass and token by token,
and scripts/loop_guard_check.py, which measures what ending replies there would change."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from reflectevo_tasks.loop_guard import MIN_PERIOD, REPEATS, LoopWatch, loop_end

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def brute_force(ids, min_period, max_period, repeats):
    for t in range(1, len(ids) + 1):
        for p in range(min_period, max_period + 1):
            if repeats * p > t:
                break
            if all(ids[t - (k + 1) * p:t - k * p] == ids[t - p:t] for k in range(repeats)):
                return t
    return None


def watch_end(ids, **rule):
    w = LoopWatch(**rule)
    return next((i + 1 for i, token in enumerate(ids) if w.push(token)), None)


@pytest.mark.parametrize("rule", [dict(min_period=4, max_period=20, repeats=3), dict(min_period=2, max_period=9, repeats=4)])
def test_scan_and_watch_agree_with_the_definition(rule):
    rng = random.Random(1)
    found = 0
    for _ in range(400):
        ids = [rng.randint(0, 4) for _ in range(rng.randint(0, 90))]
        if rng.random() < 0.6:
            block = [rng.randint(0, 40) for _ in range(rng.randint(1, 14))]
            at = rng.randint(0, len(ids))
            ids = ids[:at] + block * rng.randint(2, 6) + ids[at:]
        expected = brute_force(ids, rule["min_period"], rule["max_period"], rule["repeats"])
        found += expected is not None
        assert loop_end(ids, **rule) == expected == watch_end(ids, **rule), ids
    assert found > 50  # the cases held loops of every kind, not only their absence


def test_defaults_cut_a_paragraph_loop_and_leave_short_repeats():
    sentence = list(range(100, 100 + MIN_PERIOD))  # a block as short as the rule looks at
    reply = [1, 2, 3] + sentence * REPEATS + [9] * 20
    assert loop_end(reply) == 3 + MIN_PERIOD * REPEATS  # ends with the last copy, nothing after
    assert loop_end([1, 2, 3] + sentence * (REPEATS - 1) + [9, 8]) is None  # one copy short
    short = [7, 8, 9] * 10  # a repeated short phrase (a list of brackets, digits) is not a loop here
    assert loop_end(short) is None and watch_end(short) is None


def test_check_counts_cuts_savings_and_changed_verdicts():
    import loop_guard_check as L

    from reflectevo_tasks import bbh

    class WordTokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]}

        def decode(self, ids):
            words = {v: k for k, v in self.vocab.items()}
            return " ".join(words[i] for i in ids)

        vocab: dict = {}

    q = bbh.make_question("navigate", 0, "If you follow these instructions, do you return to the starting point? "
                          "Take 1 step.\nOptions:\n- Yes\n- No", "No")
    loop = " ".join(f"w{i}" for i in range(MIN_PERIOD)) + " "
    stays = "Let's think step by step. So the answer is No. " + loop * (REPEATS + 2)
    # the loop completes before the reply leaves it to answer: cut there, the answer is lost
    leaves = "Let's think step by step. " + loop * REPEATS + "So the answer is No."
    turns = [("a:trial1", "answer", q, "Let's think step by step.", stays),
             ("b:retry", "answer", q, "Let's think step by step.", leaves),
             ("b:reflection", "reflection", q, "", loop * (REPEATS + 1))]
    report = L.check(turns, WordTokenizer())
    answers = report["answer_turns"]
    assert answers["replies"] == 2 and answers["cut_by_the_rule"] == 2
    assert answers["tokens_saved"] == 2 * MIN_PERIOD + 5  # two copies more than the rule needs; the answer
    assert [(c["where"], c["stored"], c["cut"]) for c in answers["changes"]] == \
        [("b:retry", "correct", "no_answer")] * 2  # at both levels
    assert report["reflections"]["cut_by_the_rule"] == 1 and report["reflections"]["tokens_saved"] == MIN_PERIOD
    assert report["loop_periods"] == {MIN_PERIOD: 3}
