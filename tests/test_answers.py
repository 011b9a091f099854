"""Answer extraction and scoring (reflectevo_tasks.answers).

Most cases are real BIG-Bench Hard items, loaded by subtask and index from the local release
folder (REFLECTEVO_BBH_DIR, or ../shared/data/bbh next to the repository), with hand-written
model replies. Each case states the expected outcome (correct / wrong / no_answer), the
canonical answer that must be extracted, and for many the method ("marker" or "fallback").

Documented extraction policy, as these tests pin it down (the table gives the flexible level;
the strict level, the headline, agrees wherever a marker was read and finds no answer otherwise):

- the statement after the LAST answer marker ("the answer is", "answer:", "final answer =",
  `\\boxed{...}`) is read first: its sentence must commit to exactly one answer ("The answer is (A)
  or (B)" is no answer; "(B), not (A)" is (B)); a last marker with nothing usable after it hands
  over to the one before it;
- without a usable marker (flexible only) the LAST sentence that names a candidate must commit to
  exactly one, and must not be an item of a list of options ("(B) is right, not (A)" -> (B));
- "no answer found" (NO_ANSWER) is kept apart from a wrong answer.
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectevo_tasks import answers as A
from reflectevo_tasks import bbh

REPO = Path(__file__).resolve().parents[1]
BBH_DIR = Path(os.environ.get(bbh.ENV_DIR) or REPO.parent / "shared" / "data" / "bbh")
HAVE_BBH = (BBH_DIR / "bbh").is_dir()
needs_bbh = pytest.mark.skipif(not HAVE_BBH, reason=f"no local BBH release at {BBH_DIR}")

OK, BAD, NONE = A.CORRECT, A.WRONG, A.NO_ANSWER
MARK, FALL = "marker", "fallback"


@pytest.fixture(autouse=True)
def _bbh_env(monkeypatch):
    if HAVE_BBH:
        monkeypatch.setenv(bbh.ENV_DIR, str(BBH_DIR))


@functools.lru_cache(maxsize=None)
def _subtask(sub: str):
    return tuple(bbh.load_subtask(sub, BBH_DIR))


def item(sub: str, index: int):
    return _subtask(sub)[index]


@functools.lru_cache(maxsize=1)
def all_items():
    return tuple(q for sub in bbh.SUBTASKS for q in _subtask(sub))


# The sweeps over every BBH item take about a minute of CPU: the fast tier runs them on every 8th
# item (a spread over all subtasks), the slow tier on all of them, with the same checks.
SWEEP = pytest.mark.parametrize("step", [pytest.param(8, id="every-8th-item"),
                                         pytest.param(1, id="every-item", marks=pytest.mark.slow)])


# ---------------------------------------------------------------- adversarial building blocks

# 100 kB of prose with nothing answer-like for any kind: no digits, brackets, option letters
# standing alone, yes/no/true/false/valid words or number words.
FILLER = ("Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
          "incididunt ut labore et dolore magna aliqua. " * 900)[:100_000]
HUGE = FILLER * 3  # beyond the 250 kB scan bound: only the tail is read
LONG_DIGITS = "7" * 5000  # far too long to be an answer (and int() would refuse it)
RLM, ZWSP = "\u200f", "\u200b"


def case(sub, index, reply, outcome, extracted, method=None, id=None):
    return pytest.param(sub, index, reply, outcome, extracted, method, id=id)


DATE, GEO, GEO_J = ("date_understanding", 0), ("geometric_shapes", 0), ("geometric_shapes", 1)
COLORS_3, COLORS_Q = ("reasoning_about_colored_objects", 0), ("reasoning_about_colored_objects", 1)
MONSTERS, DEARTH, RITA = ("movie_recommendation", 163), ("ruin_names", 99), ("ruin_names", 144)
BOOL_F, BOOL_T = ("boolean_expressions", 0), ("boolean_expressions", 1)
CAUSAL_NO, CAUSAL_YES = ("causal_judgement", 0), ("causal_judgement", 2)
NAV_NO, LIES_NO = ("navigate", 0), ("web_of_lies", 0)
SPORT_NO, SPORT_YES = ("sports_understanding", 0), ("sports_understanding", 1)
FALLACY_INV, FALLACY_VAL = ("formal_fallacies", 0), ("formal_fallacies", 3)
ARITH_24, ARITH_NEG, ARITH_BIG = ("multistep_arithmetic_two", 0), ("multistep_arithmetic_two", 2), ("multistep_arithmetic_two", 3)
COUNT_8, COUNT_15 = ("object_counting", 0), ("object_counting", 1)
DYCK_2, DYCK_3 = ("dyck_languages", 0), ("dyck_languages", 1)
SORT_2, SORT_5, SORT_20 = ("word_sorting", 0), ("word_sorting", 3), ("word_sorting", 1)
SORT_20_GOLD = ("barn damp delmarva dot drumhead embezzle entirety greene guru it&t malton obstetric onus "
                "panicking prod same scorch splutter subsist thrill")
SNARK_A, TEMPORAL_B, MEL_A = ("snarks", 19), ("temporal_sequences", 2), ("logical_deduction_three_objects", 19)
SPORT_16, COUNT_11, COUNT_9 = ("sports_understanding", 16), ("object_counting", 16), ("object_counting", 17)
DYCK_8, DYCK_167 = ("dyck_languages", 8), ("dyck_languages", 167)
SORT_10, GEO_K = ("word_sorting", 2), ("geometric_shapes", 4)
SORT_10_GOLD = "artillery bainite doris fda harm incongruous monkey prosody vegetate vivian"


CASES = [
    # ============================================================ multiple choice
    # date_understanding 0: gold (B) 12/25/1937; options (A)..(F)
    case(*DATE, "(B)", OK, "(B)", FALL, id="choice-paren"),
    case(*DATE, "B", OK, "(B)", FALL, id="choice-bare"),
    case(*DATE, "B.", OK, "(B)", FALL, id="choice-bare-dot"),
    case(*DATE, "b", OK, "(B)", FALL, id="choice-lower"),
    case(*DATE, "(b)", OK, "(B)", FALL, id="choice-paren-lower"),
    case(*DATE, "B)", OK, "(B)", FALL, id="choice-half-paren"),
    case(*DATE, "(B) 12/25/1937", OK, "(B)", FALL, id="choice-paren-with-text"),
    case(*DATE, "12/25/1937", OK, "(B)", FALL, id="choice-option-text-alone"),
    case(*DATE, "So the answer is (B).", OK, "(B)", MARK, id="choice-marker-paren"),
    case(*DATE, "So the answer is B.", OK, "(B)", MARK, id="choice-marker-bare"),
    case(*DATE, "So the answer is b.", OK, "(B)", MARK, id="choice-marker-lower"),
    case(*DATE, "So the answer is (B) 12/25/1937.", OK, "(B)", MARK, id="choice-marker-paren-text"),
    case(*DATE, "So the answer is B. 12/25/1937", OK, "(B)", MARK, id="choice-marker-bare-dot-text"),
    case(*DATE, "The answer is: B) 12/25/1937", OK, "(B)", MARK, id="choice-marker-half-paren-text"),
    case(*DATE, "The answer is 12/25/1937.", OK, "(B)", MARK, id="choice-marker-option-text"),
    case(*DATE, "The answer is (A).", BAD, "(A)", MARK, id="choice-wrong-letter"),
    case(*DATE, "So the answer is (F) 07/25/1937.", BAD, "(F)", MARK, id="choice-wrong-letter-text"),
    case(*DATE, "The answer is 12/11/1937.", BAD, "(A)", MARK, id="choice-wrong-option-text"),
    case(*DATE, "Answer: (B)", OK, "(B)", MARK, id="choice-answer-colon"),
    case(*DATE, "ANSWER: B", OK, "(B)", MARK, id="choice-upper-marker"),
    case(*DATE, "Final answer: **(B)**", OK, "(B)", MARK, id="choice-markdown-bold"),
    case(*DATE, "**Answer:** (B)", OK, "(B)", MARK, id="choice-bold-marker"),
    case(*DATE, "The final answer is $\\boxed{B}$", OK, "(B)", MARK, id="choice-latex-boxed"),
    case(*DATE, "Tomorrow is 12/25/1937.\n\\boxed{(B)}", OK, "(B)", MARK, id="choice-boxed-is-marker"),
    case(*DATE, "So the answer is \\boxed{\\text{(B)}}.", OK, "(B)", MARK, id="choice-boxed-text-nested"),
    case(*DATE, "So the answer is `(B)`.", OK, "(B)", MARK, id="choice-backticks"),
    case(*DATE, "So the answer is option B.", OK, "(B)", MARK, id="choice-option-word"),
    case(*DATE, "The answer is 'B'.", OK, "(B)", MARK, id="choice-single-quoted"),
    case(*DATE, 'The answer is "(B)".', OK, "(B)", MARK, id="choice-double-quoted"),
    case(*DATE, "The answer is \u201c(B)\u201d.", OK, "(B)", MARK, id="choice-fancy-quoted"),
    case(*DATE, "Answer:\n\n(B)", OK, "(B)", MARK, id="choice-marker-then-newline"),
    case(*DATE, "The answer is therefore B.", OK, "(B)", MARK, id="choice-lone-capital-in-marker"),
    case(*DATE, "Christmas Eve is 12/24/1937, so tomorrow is 12/25/1937, which is (B).", OK, "(B)", FALL,
         id="choice-mid-text-fallback"),
    # a discussion that goes through the options one by one never commits to one of them
    case(*DATE, "(A) is 12/11/1937, too early. (B) is 12/25/1937, the day after.", NONE, None, FALL,
         id="choice-fallback-option-by-option"),
    # a ruled-out candidate is no commitment, in the fallback and after a marker
    case(*DATE, "(B) is right, not (A).", OK, "(B)", FALL, id="choice-fallback-negated-skipped"),
    case(*DATE, "So the answer is (B), not (A).", OK, "(B)", MARK, id="choice-marker-negated-skipped"),
    case(*DATE, "So the answer is (A) or (B).", NONE, None, MARK, id="choice-marker-hedge"),
    case(*DATE, "The answer is (A). Wait, no, the answer is (B).", OK, "(B)", MARK, id="choice-last-marker-wins"),
    # the same statement twice with another option: an enumeration, not a correction
    case(*DATE, "The answer is (A). Wait, no. The answer is (B).", NONE, None, MARK, id="choice-same-statement-twice"),
    case(*DATE, "The answer is (B). Double-check: (A) is 12/11/1937, so no.", OK, "(B)", MARK,
         id="choice-marker-then-discussion"),
    case(*DATE, "The answer isn't (A); it is (B).", OK, "(B)", FALL, id="choice-isnt-not-a-marker"),
    case(*DATE, "So the answer is (B).\n\nQ: Today is 9/7/2021. What was the date a week ago?\nOptions:\n"
         "(A) 08/31/2021\n(D) 09/01/2021\nAnswer:", OK, "(B)", MARK, id="choice-trailing-empty-marker-walks-back"),
    case(*DATE, "The answer is (B).\nHmm, so the final answer is... hard to say.", OK, "(B)", MARK,
         id="choice-unusable-last-marker"),
    case(*DATE, "I'm not sure what the answer is. Perhaps (C).", BAD, "(C)", FALL, id="choice-marker-sentence-ends"),
    case(*DATE, "Perhaps (C). I'm not sure what the answer is.", BAD, "(C)", FALL, id="choice-empty-marker-falls-back"),
    case(*DATE, "", NONE, None, "none", id="choice-empty"),
    case(*DATE, "   \n\t  \n", NONE, None, "none", id="choice-whitespace"),
    case(*DATE, "I don't know.", NONE, None, "none", id="choice-i-is-not-a-letter"),
    # a committed letter that is no option is the model's answer, and it is wrong (as in lm-eval)
    case(*DATE, "The answer is (Z).", BAD, "(Z)", MARK, id="choice-letter-not-an-option"),
    case(*DATE, "The date is tomorrow.", NONE, None, "none", id="choice-no-candidate"),
    case(*DATE, "\uff08\uff22\uff09", OK, "(B)", FALL, id="choice-fullwidth-paren-letter"),
    case(*DATE, "So the answer is \uff22.", OK, "(B)", MARK, id="choice-fullwidth-letter"),
    case(*DATE, "So the answer is \u24b7.", OK, "(B)", MARK, id="choice-circled-letter"),
    case(*DATE, "The answer is (B) \u2705\U0001f389", OK, "(B)", MARK, id="choice-emoji"),
    case(*DATE, "\u0627\u0644\u0625\u062c\u0627\u0628\u0629 \u0647\u064a (B)", OK, "(B)", FALL, id="choice-rtl-arabic"),
    case(*DATE, f"{RLM}(B){RLM}", OK, "(B)", FALL, id="choice-rtl-marks"),
    case(*DATE, f"So the answer is ({ZWSP}B{ZWSP}).", OK, "(B)", MARK, id="choice-zero-width"),
    case(*DATE, FILLER + "\nSo the answer is (B).", OK, "(B)", MARK, id="choice-100kB-answer-at-end"),
    case(*DATE, "So the answer is (B).\n" + FILLER, OK, "(B)", MARK, id="choice-100kB-answer-at-start"),
    case(*DATE, "(B)\n" + FILLER, OK, "(B)", FALL, id="choice-100kB-bare-at-start"),
    case(*DATE, "(A) " * 25_000 + "\nSo the answer is (B).", OK, "(B)", MARK, id="choice-100kB-of-letters"),
    case(*DATE, "So the answer is (B).\n" + HUGE, NONE, None, "none", id="choice-beyond-scan-bound"),
    case(*DATE, HUGE + "So the answer is (B).", OK, "(B)", MARK, id="choice-huge-answer-at-end"),
    # geometric_shapes 0: gold (B) heptagon; (A) circle ... (I) sector, (J) triangle
    case(*GEO, "heptagon", OK, "(B)", FALL, id="geo-option-text"),
    case(*GEO, "Heptagon.", OK, "(B)", FALL, id="geo-option-text-case"),
    case(*GEO, "HEPTAGON", OK, "(B)", FALL, id="geo-option-text-upper"),
    case(*GEO, "The answer is a heptagon.", OK, "(B)", MARK, id="geo-article-a-not-option-a"),
    case(*GEO, "The answer is A heptagon.", OK, "(B)", MARK, id="geo-capital-article"),
    case(*GEO, "The answer is an octagon.", BAD, "(F)", MARK, id="geo-article-an"),
    case(*GEO, "The answer is a.", BAD, "(A)", MARK, id="geo-lone-a-is-option-a"),
    case(*GEO, "The answer is (a) circle", BAD, "(A)", MARK, id="geo-paren-a"),
    case(*GEO, "a", BAD, "(A)", FALL, id="geo-bare-a"),
    case(*GEO, "A heptagon has seven sides.", NONE, None, "none", id="geo-reply-starting-with-article"),
    case(*GEO, "A heptagon has seven sides.\nSo the answer is (B).", OK, "(B)", MARK, id="geo-article-then-marker"),
    case(*GEO, "I think it is a heptagon, so (B).", OK, "(B)", FALL, id="geo-i-think"),
    case(*GEO, "Answer: I think it's (B)", OK, "(B)", MARK, id="geo-marker-i-think"),
    case(*GEO, "The answer is I.", BAD, "(I)", MARK, id="geo-option-i"),
    case(*GEO, "I", BAD, "(I)", FALL, id="geo-bare-i"),
    case(*GEO, "The path closes after 7 segments, so it is a heptagon.\nheptagon", OK, "(B)", FALL,
         id="geo-last-line-option-text"),
    case(*GEO, "The path closes after 7 segments.\nB", OK, "(B)", FALL, id="geo-last-line-letter"),
    case(*GEO, "The answer is heptagon (B)", OK, "(B)", MARK, id="geo-text-then-letter"),
    case(*GEO, "The answer is kite, not heptagon.", BAD, "(D)", MARK, id="geo-option-text-first"),
    case(*GEO, "The answer is (A) heptagon.", BAD, "(A)", MARK, id="geo-letter-beats-text"),
    case(*GEO, "The shape drawn is a heptagon", NONE, None, "none", id="geo-option-text-mid-prose-unread"),
    case(*GEO, "So the answer is **heptagon**.", OK, "(B)", MARK, id="geo-bold-text"),
    case(*GEO, "7 vertices => heptagon => (B)", OK, "(B)", FALL, id="geo-arrows"),
    case(*GEO_J, "So the answer is (J).", OK, "(J)", MARK, id="geo1-letter"),
    case(*GEO_J, "So the answer is triangle.", OK, "(J)", MARK, id="geo1-text"),
    case(*GEO_J, "j", OK, "(J)", FALL, id="geo1-lower"),
    case(*GEO_J, "So the answer is (K).", BAD, "(K)", MARK, id="geo1-letter-beyond-options"),
    # snarks 0: gold (B), long option texts that differ in one word
    case("snarks", 0, "The answer is: He's a terrible person, trying to promote a charity stream that has raised "
         "millions to help kids in need", OK, "(B)", MARK, id="snarks-long-option-text"),
    case("snarks", 0, "The answer is: He\u2019s a terrible person, trying to promote a charity stream that has raised "
         "millions to help kids in need.", OK, "(B)", MARK, id="snarks-fancy-apostrophe"),
    case("snarks", 0, "So the answer is (A).", BAD, "(A)", MARK, id="snarks-wrong"),
    case("snarks", 1, "Statement (A) is sarcastic. So the answer is (A).", OK, "(A)", MARK, id="snarks1"),
    # hyperbaton 0: gold (A)
    case("hyperbaton", 0, "midsize old grey Brazilian sweater", OK, "(A)", FALL, id="hyperbaton-text"),
    case("hyperbaton", 0, "The answer is midsize grey Brazilian old sweater.", BAD, "(B)", MARK,
         id="hyperbaton-wrong-text"),
    case("hyperbaton", 0, "Opinion, size, age, shape, color, origin: that gives (A).", OK, "(A)", FALL,
         id="hyperbaton-fallback"),
    # logical_deduction_three_objects 0: gold (A) The blue jay is the second from the left
    case("logical_deduction_three_objects", 0, "So the answer is (A) The blue jay is the second from the left.",
         OK, "(A)", MARK, id="logic3-letter-text"),
    case("logical_deduction_three_objects", 0, "The answer is: The blue jay is the second from the left.",
         OK, "(A)", MARK, id="logic3-text"),
    case("logical_deduction_three_objects", 0, "The answer is the quail is the second from the left", BAD, "(B)",
         MARK, id="logic3-wrong-text"),
    case("logical_deduction_seven_objects", 0, "So the answer is (D).", OK, "(D)", MARK, id="logic7"),
    case("logical_deduction_five_objects", 1, "The answer is: the bus is the second-oldest.", OK, "(B)", MARK,
         id="logic5-text-hyphen"),
    # disambiguation_qa 1: gold (C) Ambiguous
    case("disambiguation_qa", 1, "The answer is ambiguous.", OK, "(C)", MARK, id="disamb-text"),
    case("disambiguation_qa", 1, "Ambiguous", OK, "(C)", FALL, id="disamb-text-alone"),
    case("disambiguation_qa", 0, "So the answer is (A).", OK, "(A)", MARK, id="disamb0"),
    # movie_recommendation 0: gold (C) The Lion King
    case("movie_recommendation", 0, "The answer is The Lion King.", OK, "(C)", MARK, id="movie-text"),
    case("movie_recommendation", 0, "So the answer is (C) The Lion King", OK, "(C)", MARK, id="movie-letter-text"),
    case("movie_recommendation", 0, "The Lion King", OK, "(C)", FALL, id="movie-text-alone"),
    case("movie_recommendation", 0, "So the answer is (B) Maelstrom.", BAD, "(B)", MARK, id="movie-wrong"),
    # penguins_in_a_table 0: gold (E) James
    case("penguins_in_a_table", 0, "The answer is James.", OK, "(E)", MARK, id="penguins-name"),
    case("penguins_in_a_table", 0, "So the answer is (E)", OK, "(E)", MARK, id="penguins-letter"),
    case("penguins_in_a_table", 0, "So the answer is Gwen.", BAD, "(D)", MARK, id="penguins-wrong-name"),
    # reasoning_about_colored_objects 0: gold (D) three; options are numbers in words, (I) is eight
    case(*COLORS_3, "The answer is three.", OK, "(D)", MARK, id="colors-number-word-option"),
    case(*COLORS_3, "The answer is 3.", OK, "(D)", MARK, id="colors-digit-for-word-option"),
    case(*COLORS_3, "3", OK, "(D)", FALL, id="colors-digit-alone"),
    case(*COLORS_3, "So the answer is (D).", OK, "(D)", MARK, id="colors-letter"),
    case(*COLORS_3, "The answer is I.", BAD, "(I)", MARK, id="colors-option-i"),
    case(*COLORS_3, "I count three items. So the answer is (D).", OK, "(D)", MARK, id="colors-i-count"),
    case(*COLORS_3, "The answer is 4.", BAD, "(E)", MARK, id="colors-wrong-digit"),
    case(*COLORS_Q, "The answer is (Q).", OK, "(Q)", MARK, id="colors-q"),
    case(*COLORS_Q, "The answer is purple.", OK, "(Q)", MARK, id="colors-purple"),
    case(*COLORS_Q, "(q)", OK, "(Q)", FALL, id="colors-q-lower"),
    case(*COLORS_Q, "So the answer is (R) pink.", BAD, "(R)", MARK, id="colors-r"),
    # ruin_names 0: gold (A) ruin man
    case("ruin_names", 0, "The answer is ruin man", OK, "(A)", MARK, id="ruin-text"),
    case("ruin_names", 0, "The answer is (D) rainmman", BAD, "(D)", MARK, id="ruin-wrong"),
    # salient_translation_error_detection 0: gold (A) Modifiers or Adjectives
    case("salient_translation_error_detection", 0,
         "The error is in an adjective, so the answer is (A) Modifiers or Adjectives.", OK, "(A)", MARK,
         id="salient-letter-text"),
    case("salient_translation_error_detection", 0, "The answer is Named Entities.", BAD, "(D)", MARK,
         id="salient-wrong-text"),
    # temporal_sequences 0: gold (A) 6pm to 9pm
    case("temporal_sequences", 0, "The answer is 6pm to 9pm.", OK, "(A)", MARK, id="temporal-text"),
    case("temporal_sequences", 0, "So the answer is (D) 2pm to 6pm", BAD, "(D)", MARK, id="temporal-wrong"),
    # tracking_shuffled_objects
    case("tracking_shuffled_objects_three_objects", 0, "At the end, Alice has Frankenstein. So the answer is (B).",
         OK, "(B)", MARK, id="tracking3-letter"),
    case("tracking_shuffled_objects_three_objects", 0, "So the answer is Frankenstein.", OK, "(B)", MARK,
         id="tracking3-text"),
    case("tracking_shuffled_objects_three_objects", 0, "So the answer is (A) Ulysses.", BAD, "(A)", MARK,
         id="tracking3-wrong"),
    case("tracking_shuffled_objects_seven_objects", 1, "the answer is black ball", OK, "(E)", MARK,
         id="tracking7-text"),
    case("tracking_shuffled_objects_five_objects", 0, "Final answer = (A)", OK, "(A)", MARK, id="tracking5-equals"),

    # ============================================================ the three BBH targets that are text
    # movie_recommendation 163: gold 'Monsters, Inc' with options (A) Monsters (B) Inc (split at the comma)
    case(*MONSTERS, "Monsters, Inc", OK, "monsters inc", FALL, id="text-gold-alone"),
    case(*MONSTERS, "So the answer is Monsters, Inc.", OK, "monsters inc", MARK, id="text-gold-marker"),
    case(*MONSTERS, "So the answer is (A) Monsters, Inc.", OK, "monsters inc", MARK, id="text-gold-with-label"),
    case(*MONSTERS, "The answer is monsters inc", OK, "monsters inc", MARK, id="text-gold-lower-no-comma"),
    case(*MONSTERS, "The answer is Monsters, Inc. It is a Pixar film.", OK, "monsters inc it is pixar film", MARK,
         id="text-gold-then-prose"),
    case(*MONSTERS, "Shrek and Aladdin point to an animated film.\nMonsters, Inc", OK, "monsters inc", FALL,
         id="text-gold-last-line"),
    # a bare letter does not name the gold: (A) is "Monsters", (B) is "Inc"
    case(*MONSTERS, "So the answer is (A).", BAD, "(A)", MARK, id="text-gold-bare-letter"),
    case(*MONSTERS, "So the answer is (A) Monsters.", BAD, "monsters", MARK, id="text-gold-fragment"),
    case(*MONSTERS, "So the answer is (C) Children of the Night.", BAD, "children of night", MARK,
         id="text-gold-other-option"),
    case(*MONSTERS, "", NONE, None, "none", id="text-gold-empty"),
    # ruin_names 99: gold 'dearth, wind, & fire'
    case(*DEARTH, "So the answer is dearth, wind, & fire.", OK, "dearth wind fire", MARK, id="dearth-text"),
    case(*DEARTH, "The answer is (I) dearth, wind, & fire", OK, "dearth wind fire", MARK, id="dearth-label-text"),
    case(*DEARTH, "So the answer is eareth, wind, & fire.", BAD, "eareth wind fire", MARK, id="dearth-wrong"),
    case(*DEARTH, "(I)", BAD, "(I)", FALL, id="dearth-bare-letter"),
    # ruin_names 144: gold 'rita, sue and bob poo'
    case(*RITA, "So the answer is rita, sue and bob poo.", OK, "rita sue and bob poo", MARK, id="rita-text"),
    case(*RITA, "So the answer is \u2018rita, sue and bob poo\u2019.", OK, "rita sue and bob poo", MARK,
         id="rita-fancy-quotes"),
    case(*RITA, "So the answer is rita, sue and box too.", BAD, "rita sue and box too", MARK, id="rita-wrong"),

    # ============================================================ True / False
    case(*BOOL_F, "False", OK, "False", FALL, id="tf-bare"),
    case(*BOOL_F, "false", OK, "False", FALL, id="tf-lower"),
    case(*BOOL_F, "FALSE", OK, "False", FALL, id="tf-upper"),
    case(*BOOL_F, "So the answer is False.", OK, "False", MARK, id="tf-marker"),
    case(*BOOL_F, "not ( True ) and ( True ) = False and True = False. So the answer is False.", OK, "False", MARK,
         id="tf-worked"),
    case(*BOOL_F, "So the answer is True.", BAD, "True", MARK, id="tf-wrong"),
    case(*BOOL_F, "The answer is: **False**", OK, "False", MARK, id="tf-bold"),
    case(*BOOL_F, "$\\boxed{\\text{False}}$", OK, "False", MARK, id="tf-boxed-text"),
    # a worked boolean expression names both values: no commitment
    case(*BOOL_F, "not True is False; False and True is False.", NONE, None, FALL, id="tf-fallback-expression"),
    case(*BOOL_F, "We evaluate the expression step by step. It comes out False.", OK, "False", FALL,
         id="tf-fallback-last"),
    case(*BOOL_F, "The answer is False, not True.", OK, "False", MARK, id="tf-marker-first"),
    case(*BOOL_F, "It is True that not True is False.", NONE, None, FALL, id="tf-fallback-two-values"),
    case(*BOOL_F, "So the answer is True or False.", NONE, None, MARK, id="tf-hedge"),
    case(*BOOL_F, "So the answer is not True.", NONE, None, MARK, id="tf-negated"),
    case(*BOOL_F, "I cannot tell.", NONE, None, "none", id="tf-no-answer"),
    case(*BOOL_F, "So the answer is 0.", NONE, None, "none", id="tf-zero-is-not-false"),
    case(*BOOL_F, FILLER + " So the answer is False.", OK, "False", MARK, id="tf-100kB-end"),
    case(*BOOL_F, "So the answer is False.\n" + FILLER, OK, "False", MARK, id="tf-100kB-start"),
    case(*BOOL_T, "So the answer is True", OK, "True", MARK, id="tf1-marker"),
    case(*BOOL_T, "The answer is \uff54\uff52\uff55\uff45", OK, "True", MARK, id="tf1-fullwidth"),
    case(*BOOL_T, "The answer is:\nTrue", OK, "True", MARK, id="tf1-next-line"),
    case(*BOOL_T, "Trueish answers are untrue.", NONE, None, "none", id="tf1-no-partial-words"),

    # ============================================================ Yes / No
    case(*CAUSAL_NO, "No", OK, "No", FALL, id="yn-bare"),
    case(*CAUSAL_NO, "no", OK, "No", FALL, id="yn-lower"),
    case(*CAUSAL_NO, "So the answer is No.", OK, "No", MARK, id="yn-marker"),
    case(*CAUSAL_NO, "The answer is yes", BAD, "Yes", MARK, id="yn-wrong"),
    case(*CAUSAL_NO, "Answer: No, the black wire alone did not cause it.", OK, "No", MARK, id="yn-marker-first"),
    case(*CAUSAL_NO, "The answer is Yes or No, depending on the reading.", NONE, None, MARK, id="yn-hedge"),
    case(*CAUSAL_NO, "Yes, both wires touched the battery... but no, the black wire was supposed to.", OK, "No",
         FALL, id="yn-fallback-last"),
    case(*CAUSAL_NO, "\u00bfS\u00ed? Nein.", NONE, None, "none", id="yn-other-languages"),
    case(*CAUSAL_YES, "So the answer is Yes.", OK, "Yes", MARK, id="yn-causal-yes"),
    case(*CAUSAL_YES, "YES!!! \U0001f44d", OK, "Yes", FALL, id="yn-emoji"),
    case(*NAV_NO, "So the answer is No.", OK, "No", MARK, id="navigate-no"),
    case(*NAV_NO, "Yes", BAD, "Yes", FALL, id="navigate-wrong"),
    case(*NAV_NO, "We end 9 steps left of the start. So the answer is: no.", OK, "No", MARK, id="navigate-worked"),
    case(*LIES_NO, "Elanor lies. So the answer is No.", OK, "No", MARK, id="lies-no"),
    case(*LIES_NO, "So the answer is Yes.", BAD, "Yes", MARK, id="lies-wrong"),
    case(*SPORT_NO, "The sentence is implausible.", OK, "No", FALL, id="sport-implausible"),
    case(*SPORT_NO, "So the answer is no.", OK, "No", MARK, id="sport-no"),
    case(*SPORT_NO, "So the answer is: not plausible.", OK, "No", MARK, id="sport-not-plausible"),
    case(*SPORT_NO, "So the answer is: this isn't plausible", OK, "No", MARK, id="sport-isnt-plausible"),
    case(*SPORT_NO, "This sentence is not very plausible.", OK, "No", FALL, id="sport-not-very-plausible"),
    case(*SPORT_NO, "So the answer is: plausible.", BAD, "Yes", MARK, id="sport-plausible-wrong"),
    case(*SPORT_NO, "Elias Lindholm is a hockey player. So the answer is yes.", BAD, "Yes", MARK, id="sport-yes-wrong"),
    case(*SPORT_YES, "So the answer is yes.", OK, "Yes", MARK, id="sport1-yes"),
    case(*SPORT_YES, "plausible", OK, "Yes", FALL, id="sport1-plausible"),
    case(*SPORT_YES, "The sentence is plausible.", OK, "Yes", FALL, id="sport1-plausible-sentence"),
    case(*SPORT_YES, "So the answer is **Yes**", OK, "Yes", MARK, id="sport1-bold"),
    case(*SPORT_YES, "Nothing to say about hockey.", NONE, None, "none", id="sport1-no-inside-words"),
    case(*SPORT_YES, FILLER + "\nSo the answer is yes.", OK, "Yes", MARK, id="sport1-100kB-end"),

    # ============================================================ valid / invalid
    case(*FALLACY_INV, "invalid", OK, "invalid", FALL, id="vi-bare"),
    case(*FALLACY_INV, "Invalid", OK, "invalid", FALL, id="vi-capital"),
    case(*FALLACY_INV, "So the answer is invalid.", OK, "invalid", MARK, id="vi-marker"),
    case(*FALLACY_INV, "So the answer is valid.", BAD, "valid", MARK, id="vi-wrong"),
    case(*FALLACY_INV, "The argument is not valid.", OK, "invalid", FALL, id="vi-not-valid"),
    case(*FALLACY_INV, "So the answer is: not valid", OK, "invalid", MARK, id="vi-marker-not-valid"),
    case(*FALLACY_INV, "So the answer is: the argument is not deductively valid.", OK, "invalid", MARK,
         id="vi-not-deductively-valid"),
    case(*FALLACY_INV, "The argument isn't valid.", OK, "invalid", FALL, id="vi-isnt-valid"),
    case(*FALLACY_INV, 'Is it "valid" or "invalid"? The premises do not entail it: invalid', OK, "invalid", FALL,
         id="vi-fallback-last"),
    case(*FALLACY_INV, "The answer is: it depends.", NONE, None, "none", id="vi-no-answer"),
    case(*FALLACY_INV, "The argument is invalidated by nothing.", NONE, None, "none", id="vi-no-partial-words"),
    case(*FALLACY_VAL, "So the answer is valid.", OK, "valid", MARK, id="vi3-valid"),
    case(*FALLACY_VAL, "The answer is invalid.", BAD, "invalid", MARK, id="vi3-wrong"),
    case(*FALLACY_VAL, "So the answer is valid, not invalid.", OK, "valid", MARK, id="vi3-first"),

    # ============================================================ integers
    case(*ARITH_24, "24", OK, "24", FALL, id="int-bare"),
    case(*ARITH_24, "So the answer is 24.", OK, "24", MARK, id="int-marker"),
    # a unit naming several numbers (an equation too) commits to none of them
    case(*ARITH_24, "(-1 + 2 + 45) - (-2 + -4 + 28) = 46 - 22 = 24", NONE, None, FALL, id="int-equation-names-several"),
    case(*ARITH_24, "We add it all up.\nThe total comes to 24.", OK, "24", FALL, id="int-fallback-last"),
    case(*ARITH_24, "So the answer is 24.0.", OK, "24", MARK, id="int-trailing-zero-decimal"),
    case(*ARITH_24, "The answer is twenty-four.", OK, "24", MARK, id="int-words-hyphen"),
    case(*ARITH_24, "The answer is twenty four", OK, "24", MARK, id="int-words-space"),
    case(*ARITH_24, "So the answer is **24**", OK, "24", MARK, id="int-bold"),
    case(*ARITH_24, "\\boxed{24}", OK, "24", MARK, id="int-boxed"),
    case(*ARITH_24, "The answer is 25.", BAD, "25", MARK, id="int-wrong"),
    case(*ARITH_24, "The answer is 24, not 25.", OK, "24", MARK, id="int-marker-first"),
    case(*ARITH_24, "Is it 24 or 25? The answer is 25", BAD, "25", MARK, id="int-last-marker"),
    case(*ARITH_24, "The answer is 3.5", BAD, "3.5", MARK, id="int-decimal-is-wrong-not-none"),
    case(*ARITH_24, "So the answer is \uff12\uff14.", OK, "24", MARK, id="int-fullwidth-digits"),
    case(*ARITH_24, "So the answer is \u0662\u0664.", OK, "24", MARK, id="int-arabic-indic-digits"),
    case(*ARITH_24, "No idea.", NONE, None, "none", id="int-no-answer"),
    case(*ARITH_24, "So the answer is ?", NONE, None, "none", id="int-marker-no-number"),
    case(*ARITH_24, LONG_DIGITS + " So the answer is 24.", OK, "24", MARK, id="int-5000-digits-then-answer"),
    case(*ARITH_24, "So the answer is " + LONG_DIGITS, NONE, None, "none", id="int-only-5000-digits"),
    case(*ARITH_24, FILLER + " So the answer is 24", OK, "24", MARK, id="int-100kB-end"),
    case(*ARITH_24, "So the answer is 24.\n" + FILLER, OK, "24", MARK, id="int-100kB-start"),
    case(*ARITH_24, "Version 2.4.1 is out; answer: 24", OK, "24", MARK, id="int-version-string"),
    case(*ARITH_24, "So the answer is 24.\n\nQ: ((1 + 2) * 3) =\nA: Let's think step by step. The answer is", OK,
         "24", MARK, id="int-trailing-empty-marker-walks-back"),
    case(*ARITH_NEG, "So the answer is -50.", OK, "-50", MARK, id="int-negative"),
    case(*ARITH_NEG, "So the answer is \u221250.", OK, "-50", MARK, id="int-unicode-minus"),
    case(*ARITH_NEG, "So the answer is \uff0d50.", OK, "-50", MARK, id="int-fullwidth-minus"),
    case(*ARITH_NEG, "So the answer is minus fifty.", OK, "-50", MARK, id="int-minus-words"),
    case(*ARITH_NEG, "So the answer is minus 50.", OK, "-50", MARK, id="int-minus-word-digits"),
    case(*ARITH_NEG, "So the answer is negative 50.", OK, "-50", MARK, id="int-negative-word"),
    case(*ARITH_NEG, "So the answer is 50.", BAD, "50", MARK, id="int-missing-sign"),
    case(*ARITH_NEG, "So the answer is -50.0", OK, "-50", MARK, id="int-negative-decimal-zero"),
    case(*ARITH_NEG, "-54 + 4 = -50", NONE, None, FALL, id="int-negative-equation"),
    case(*ARITH_NEG, "It comes out at -50.", OK, "-50", FALL, id="int-negative-fallback"),
    case(*ARITH_NEG, "The result is 5-3", NONE, None, FALL, id="int-subtraction-not-negative"),
    case(*ARITH_BIG, "So the answer is -11,520.", OK, "-11520", MARK, id="int-thousands-separator"),
    case(*ARITH_BIG, "So the answer is -11520", OK, "-11520", MARK, id="int-big-negative"),
    case(*ARITH_BIG, "So the answer is minus eleven thousand five hundred and twenty.", OK, "-11520", MARK,
         id="int-big-words"),
    case(*ARITH_BIG, "So the answer is -11,52.", NONE, None, MARK, id="int-bad-grouping"),
    case(*COUNT_8, "flute, piano, trombone, violin, accordion, clarinet, drum, trumpet: 8 in total. "
         "So the answer is 8.", OK, "8", MARK, id="count-marker"),
    case(*COUNT_8, "So the answer is eight.", OK, "8", MARK, id="count-word"),
    case(*COUNT_8, "The answer is Eight.", OK, "8", MARK, id="count-word-capital"),
    case(*COUNT_8, "So the answer is 8 (eight).", OK, "8", MARK, id="count-digit-and-word"),
    case(*COUNT_8, "So the answer is seven.", BAD, "7", MARK, id="count-wrong-word"),
    case(*COUNT_8, "So the answer is eighteen.", BAD, "18", MARK, id="count-eighteen-not-eight"),
    case(*COUNT_8, "So the answer is eighty.", BAD, "80", MARK, id="count-eighty-not-eight"),
    case(*COUNT_8, "So the answer is the one with the most instruments.", NONE, None, "none",
         id="count-pronoun-one"),
    case(*COUNT_8, "answer: oneself", NONE, None, "none", id="count-no-number-inside-words"),
    case(*COUNT_8, "hundred " * 5000, NONE, None, "none", id="count-absurd-number-words"),
    case(*COUNT_15, "The answer is fifteen.", OK, "15", MARK, id="count-fifteen"),
    case(*COUNT_15, "So the answer is seventeen.", BAD, "17", MARK, id="count-seventeen"),
    case(*COUNT_15, "So the answer is 1 5", NONE, None, MARK, id="count-split-digits"),

    # ============================================================ dyck languages
    case(*DYCK_2, "] ]", OK, "] ]", FALL, id="dyck-bare"),
    case(*DYCK_2, "]]", OK, "] ]", FALL, id="dyck-no-spaces"),
    case(*DYCK_2, "So the answer is ] ].", OK, "] ]", MARK, id="dyck-marker"),
    case(*DYCK_2, "So the answer is: ]]", OK, "] ]", MARK, id="dyck-marker-no-spaces"),
    case(*DYCK_2, "The answer is `] ]`", OK, "] ]", MARK, id="dyck-backticks"),
    case(*DYCK_2, "So the answer is ] ] (closing both brackets).", OK, "] ]", MARK, id="dyck-prose-parenthetical"),
    case(*DYCK_2, "So the answer is ].", BAD, "]", MARK, id="dyck-too-short"),
    case(*DYCK_2, "So the answer is ] ] ]", BAD, "] ] ]", MARK, id="dyck-too-long"),
    # the full sequence instead of its completion is wrong, as in lm-eval
    case(*DYCK_2, "The full sequence is [ [ ] ]", BAD, "[ [ ] ]", FALL, id="dyck-full-sequence"),
    case(*DYCK_2, "So the answer is none", NONE, None, "none", id="dyck-no-brackets"),
    case(*DYCK_2, "", NONE, None, "none", id="dyck-empty"),
    case(*DYCK_2, FILLER + "\nSo the answer is ] ]", OK, "] ]", MARK, id="dyck-100kB-end"),
    case(*DYCK_2, "So the answer is ] ]\n" + FILLER, OK, "] ]", MARK, id="dyck-100kB-start"),
    case(*DYCK_3, "So the answer is ] ] >", OK, "] ] >", MARK, id="dyck3-marker"),
    case(*DYCK_3, "]]>", OK, "] ] >", FALL, id="dyck3-no-spaces"),
    case(*DYCK_3, "So the answer is: ] ] >.", OK, "] ] >", MARK, id="dyck3-period"),
    case(*DYCK_3, "The answer is \\boxed{] ] >}", OK, "] ] >", MARK, id="dyck3-boxed"),
    case(*DYCK_3, "We push <, [, [. Then we close: ] ] >", OK, "] ] >", FALL, id="dyck3-stack-trace"),
    case(*DYCK_3, "So the answer is \uff3d \uff3d \uff1e", OK, "] ] >", MARK, id="dyck3-fullwidth"),
    case(*DYCK_3, "So the answer is ] > ]", BAD, "] > ]", MARK, id="dyck3-wrong-order"),

    # ============================================================ word sorting
    case(*SORT_2, "syndrome therefrom", OK, "syndrome therefrom", FALL, id="sort-bare"),
    case(*SORT_2, "So the answer is syndrome therefrom.", OK, "syndrome therefrom", MARK, id="sort-marker"),
    case(*SORT_2, "So the answer is: syndrome, therefrom", OK, "syndrome therefrom", MARK, id="sort-commas"),
    case(*SORT_2, "The answer is syndrome and therefrom.", OK, "syndrome therefrom", MARK, id="sort-and"),
    case(*SORT_2, "So the answer is:\n1. syndrome\n2. therefrom", OK, "syndrome therefrom", MARK,
         id="sort-numbered-lines"),
    case(*SORT_2, "syndrome\ntherefrom", OK, "syndrome therefrom", FALL, id="sort-newlines"),
    case(*SORT_2, "Sorted:\n- syndrome\n- therefrom", OK, "syndrome therefrom", FALL, id="sort-bullets"),
    case(*SORT_2, "So the answer is therefrom syndrome.", BAD, "therefrom syndrome", MARK, id="sort-wrong-order"),
    case(*SORT_2, "Syndrome Therefrom", OK, "syndrome therefrom", FALL, id="sort-capitalised"),
    case(*SORT_2, "So the answer is syndrome.", BAD, "syndrome", MARK, id="sort-missing-word"),
    case(*SORT_2, "", NONE, None, "none", id="sort-empty"),
    case(*SORT_2, "I cannot sort these.", NONE, None, "none", id="sort-no-answer"),
    case(*SORT_2, FILLER + "\nSo the answer is syndrome therefrom", OK, "syndrome therefrom", MARK,
         id="sort-100kB-end"),
    case(*SORT_2, "So the answer is syndrome therefrom\n" + FILLER, OK, "syndrome therefrom", MARK,
         id="sort-100kB-start"),
    case(*SORT_5, "So the answer is fortescue helmsman percept purloin sioux.", OK,
         "fortescue helmsman percept purloin sioux", MARK, id="sort5-marker"),
    case(*SORT_5, "So the answer is fortescue, helmsman, percept, purloin, and sioux.", OK,
         "fortescue helmsman percept purloin sioux", MARK, id="sort5-commas-and"),
    case(*SORT_5, "So the answer is:\nfortescue\nhelmsman\npercept\npurloin\nsioux\n\nDone.", OK,
         "fortescue helmsman percept purloin sioux", MARK, id="sort5-newline-list"),
    case(*SORT_5, "So the answer is fortescue helmsman purloin percept sioux.", BAD,
         "fortescue helmsman purloin percept sioux", MARK, id="sort5-swapped"),
    case(*SORT_5, "So the answer is fortescue helmsman zebra percept purloin sioux.", BAD,
         "fortescue helmsman zebra percept purloin sioux", MARK, id="sort5-intruder-kept"),
    case(*SORT_5, "So the answer is \u201cfortescue helmsman percept purloin sioux\u201d.", OK,
         "fortescue helmsman percept purloin sioux", MARK, id="sort5-fancy-quotes"),
    case(*SORT_20, "So the answer is " + SORT_20_GOLD + ".", OK, SORT_20_GOLD, MARK, id="sort20-marker"),
    case(*SORT_20, "So the answer is " + ", ".join(SORT_20_GOLD.split()) + ".", OK, SORT_20_GOLD, MARK,
         id="sort20-commas"),
    case(*SORT_20, "\n".join(f"{i}. {w}" for i, w in enumerate(SORT_20_GOLD.split(), 1)), OK, SORT_20_GOLD, FALL,
         id="sort20-numbered-fallback"),
    case(*SORT_20, "So the answer is " + SORT_20_GOLD.replace("guru ", ""), BAD,
         SORT_20_GOLD.replace("guru ", ""), MARK, id="sort20-missing-one"),

    # ============================================================ replies that never commit (issue 18)
    case(*DATE, "Step 6: The answer is (D).\n\nStep 7: The answer is (E).\n\nStep 8: The answer is (B).", NONE, None,
         MARK, id="commit-options-in-turn"),
    case(*DATE, "The answer is (A). No wait, I misread: so the answer is (B).", OK, "(B)", MARK, id="commit-one-correction"),
    case(*DATE, "Option (A) is a prophecy.\n\nOption (D) is a prophecy.\n\nOption (", NONE, None, FALL,
         id="commit-list-cut-off"),
    case(*DATE, "Step 3: Determine the sentiment\n- (A) is neutral\n- (B) is neutral\n- (", NONE, None, FALL,
         id="commit-bullets-cut-off"),
    case(*DATE, "Options:\n(A) 12/11/1937\n(B) 12/25/1937", NONE, None, FALL, id="commit-restated-options"),
    case(*DATE, "Answer:\n(A) 12/11/1937\n(B) 12/25/1937", NONE, None, MARK, id="commit-marker-then-options"),
    case(*DATE, "So the answer is (B) or (C).", NONE, None, MARK, id="commit-hedge"),
    case(*DATE, "It is definitely not (C).", NONE, None, FALL, id="commit-negated"),
    case(*DATE, "We can rule out (D).", NONE, None, FALL, id="commit-ruled-out"),
    case(*DATE, "(C) is wrong, so (B).", OK, "(B)", FALL, id="commit-ruled-out-then-one"),
    case(*BOOL_F, "False or True", NONE, None, FALL, id="commit-tf-hedge"),
    case(*BOOL_F, "not True", NONE, None, FALL, id="commit-tf-negated"),
    case(*CAUSAL_NO, "no or yes", NONE, None, FALL, id="commit-yn-hedge"),
    case(*ARITH_24, "So the answer is 24 or 25.", NONE, None, MARK, id="commit-int-hedge"),
    case(*ARITH_24, "So the answer is between 20 and 30.", NONE, None, MARK, id="commit-int-range"),
    case(*ARITH_24, "So the answer is 46 - 22 = 24.", NONE, None, MARK, id="commit-int-equation"),
    case(*COUNT_8, "Step 1: count.\nStep 2: add.\nStep 3:", NONE, None, "none", id="commit-int-step-numbers"),
    case(*COUNT_8, "1. flute\n2. piano\n3. trombone", NONE, None, "none", id="commit-int-list-numbers"),
    case(*CAUSAL_NO, "There is no reason to doubt it.", NONE, None, "none", id="commit-yn-determiner"),
    case(*CAUSAL_NO, "Options:\n- Yes\n- No", NONE, None, FALL, id="commit-yn-restated-options"),

    # ============================================================ flexible: text that is not an answer (issue 32)
    # an echo names no candidate: the question's option line or input read back, our own wording
    case(*SNARK_A, "Let's think step by step. (A) Violence is a perfect way to unleash your frustrations\n\n"
         "Step 1: Identify the subject of the sentence.\nViolence is a perfect way to unleash your frustrations.\n\n"
         "Step 2: Identify the verb of the sentence.", NONE, None, "none", id="echo-option-line-then-steps"),
    case(*SNARK_A, "Violence is a perfect way to unleash your frustrations", OK, "(A)", FALL,
         id="echo-not-option-text-as-conclusion"),
    case(*SNARK_A, "The sarcastic one is (A) Violence is a perfect way to unleash your frustrations.", OK, "(A)", FALL,
         id="echo-not-label-with-own-text"),
    case(*TEMPORAL_B, "Let's think step by step. (A) 6pm to 7pm\n\nFirst, we need to find when Susan woke up.",
         NONE, None, "none", id="echo-first-option-restated"),
    case(*TEMPORAL_B, "(A) 6pm to 7pm", BAD, "(A)", FALL, id="echo-not-option-line-at-the-end"),
    case(*MEL_A, "Mel finished last", NONE, None, "none", id="echo-premise-equal-to-option"),
    case(*MEL_A, "(A) Mel finished last", OK, "(A)", FALL, id="echo-not-labelled-option-at-the-end"),
    case(*SPORT_16, 'The sentence "Is the following sentence plausible?"', NONE, None, "none",
         id="echo-question-quoted"),
    case(*SPORT_16, "The sentence is plausible.", OK, "Yes", FALL, id="echo-not-own-words"),
    case(*COUNT_11, "- The microwave is a table, a fridge, a stove, a oven, a toaster, a couch, and four cars.",
         NONE, None, "none", id="echo-input-list-in-a-sentence"),
    case(*DYCK_8, "The sequence is: [ < > ] [ [ < > ]", NONE, None, "none", id="echo-dyck-input"),
    case(*DYCK_167, "We close it with ] } }", OK, "] } }", FALL, id="echo-not-closing-brackets-found-in-input"),
    case(*SORT_10, "List: vegetate artillery harm fda doris prosody bainite incongruous monkey vivian", NONE, None,
         "none", id="echo-word-list-read-back"),
    case(*SORT_10, SORT_10_GOLD, OK, SORT_10_GOLD, FALL, id="echo-not-sorted-list"),
    case(*DATE, "I pick (C).\nUse the reflection and solve the question again. Reason step by step, then end with one "
         'line of the form "So the answer is X." where X is the letter of one option in parentheses, like (B).',
         BAD, "(C)", FALL, id="echo-format-hint-skipped"),
    case(*COUNT_8, 'Reason step by step, then end with one line of the form "So the answer is X." where X is a single '
         "integer.", NONE, None, "none", id="echo-one-line-is-ours"),
    case(*BOOL_F, "True or False", NONE, None, "none", id="echo-tf-format-hint"),
    case(*CAUSAL_NO, "yes or no", NONE, None, "none", id="echo-yn-format-hint"),
    # the reply's last unit names its candidate in a sentence that goes on and stops
    case(*COUNT_9, "Each kind of object counts once. So, we add 24 to", NONE, None, FALL, id="cut-off-add-to"),
    case(*FALLACY_INV, "The argument is invalid because it does not follow a logical", NONE, None, FALL,
         id="cut-off-because"),
    case(*ARITH_24, "Step 4: 7 * 3 = 21\n\nStep 5: 24 + ", NONE, None, FALL, id="cut-off-operator"),
    case(*FALLACY_INV, "Now the conclusion.\nThe argument is invalid", OK, "invalid", FALL,
         id="cut-off-not-at-candidate"),
    case(*FALLACY_INV, "The argument is invalid because it does not follow.\nTherefore the", OK, "invalid", FALL,
         id="cut-off-not-a-later-unit-naming-nothing"),
    # a lettered list that runs past the options, or stops inside an item's label
    case(*GEO_K, "Option (K) trapezoid is a polygon.\n\nOption (L) triangle is a polygon.\n\nOption (L)", NONE, None,
         FALL, id="list-past-the-options"),
    case(*GEO_K, "Option (F) octagon is a polygon.\n\nOption (G) pentagon is a polygon.\n\nOption (H", NONE, None, FALL,
         id="list-cut-inside-a-label"),
    case(*GEO_K, "None of the shapes fit, so I pick:\n(L)", BAD, "(L)", FALL, id="list-not-a-lone-non-option"),

    # ============================================================ markers, generally
    case(*DATE, "My final answer: (B)", OK, "(B)", MARK, id="marker-my-final-answer"),
    case(*DATE, "The correct answer would be (B).", OK, "(B)", MARK, id="marker-would-be"),
    case(*DATE, "The answer should be: (B)", OK, "(B)", MARK, id="marker-should-be"),
    case(*DATE, "Answer = B", OK, "(B)", MARK, id="marker-equals"),
    case(*DATE, "Answered questions: none. (B)", OK, "(B)", FALL, id="marker-answered-is-not-a-marker"),
    case(*DATE, "The answer issue aside, (B).", OK, "(B)", FALL, id="marker-needs-word-boundary"),
    case(*DATE, "the answer is:\n\n\n   (b)   \n", OK, "(B)", MARK, id="marker-blank-lines"),
]


@needs_bbh
@pytest.mark.parametrize("sub,index,reply,outcome,extracted,method", CASES)
def test_table(sub, index, reply, outcome, extracted, method):
    """The table states the flexible verdict; strict agrees wherever a marker was read and finds
    no answer where only the fallback found one."""
    q = item(sub, index)
    v = A.score(reply, q.answer, q.spec, level=A.FLEXIBLE)
    assert (v.outcome, v.extracted) == (outcome, extracted), v
    if method is not None:
        assert v.method == method, v
    ex = A.extract(reply, q.spec, gold_is_text=A.gold_is_text(q.answer, q.spec), level=A.FLEXIBLE)
    assert ex.answer == v.extracted and ex.method == v.method
    assert v.correct == (outcome == OK)
    strict = A.score(reply, q.answer, q.spec)  # the headline level
    assert strict.level == A.STRICT == A.HEADLINE
    if v.method == "fallback":
        assert (strict.outcome, strict.extracted) == (NONE, None), strict
    else:
        assert (strict.outcome, strict.extracted) == (v.outcome, v.extracted), strict


def test_table_size():
    assert len(CASES) >= 200


# ---------------------------------------------------------------- free text (EM and token F1)

FREE = A.AnswerSpec(A.FREE_TEXT)


@pytest.mark.parametrize("reply,gold,outcome,extracted,f1", [
    ("Paris", "Paris", OK, "paris", 1.0),
    ("The answer is Paris.", "Paris", OK, "paris", 1.0),
    ("The answer is: PARIS!", "Paris", OK, "paris", 1.0),
    ("The answer is: the city of Paris", "Paris", BAD, "city of paris", 0.5),
    ("So the answer is London.", "Paris", BAD, "london", 0.0),
    ("", "Paris", NONE, None, 0.0),
    ("   ", "Paris", NONE, None, 0.0),
    ("the lion king", "The Lion King", OK, "lion king", 1.0),
    ("Lion King", "The Lion King", OK, "lion king", 1.0),
    ("The answer is The Lion King (1994).", "The Lion King", BAD, "lion king 1994", 0.8),
    ("Monsters, Inc.", "Monsters, Inc", OK, "monsters inc", 1.0),
    ("Let me think.\nIt could be Rome.\nParis", "Paris", OK, "paris", 1.0),  # fallback: last line
    ("Let me think.\nParis, I believe", "Paris", BAD, "paris i believe", 0.5),
    ("The answer is \u201cCaf\u00e9 M\u00fcller\u201d", "Caf\u00e9 M\u00fcller", OK, "caf\u00e9 m\u00fcller", 1.0),
    ("The answer is: a", "a", NONE, None, 0.0),  # only an article: nothing left after normalising
])
def test_free_text(reply, gold, outcome, extracted, f1):
    v = A.score(reply, gold, FREE, level=A.FLEXIBLE)
    assert (v.outcome, v.extracted) == (outcome, extracted), v
    assert v.f1 == pytest.approx(f1)


@pytest.mark.parametrize("pred,gold,f1", [
    ("paris", "Paris", 1.0),
    ("the city of paris", "paris", 0.5),
    ("new york city", "york new", 0.8),
    ("", "", 1.0),
    ("", "paris", 0.0),
    ("a an the", "paris", 0.0),
    ("cat cat", "cat", 2 / 3),
])
def test_token_f1(pred, gold, f1):
    assert A.token_f1(pred, gold) == pytest.approx(f1)


def test_normalize_text():
    assert A.normalize_text("  The  **Lion** King!  ") == "lion king"
    assert A.normalize_text("\uff34\uff48\uff45 Caf\u00e9") == "caf\u00e9"
    assert A.normalize_text("$\\text{An} apple$") == "apple"
    assert A.normalize_text("") == ""


# ---------------------------------------------------------------- gold forms, parsing, spec

@pytest.mark.parametrize("gold,kind,canon", [
    ("(B)", A.CHOICE, "(B)"), ("B", A.CHOICE, "(B)"), ("(b)", A.CHOICE, "(B)"),
    ("Monsters, Inc", A.CHOICE, "monsters inc"),
    ("no", A.YES_NO, "No"), ("Yes", A.YES_NO, "Yes"),
    ("True", A.TRUE_FALSE, "True"), ("invalid", A.VALID_INVALID, "invalid"), ("valid", A.VALID_INVALID, "valid"),
    ("-11520", A.INTEGER, "-11520"), ("24", A.INTEGER, "24"),
    ("] ] >", A.DYCK, "] ] >"), ("]]>", A.DYCK, "] ] >"),
    ("Syndrome  therefrom", A.WORD_SORT, "syndrome therefrom"),
    ("The Paris", A.FREE_TEXT, "paris"),
])
def test_canonical_gold(gold, kind, canon):
    assert A.canonical_gold(gold, A.AnswerSpec(kind)) == canon


def test_gold_is_text():
    spec = A.AnswerSpec(A.CHOICE)
    assert not A.gold_is_text("(B)", spec) and not A.gold_is_text("B", spec)
    assert A.gold_is_text("Monsters, Inc", spec)
    assert not A.gold_is_text("Monsters, Inc", A.AnswerSpec(A.FREE_TEXT))


def test_unknown_kind_rejected():
    with pytest.raises(ValueError):
        A.AnswerSpec("essay")


def test_parse_options_and_vocabulary():
    question = "Which?\nOptions:\n(A) red\n(B) dark blue\n(c) green "
    assert A.parse_options(question) == (("A", "red"), ("B", "dark blue"), ("C", "green"))
    assert A.parse_sort_vocabulary("Sort the following words alphabetically: List: b a c") == ("b", "a", "c")
    assert A.parse_sort_vocabulary("no list here") == ()


@needs_bbh
def test_real_items_parse():
    for q in all_items():
        if q.kind == A.CHOICE:
            letters = [letter for letter, _ in q.options]
            assert letters == [chr(ord("A") + i) for i in range(len(letters))], q.id
            assert A.gold_is_text(q.answer, q.spec) or q.answer[1] in letters, q.id
        if q.kind == A.WORD_SORT:
            assert q.answer.split() == sorted(q.vocabulary), q.id
    text_golds = sorted(q.id for q in all_items() if A.gold_is_text(q.answer, q.spec))
    assert text_golds == ["bbh/movie_recommendation/163", "bbh/ruin_names/144", "bbh/ruin_names/99"]


def test_non_string_reply():
    spec = A.AnswerSpec(A.INTEGER)
    assert A.extract(None, spec) == A.Extraction(None, "none")
    assert A.score(None, "3", spec).outcome == NONE
    assert A.score(3, "3", spec, level=A.FLEXIBLE).outcome == OK
    assert A.score(3, "3", spec).outcome == NONE  # strict: no answer marker


def test_unknown_level_rejected():
    with pytest.raises(ValueError, match="scoring level"):
        A.score("So the answer is 3.", "3", A.AnswerSpec(A.INTEGER), level="lenient")


# ---------------------------------------------------------------- every real item, plain loops

GOLD_TEMPLATES = ["So the answer is {g}.", "{g}", "The answer is: {g}", "Answer:\n{g}\n", "Final answer: **{g}**"]


@needs_bbh
@SWEEP
def test_every_real_item_scores_its_own_gold(step):
    """Idempotence: a reply that states the gold is correct, for all 6,511 BBH items (a bare
    gold at the flexible level; after a marker at both)."""
    items = all_items()
    assert len(items) == 6511
    failures = []
    for q in items[::step]:
        for template in GOLD_TEMPLATES:
            level = A.FLEXIBLE if template == "{g}" else A.STRICT
            v = A.score(template.format(g=q.answer), q.answer, q.spec, level=level)
            if not v.correct:
                failures.append((q.id, template, v))
    assert not failures, failures[:5]


@needs_bbh
@SWEEP
def test_every_wrong_letter_is_wrong(step):
    """For every multiple-choice item, every other option letter is scored wrong (not correct,
    not no-answer), bare or after a marker."""
    failures = []
    for q in all_items()[::step]:
        if q.kind != A.CHOICE or A.gold_is_text(q.answer, q.spec):
            continue
        for letter, _ in q.options:
            if f"({letter})" == q.answer:
                continue
            for reply, level in ((f"({letter})", A.FLEXIBLE),
                                 (f"{q.answer} is tempting, but the answer is {letter}.", A.STRICT)):
                v = A.score(reply, q.answer, q.spec, level=level)
                if (v.outcome, v.extracted) != (BAD, f"({letter})"):
                    failures.append((q.id, reply, v))
    assert not failures, failures[:5]


def _stated_outside_its_option(q, text: str) -> bool:
    """Does the question say this option's text (three words or more) outside the option's own
    line, as a premise or inside another option? A reply of only that text is then an echo."""
    own = re.compile(rf"\s*\(\s*{re.escape(next(l for l, t in q.options if t == text))}\s*\)")
    rest = "\n".join(line for line in q.question.split("\n") if not own.match(line))
    return len(text.split()) >= 3 and f" {A.normalize_text(text)} " in f" {A.normalize_text(rest)} "


@needs_bbh
@SWEEP
def test_every_option_text_names_its_letter(step):
    """The option text alone, or after a marker, reads as that option's letter, except where two
    options share a text (several BBH items repeat an option). Where the question itself states
    the text outside the option (a premise "Mel finished last." with option (A) "Mel finished
    last"), the text alone is the question read back: no answer at the flexible level."""
    failures, echoes = [], 0
    for q in all_items()[::step]:
        if q.kind != A.CHOICE or A.gold_is_text(q.answer, q.spec):
            continue
        texts = [A.normalize_text(t) for _, t in q.options]
        for letter, text in q.options:
            norm = A.normalize_text(text)
            if not norm or texts.count(norm) > 1 or any(o != norm and o.startswith(norm + " ") for o in texts):
                continue
            echo = _stated_outside_its_option(q, text)
            echoes += echo
            for reply, level in ((text, A.FLEXIBLE), (f"So the answer is {text}.", A.STRICT)):
                ex = A.extract(reply, q.spec, level=level)
                if ex.answer != (None if echo and level == A.FLEXIBLE else f"({letter})"):
                    failures.append((q.id, reply, level, ex))
    assert not failures, failures[:5]
    assert echoes > 100 // step  # the logical-deduction premises: the exception is exercised


def _built_prompts(kind: str):
    """Every prompt our builders make for a question of `kind`, with stand-ins for the parts that
    vary (question, attempt, reflection, the reflection instruction of a pool)."""
    from reflectevo_tasks import prompts as P
    from reflectevo_tasks.instructions import Instruction
    from reflectevo_tasks.questions import Question

    q = Question("t/0", "t", 0, "QUESTIONTEXT", "x", kind)
    ins = Instruction("i", "INSTRUCTIONTEXT", "pool", "1")
    built = [P.trial_prompt(q), P.trial_prompt(q, (("QUESTIONTEXT", "ATTEMPTTEXT"),))]
    for verdict in (A.CORRECT, A.WRONG, A.NO_ANSWER, None):
        built += [P.reflection_prompt(q, "ATTEMPTTEXT", ins, verdict),
                  P.one_stage_prompt(q, "ATTEMPTTEXT", ins, verdict),
                  P.retry_prompt(q, "ATTEMPTTEXT", "REFLECTIONTEXT", verdict),
                  P.retry_prompt(q, "ATTEMPTTEXT", None, verdict)]
    return built


def _prompt_sentences(kind: str) -> set[str]:
    """The sentences of our own wording in those prompts (the judge prompt is left out: its reply
    is never scored)."""
    out = set()
    for p in _built_prompts(kind):
        for text in [m["content"] for m in p.messages] + [p.reply_prefix]:
            for chunk in re.split(r"QUESTIONTEXT|ATTEMPTTEXT|REFLECTIONTEXT|INSTRUCTIONTEXT", text):
                out.update(s.strip() for s in re.split(r"(?<=[.!?])[\"')]*\s+|\n+", chunk) if s.strip())
    return out


# code replies are read from their fenced block, never by the text scorer (tests/test_math_mbpp.py
# pins the code prompts)
@pytest.mark.parametrize("kind", [k for k in A.KINDS if k != A.CODE])
def test_every_sentence_of_our_prompts_is_known_as_ours(kind):
    """prompts.py words our prompts, answers.py recognises them (prompts imports answers, so the
    wording is restated there): every sentence the builders write, read back in a reply, is our
    own text. Rewording a prompt without answers._PROMPT_PIECES fails here."""
    sentences = _prompt_sentences(kind)
    assert len(sentences) >= 15 and any("where X is" in s for s in sentences), sentences
    ours = A._prompt_grams()
    words = {s: [t.word for t in A._tokens(A.clean(s))] for s in sentences}
    unknown = [s for s, w in words.items() if len(w) >= A._ECHO_MIN and not A._copied(w, ours)]
    assert not unknown, unknown
    assert not A._copied("the answer is plainly (b)".split(), ours)  # our wording, not any words


ECHO_SPECS = {
    A.CHOICE: (A.AnswerSpec(A.CHOICE, (("A", "red"), ("B", "blue"), ("C", "green"))), "(C)"),
    A.TRUE_FALSE: (A.AnswerSpec(A.TRUE_FALSE), "False"), A.YES_NO: (A.AnswerSpec(A.YES_NO), "No"),
    A.VALID_INVALID: (A.AnswerSpec(A.VALID_INVALID), "invalid"), A.INTEGER: (A.AnswerSpec(A.INTEGER), "7"),
    A.DYCK: (A.AnswerSpec(A.DYCK), ") ]"),
    A.WORD_SORT: (A.AnswerSpec(A.WORD_SORT, vocabulary=("kiwi", "apple", "mango")), "apple kiwi mango"),
}


@pytest.mark.parametrize("kind", sorted(ECHO_SPECS))
def test_our_prompts_read_back_are_no_answer(kind):
    """A reply that reads our instructions back names no answer at the flexible level ("one line"
    is no integer, "like (B)" no letter), and a committed answer before them still counts."""
    spec, own = ECHO_SPECS[kind]
    for p in _built_prompts(kind):
        wording = re.sub(r"QUESTIONTEXT|ATTEMPTTEXT|REFLECTIONTEXT|INSTRUCTIONTEXT", "\n", p.messages[-1]["content"])
        assert A.extract(wording, spec, level=A.FLEXIBLE).answer is None, wording
        reply = f"It is {own}.\n{wording}" if kind != A.WORD_SORT else f"{own}\n{wording}"
        assert A.extract(reply, spec, level=A.FLEXIBLE).answer == own, reply


# ---------------------------------------------------------------- properties (hypothesis)

BARE_SPECS = [A.AnswerSpec(kind) for kind in A.KINDS] + [
    A.AnswerSpec(A.CHOICE, (("A", "red"), ("B", "dark blue"), ("C", "one"))),
    A.AnswerSpec(A.WORD_SORT, vocabulary=("b", "a", "and", "c")),
]


def _real_sample():
    if not HAVE_BBH:
        return []
    by_sub = {}
    for q in all_items():
        by_sub.setdefault(q.source, []).append(q)
    picked = [qs[i] for qs in by_sub.values() for i in (0, len(qs) // 2, len(qs) - 1)]
    picked += [item(*MONSTERS), item(*DEARTH), item(*RITA)]
    return picked


REAL_SAMPLE = _real_sample()
GOLDS_AND_SPECS = [(q.answer, q.spec) for q in REAL_SAMPLE] + [("(B)", s) if s.kind == A.CHOICE else ("x", s)
                                                                for s in BARE_SPECS]

# pieces that exercise every pattern: markers, letters, brackets, numbers, negations, unicode
TOKENS = ["answer is ", "the answer is: ", "Answer:", "final answer = ", "\\boxed{", "}", "\\text{", "(", ")", "[",
          "]", "{", "<", ">", " ", "  ", "\n", "\t", "A", "a", "B", "b", "I", "(B)", "(a)", "B.", "option ", "0", "7",
          "-", "\u2212", ",", ".", "1,000", "3.5", "minus ", "seven", "teen", "ty", "hundred", "and ", "one ", "not ",
          "isn't ", "valid", "invalid", "plausible", "yes", "no", "True", "false", "**", "`", "$", "'", "\u2019", '"',
          "\uff22", "\uff08", "\u24b7", "\u200f", "\u200b", "\u202e", "\U0001f600", "\u0627\u0644", "\u0662",
          "syndrome", "therefrom", "heptagon", "Monsters", ", Inc", "1.", "- ", "\u00ad", "\ud800"]
token_text = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)
any_text = st.one_of(st.text(max_size=300), token_text, st.text(alphabet=st.characters(), max_size=2000))
# REFLECTEVO_HYPOTHESIS_EXAMPLES=5000 for a long bug hunt; the default keeps the suite quick
EXAMPLES = int(os.environ.get("REFLECTEVO_HYPOTHESIS_EXAMPLES", "100"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_extraction(ex: A.Extraction, spec: A.AnswerSpec):
    assert isinstance(ex, A.Extraction)
    assert ex.method in ("marker", "fallback", "none")
    # no answer: nothing found (method "none") or a statement that refused to commit (a reason)
    assert (ex.answer is None) == (ex.method == "none" or ex.refusal is not None)
    assert ex.refusal is None or ex.answer is None
    if ex.answer is None:
        return
    assert isinstance(ex.answer, str) and ex.answer
    if spec.kind in (A.TRUE_FALSE, A.YES_NO, A.VALID_INVALID):
        assert ex.answer in {"True", "False", "Yes", "No", "valid", "invalid"}
    elif spec.kind == A.INTEGER:
        assert A._NUMBER.fullmatch(ex.answer), ex
    elif spec.kind == A.DYCK:
        assert set(ex.answer) <= set("()[]{}<> ")


@FAST
@given(reply=any_text, pair=st.sampled_from(GOLDS_AND_SPECS))
def test_never_raises(reply, pair):
    gold, spec = pair
    text_gold = A.gold_is_text(gold, spec)
    for level in A.LEVELS:
        # the unguarded core: a real bug must not hide behind extract()'s safety net
        ex = A._extract(reply, spec, text_gold, level)
        _check_extraction(ex, spec)
        assert A.extract(reply, spec, text_gold, level=level) == ex  # deterministic
        v = A.score(reply, gold, spec, level=level)
        assert v.outcome in (OK, BAD, NONE) and v.extracted == ex.answer
        assert 0.0 <= v.f1 <= 1.0
        if spec.kind == A.CHOICE and not text_gold and ex.answer is not None:
            # an option's letter, or a parenthesised capital the reply committed to
            assert ex.answer in {f"({letter})" for letter in A._letters(spec)} or (
                spec.options and A._PAREN_LETTER.fullmatch(ex.answer) and ex.answer[1].isupper())
    # strict never finds an answer that flexible does not
    strict, flexible = (A._extract(reply, spec, text_gold, level) for level in A.LEVELS)
    assert strict.answer is None or strict == flexible


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=token_text.filter(bool), size=st.integers(0, 200_000), pair=st.sampled_from(GOLDS_AND_SPECS))
def test_never_raises_on_huge_replies(unit, size, pair):
    gold, spec = pair
    reply = (unit * (size // len(unit) + 1))[:size]
    _check_extraction(A._extract(reply, spec, A.gold_is_text(gold, spec)), spec)
    A.score(reply, gold, spec)


@needs_bbh
@FAST
@given(index=st.integers(0, 6510), noise=any_text)
def test_stated_gold_is_correct_after_any_preamble(index, noise):
    """Whatever came before, a last line "So the answer is {gold}." is read and scored correct."""
    q = all_items()[index]
    v = A.score(f"{noise}\nSo the answer is {q.answer}.", q.answer, q.spec)
    assert v.correct, v


@needs_bbh
@FAST
@given(index=st.integers(0, 6510), noise=any_text, data=st.data())
def test_wrong_answer_never_correct(index, noise, data):
    q = all_items()[index]
    if q.kind == A.CHOICE:
        letters = [letter for letter, _ in q.options if f"({letter})" != q.answer]
        wrong = f"({data.draw(st.sampled_from(letters))})"
    elif q.kind in (A.TRUE_FALSE, A.YES_NO, A.VALID_INVALID):
        wrong = {"True": "False", "False": "True", "Yes": "No", "No": "Yes", "valid": "invalid",
                 "invalid": "valid"}[A.canonical_gold(q.answer, q.spec)]
    elif q.kind == A.INTEGER:
        wrong = str(int(q.answer) + data.draw(st.sampled_from([-10, -1, 1, 7, 100])))
    elif q.kind == A.DYCK:
        wrong = q.answer + " )"
    else:
        words = q.answer.split()
        if len(words) < 2 or len(set(words)) < 2:
            return
        wrong = " ".join(reversed(words))
    v = A.score(f"{noise}\nSo the answer is {wrong}.", q.answer, q.spec)
    assert v.outcome == BAD, (wrong, v)


@FAST
@given(reply=any_text)
def test_extraction_is_deterministic(reply):
    for spec in BARE_SPECS:
        first = A.extract(reply, spec)
        assert A.extract(str(reply), spec) == first
        assert A.extract("".join(list(reply)), spec) == first


# each piece repeated to 100 kB then ended by a character that matches nothing, which is where a
# backtracking pattern would go quadratic (the whitespace run once took minutes for choice items)
ADVERSARIAL_UNITS = [" ", "\n", "( ", "(a", "[ ", "1", "1,", "-1 ", "one ", "hundred ", "not  ", "isn't ", "A ",
                     "B)", "answer is ", "\\boxed{", "{", "**", "1. syndrome\n", "\u200f\U0001f600"]


@needs_bbh
@pytest.mark.parametrize("unit", ADVERSARIAL_UNITS)
def test_100kB_reply_is_fast(unit):
    """No catastrophic backtracking: 100 kB of any repeated piece is scored in well under 1 s on an
    idle core; the bound is 10 s because a shared CI machine can be ten times slower, while a
    pattern that goes quadratic on 100 kB takes minutes."""
    reply = (unit * (100_000 // len(unit) + 1))[:100_000]
    specs = [item(*DATE), item(*MONSTERS), item(*COUNT_8), item(*DYCK_3), item(*SORT_5), item(*SPORT_NO),
             item(*FALLACY_INV), item(*BOOL_F)]
    for q in specs:
        start = time.perf_counter()
        A.score(reply + " x", q.answer, q.spec)
        elapsed = time.perf_counter() - start
        assert elapsed < 10.0, (q.id, repr(unit), elapsed)


@needs_bbh
@pytest.mark.parametrize("sub,index,unit,outcome", [
    ("logical_deduction_three_objects", 19, "Mel finished last\n", NONE),
    ("date_understanding", 0, "where X is the letter of one option in parentheses, like (B).\n", NONE),
    ("object_counting", 16, "a couch, and four cars, ", NONE),
    ("word_sorting", 2, "List: vegetate artillery harm fda doris prosody bainite incongruous monkey vivian\n", NONE),
    # one endless bracket run: as a whole it is no copy of the input
    ("dyck_languages", 8, "[ < > ] [ [ < > ] ", BAD),
])
def test_echo_loop_is_fast(sub, index, unit, outcome):
    """A reply that reads the question or our prompt back until the scan bound (one unit repeated,
    or one endless line) is scored at the flexible level within the same 10 s bound."""
    q = item(sub, index)
    reply = (unit * (A._MAX_SCAN // len(unit) + 1))[:A._MAX_SCAN]
    start = time.perf_counter()
    v = A.score(reply, q.answer, q.spec, level=A.FLEXIBLE)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, (q.id, repr(unit), elapsed)
    assert v.outcome == outcome, v
