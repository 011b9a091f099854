"""Write written.jsonl: replies composed to break an answer scorer, each labelled by hand under
the rule it names (RULES.md). The labels below are written out, never computed by a scorer.

Run from the repository root:
    REFLECTEVO_BBH_DIR=../shared/data/bbh python tests/data/scoring_corpus/make_written.py
The BBH folder supplies the question texts; the labels do not depend on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus_rows import canonical_gold, label, question_fields  # noqa: E402

OUT = HERE / "written.jsonl"

# The questions the written replies answer: BBH items (spec rebuilt with bbh.make_question) and
# one free-text question (spec: AnswerSpec("free_text")).
DATE = "bbh:date_understanding/0"  # options (A) 12/11/1937 (B) 12/25/1937 ... (F); gold (B)
SHAPES = "bbh:geometric_shapes/0"  # (A) circle (B) heptagon ... (J) triangle; gold (B)
COLORS = "bbh:reasoning_about_colored_objects/0"  # (A) zero (B) one ... (Q) sixteen; gold (D)
HYPER = "bbh:hyperbaton/0"  # two options; gold (A)
BOOL = "bbh:boolean_expressions/0"  # gold False
SPORTS = "bbh:sports_understanding/0"  # gold no
CAUSAL = "bbh:causal_judgement/2"  # gold Yes
NAV = "bbh:navigate/0"  # gold No
FALLACY = "bbh:formal_fallacies/0"  # gold invalid
FALLACY_V = "bbh:formal_fallacies/3"  # gold valid
COUNT = "bbh:object_counting/0"  # gold 8
ARITH = "bbh:multistep_arithmetic_two/2"  # gold -50
DYCK = "bbh:dyck_languages/1"  # input "< [ [", gold "] ] >"
SORT = "bbh:word_sorting/3"  # sioux fortescue purloin percept helmsman
FREE = "free:capital"
# issue 32: questions whose own words a reply may read back
SNARK = "bbh:snarks/19"  # (A) Violence is a perfect way to unleash your frustrations; gold (A)
MEL = "bbh:logical_deduction_three_objects/19"  # premise "Mel finished last." = option (A)'s text; gold (A)
COUNT_CARS = "bbh:object_counting/16"  # "I have a microwave, ..., a couch, and four cars."; gold 11
DYCK_CLOSERS = "bbh:dyck_languages/167"  # gold "] } }", a run its input also holds
GEO = "bbh:geometric_shapes/4"  # options (A)..(K); gold (K)
HINT_CHOICE = ('Reason step by step, then end with one line of the form "So the answer is X." where X is the '
               'letter of one option in parentheses, like (B).')

FREE_QUESTIONS = {FREE: {"spec_from": "record", "subtask": "written/capital", "kind": "free_text",
                         "question": "What is the capital of France?", "gold": "Paris", "options": [], "vocabulary": []}}

N = None  # no answer
COT = "Let's think step by step. "

# Long replies (tens of kB), built so that a reader can still see what their ending says.
_STEPS = "".join(f"Step {i}: we look at the dates once more and compare them.\n" for i in range(1, 600))
_LIST = "".join(f"Option ({'ABCDEF'[i % 6]}) is a date that could be tomorrow.\n" for i in range(900))
_PROSE = "The weather in that year was mild and nobody remembers much about it. " * 450
_REPEAT = "The answer is (C).\n" * 2700
_DIGITS = " ".join(str(i) for i in range(1, 9000))

# (case id, question, rule, reply, strict answer, flexible answer, note)
CASES = [
    # ---- choice: one committed candidate after the last marker
    ("choice-m1-plain", DATE, "M1", COT + "Tomorrow is Christmas day.\nSo the answer is (B).", "(B)", "(B)", ""),
    ("choice-m1-wrong", DATE, "M1", COT + "So the answer is (C).", "(C)", "(C)", ""),
    ("choice-m1-bare-letter", DATE, "M1", "The answer is B.", "(B)", "(B)", "bare letter in a marker segment"),
    ("choice-m1-lowercase", DATE, "M1", "The answer is (b).", "(B)", "(B)", "lowercase option letter"),
    ("choice-m1-option-word", DATE, "M1", "So the answer is option B.", "(B)", "(B)", ""),
    ("choice-m1-colon-text", DATE, "M1", "The answer is: (B) 12/25/1937.", "(B)", "(B)", "letter and its own text"),
    ("choice-m1-correct-answer", DATE, "M1", "The correct answer is (B), 12/25/1937.", "(B)", "(B)", ""),
    ("choice-m1-final-answer", DATE, "M1", "Final answer: (E)", "(E)", "(E)", ""),
    ("choice-m1-would-be", DATE, "M1", "My answer would be (B).", "(B)", "(B)", ""),
    ("choice-m1-text-only", DATE, "M1", "So the answer is 12/25/1937.", "(B)", "(B)", "option text without a letter"),
    ("choice-m1-letter-beats-text", DATE, "M1", "The answer is (B) 12/25/2006.", "(B)", "(B)",
     "the text is option (E)'s; the letter wins"),
    ("choice-m1-later-sentence", DATE, "M1", "So the answer is (B). (C) is wrong.", "(B)", "(B)",
     "the segment ends with its sentence"),
    ("choice-m1-same-twice", DATE, "M1", "So the answer is (B), i.e. (B) 12/25/1937.", "(B)", "(B)", "one distinct"),
    ("choice-m1-or-same", DATE, "M1", "The answer is (B) or, to be precise, (B).", "(B)", "(B)", "one distinct"),
    ("choice-m1-not-an-option", DATE, "M1", "The answer is (K).", "(K)", "(K)", "(K) is no option: wrong"),
    ("choice-m1-equals", DATE, "M1", "Answer = (D)", "(D)", "(D)", ""),
    ("choice-m1-last-of-two", DATE, "M1", "The answer is (A). Wait, the answer is (B).", "(B)", "(B)", "last marker"),
    ("choice-m1-next-question", DATE, "M1",
     COT + "So the answer is (B).\n\nQ: Today is 1/1/2000. What is the date tomorrow?\nA: The answer is (C).",
     "(C)", "(C)", "a reply that runs on into another question still ends on its last marker"),
    ("choice-m1-cut-paren", DATE, "M1", COT + "The answer is (D", "(D)", "(D)", "cut off after the letter"),
    ("choice-m1-upper-marker", DATE, "M1", "THE ANSWER IS (B).", "(B)", "(B)", ""),
    ("choice-m1-a-word-text", SHAPES, "M1", "The answer is a heptagon.", "(B)", "(B)",
     "'a' is an article; the option text heptagon"),
    ("choice-m1-a-letter", SHAPES, "M1", "So the answer is A.", "(A)", "(A)", "A standing alone is a letter"),
    ("choice-m1-number-text", COLORS, "M1", "The answer is three.", "(D)", "(D)", "option (D)'s text is 'three'"),
    ("choice-m1-two-options", HYPER, "M1", COT + "Adjectives go opinion, size, age, colour.\nSo the answer is (A).",
     "(A)", "(A)", ""),
    # ---- choice: the last marker names nothing, an earlier one does
    ("choice-m2-trailing-answer", DATE, "M2", "So the answer is (B).\nAnswer:", "(B)", "(B)", ""),
    ("choice-m2-next-q-answer", DATE, "M2", "The answer is (D).\n\nQ: What day is it?\nAnswer:", "(D)", "(D)", ""),
    ("choice-m2-cut-open-paren", DATE, "M2", "So the answer is (B).\nThe answer is (", "(B)", "(B)", ""),
    ("choice-m2-x-placeholder", DATE, "M2", "So the answer is (C).\nThe final answer is X.", "(C)", "(C)",
     "X is not an option letter"),
    ("choice-m2-final-dangling", DATE, "M2", "The answer is (A).\nTherefore, the final answer is", "(A)", "(A)", ""),
    ("choice-m2-bold-empty", DATE, "M2", "The answer is (B).\n\n**Answer:**", "(B)", "(B)", ""),
    # ---- choice: several candidates in the deciding segment
    ("choice-m3-or", DATE, "M3", "So the answer is (B) or (C).", N, N, "hedge"),
    ("choice-m3-either", DATE, "M3", "The answer is either (B) or (E).", N, N, "hedge"),
    ("choice-m3-and", DATE, "M3", "The answer is (B) and (E).", N, N, "pair"),
    ("choice-m3-all", DATE, "M3", "So the answer is (A), (B), (C), (D), (E) or (F).", N, N, "every option"),
    ("choice-m3-slash", DATE, "M3", "Answer: (B)/(C)", N, N, ""),
    ("choice-m3-also-possible", DATE, "M3", "The answer is (B), although (C) is also possible.", N, N, ""),
    ("choice-m3-pick-after-hedge", DATE, "M3", "The answer is (B) or (C), so I pick (B).", N, N,
     "two distinct committed candidates in the segment"),
    ("choice-m3-options-after-marker", DATE, "M3", "Answer:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938",
     N, N, "the marker ends its line and an enumeration follows"),
    ("choice-m3-hedge-not-overridden", DATE, "M3", "The answer is (B) or (C).\nI like (B).", N, N,
     "flexible never overrides a hedge after a marker"),
    ("choice-m3-one-line-options", DATE, "M3",
     "The answer is (A) 12/11/1937 (B) 12/25/1937 (C) 01/04/1938", N, N, "options restated in the segment"),
    # ---- choice: final statements that walk through the options
    ("choice-m8-in-turn", DATE, "M8", "The answer is (A).\nThe answer is (B).\nThe answer is (C).", N, N, ""),
    ("choice-m8-steps", DATE, "M8", "Step 9: The answer is (A).\nStep 10: The answer is (B).", N, N,
     "step numbers set aside, the statements are built the same way"),
    ("choice-m8-two", DATE, "M8", "The correct answer is (E).\nThe correct answer is (B).", N, N, ""),
    ("choice-m1-correction", DATE, "M1", "The answer is (A). No wait, the answer is (B).", "(B)", "(B)",
     "another lead-in: a correction"),
    ("choice-m1-same-statement", DATE, "M1", "The answer is (B).\nThe answer is (B).", "(B)", "(B)", "same candidate"),
    ("choice-m1-so-after-list", DATE, "M1", "The answer is (C).\nThe answer is (E).\nSo the answer is (B).",
     "(B)", "(B)", "the final statement has its own lead-in"),
    # ---- choice: ruled out
    ("choice-m4-not", DATE, "M4", "The answer is not (C).", N, N, ""),
    ("choice-m4-definitely-not", DATE, "M4", "So the answer is definitely not (A).", N, N, ""),
    ("choice-m4-not-later-commit", DATE, "M4", "The answer is not (C).\n(B) seems right.", N, N,
     "a refused marker segment decides both levels"),
    ("choice-m5-but", DATE, "M5", "The answer is (B), not (C).", "(B)", "(B)", ""),
    ("choice-m5-not-but", DATE, "M5", "The answer is not (C) but (B).", "(B)", "(B)", ""),
    ("choice-m5-rule-out", DATE, "M5", "So the answer is (B) - we can rule out (D).", "(B)", "(B)", ""),
    # ---- choice: no marker with a candidate
    ("choice-f1-which-is", DATE, "F1", COT + "Tomorrow is 12/25/1937, which is (B).", N, "(B)", ""),
    ("choice-f1-last-line-label", DATE, "F1", COT + "Yesterday was Christmas Eve.\n(B)", N, "(B)", ""),
    ("choice-f1-choose", DATE, "F1", "After checking each date I choose (C).", N, "(C)", ""),
    ("choice-f1-bare-line", DATE, "F1", "Tomorrow is Christmas.\nB.", N, "(B)", "a unit that is only a letter"),
    ("choice-f1-text-line", DATE, "F1", "Tomorrow is Christmas.\n12/25/1937", N, "(B)", "a unit that is one option's text"),
    ("choice-f1-correct", DATE, "F1", "Therefore (B) is correct.", N, "(B)", ""),
    ("choice-f1-last-sentence", DATE, "F1", "(A) looked plausible at first. Then I saw the year. So (B) it is.", N, "(B)",
     "the last unit decides"),
    ("choice-f1-marker-empty", DATE, "F1", "I pick (B).\nAnswer:", N, "(B)", "the only marker names nothing"),
    ("choice-f1-bullet-single", DATE, "F1", "Checking the calendar:\n- (B) is Christmas Day.", N, "(B)",
     "one labelled line after prose is no list"),
    ("choice-f2-or", DATE, "F2", "It is (B) or (C).", N, N, ""),
    ("choice-f2-both", DATE, "F2", "Both (B) and (E) fall on the 25th.", N, N, ""),
    ("choice-f2-one-line-list", DATE, "F2", "(A) 12/11/1937 (B) 12/25/1937 (C) 01/04/1938", N, N, ""),
    ("choice-f3-cant", DATE, "F3", "It can't be (A).", N, N, ""),
    ("choice-f3-rule-out", DATE, "F3", COT + "We can rule out (D).", N, N, ""),
    ("choice-f3-fits-then-rule-out", DATE, "F3", "(B) fits. We can rule out (D).", N, N,
     "only the last candidate-naming unit counts"),
    ("choice-f3-is-wrong", DATE, "F3", "(C) is wrong.", N, N, ""),
    ("choice-f3-definitely-not", DATE, "F3", "Definitely not (C).", N, N, ""),
    ("choice-f3-eliminated", DATE, "F3", "Option (E) can be eliminated.", N, N, ""),
    ("choice-f4-options", DATE, "F4",
     COT + "Options:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938\n(D) 12/04/1937\n(E) 12/25/2006\n(F) 07/25/1937",
     N, N, "restated option list"),
    ("choice-f4-cut-option", DATE, "F4",
     "Option (A) is a date in December. Option (D) is a date in December. Option (", N, N, "cut off mid-item"),
    ("choice-f4-cut-bullet", DATE, "F4", "- (A) is neutral\n- (B) is positive\n- (", N, N, "cut off mid-item"),
    ("choice-f4-verdicts", DATE, "F4", "(A) is wrong.\n(B) is right.", N, N, "item-by-item evaluation"),
    ("choice-f4-steps", DATE, "F4", "Step 1: The first option is (A).\nStep 2: The second option is (B).", N, N, ""),
    ("choice-f4-letter-dot", DATE, "F4", "A. 12/11/1937\nB. 12/25/1937", N, N, ""),
    ("choice-f4-with-descriptions", DATE, "F4",
     "Option (A)\nThis is in December.\nOption (B)\nThis is also in December.\nOption (C)", N, N,
     "description lines between the items"),
    ("choice-f5-not-so", DATE, "F5", "Not (C), so (B).", N, "(B)", ""),
    ("choice-f5-not-trailing", DATE, "F5", "(B), not (E).", N, "(B)", ""),
    ("choice-f5-isnt", DATE, "F5", "The answer isn't (A); it is (D).", N, "(D)", "\"answer isn't\" is no marker"),
    ("choice-n1-empty", DATE, "N1", "", N, N, ""),
    ("choice-n1-blank", DATE, "N1", "   \n\n  \t", N, N, ""),
    ("choice-n1-prefix-only", DATE, "N1", "Let's think step by step.", N, N, ""),
    ("choice-n1-unsure", DATE, "N1", "I am not sure.", N, N, ""),
    ("choice-n1-a-word", SHAPES, "N1", "A heptagon has seven sides and I think the path closes.", N, N,
     "A and I as words; the option text is not the whole unit"),
    ("choice-n1-text-in-sentence", DATE, "N1", "The date is 12/25/1937 then.", N, N,
     "option text inside a longer unit names nothing"),
    ("choice-n1-cyrillic", DATE, "N1", "The answer is (\u0412).", N, N, "Cyrillic Ve looks like B but is no option letter"),
    # ---- choice: markdown, LaTeX, unicode
    ("choice-m6-bold-marker", DATE, "M6", "**Answer:** (B)", "(B)", "(B)", ""),
    ("choice-m6-bold-letter", DATE, "M6", "The answer is **(B)**.", "(B)", "(B)", ""),
    ("choice-m6-boxed", DATE, "M6", "The answer is $\\boxed{B}$.", "(B)", "(B)", ""),
    ("choice-m6-boxed-paren", DATE, "M6", "\\boxed{(C)}", "(C)", "(C)", ""),
    ("choice-m6-boxed-text", DATE, "M6", "The final answer is $\\boxed{\\text{(B)}}$", "(B)", "(B)", ""),
    ("choice-m6-bullet-bold", DATE, "M6", "- **Answer**: (B)", "(B)", "(B)", ""),
    ("choice-m6-backticks", DATE, "M6", "The answer is `(B)`.", "(B)", "(B)", ""),
    ("choice-m6-underscores", DATE, "M6", "The answer is __B__.", "(B)", "(B)", ""),
    ("choice-m6-textbf", DATE, "M6", "The answer is \\textbf{(E)}.", "(E)", "(E)", ""),
    ("choice-m6-fullwidth", DATE, "M6", "The answer is \uff08\uff22\uff09.", "(B)", "(B)", "fullwidth (B)"),
    ("choice-m6-fullwidth-letter", DATE, "M6", "The answer is (\uff23)", "(C)", "(C)", "fullwidth C"),
    ("choice-m6-nbsp", DATE, "M6", "The answer is\u00a0(B).", "(B)", "(B)", ""),
    ("choice-m6-zero-width-marker", DATE, "M6", "The ans\u200bwer is (B).", "(B)", "(B)", "zero-width space inside the marker"),
    ("choice-m6-zero-width-letter", DATE, "M6", "The answer is (\u200bB\u200d).", "(B)", "(B)", ""),
    ("choice-m6-curly-quotes", DATE, "M6", "The answer is \u201c(B)\u201d.", "(B)", "(B)", ""),
    ("choice-m6-bom", DATE, "M6", "The answer is (B)\ufeff", "(B)", "(B)", ""),
    ("choice-m7-heading", DATE, "M7", COT + "Tomorrow is Christmas.\n\n### Final Answer\n(B)", "(B)", "(B)", ""),
    ("choice-m7-bold-heading", DATE, "M7", "**Final answer**\n\n(C)", "(C)", "(C)", ""),
    ("choice-m7-next-line", DATE, "M7", "Answer:\n(B)", "(B)", "(B)", ""),
    # ---- choice: long replies
    ("choice-l1-long-steps", DATE, "L1", COT + _STEPS + "So the answer is (B).", "(B)", "(B)", "M1: after 30 kB"),
    ("choice-l1-long-list", DATE, "L1", COT + _LIST, N, N, "F4: 900 enumerated lines"),
    ("choice-l1-long-tail", DATE, "L1", "So the answer is (B). " + _PROSE, "(B)", "(B)",
     "M1: the marker is 30 kB before the end"),
    ("choice-l1-long-repeat", DATE, "L1", _REPEAT, "(C)", "(C)", "M1: the same marker line 2700 times"),
    ("choice-l1-long-trailing", DATE, "L1", "The answer is (B).\n" + _STEPS + "Answer:", "(B)", "(B)",
     "M2: trailing Answer: after 30 kB"),
    ("choice-l1-long-no-answer", DATE, "L1", _PROSE, N, N, "N1: 30 kB of prose"),
    # ---- integer
    ("int-m1-plain", COUNT, "M1", COT + "A flute, a piano, a trombone, a violin, an accordion, a clarinet, a drum "
     "and a trumpet.\nSo the answer is 8.", "8", "8", ""),
    ("int-m1-words", COUNT, "M1", "The answer is eight.", "8", "8", "number in words"),
    ("int-m1-unit", COUNT, "M1", "The answer is 8 instruments.", "8", "8", ""),
    ("int-m1-wrong", COUNT, "M1", "The answer is 7.", "7", "7", ""),
    ("int-m1-leading-zero", COUNT, "M1", "Answer: 08", "8", "8", ""),
    ("int-m1-twenty-one", COUNT, "M1", "The answer is twenty-one.", "21", "21", ""),
    ("int-m1-thousands", COUNT, "M1", "The answer is 1,008.", "1008", "1008", ""),
    ("int-m1-decimal", COUNT, "M1", "The answer is 8.5.", "8.5", "8.5", "a decimal is wrong for an integer gold"),
    ("int-m1-one", COUNT, "M1", "The answer is one.", "1", "1", ""),
    ("int-m1-parens", COUNT, "M1", "The answer is (8).", "8", "8", ""),
    ("int-m1-negative", ARITH, "M1", "So the answer is -50.", "-50", "-50", ""),
    ("int-m1-minus-words", ARITH, "M1", "The answer is minus fifty.", "-50", "-50", ""),
    ("int-m1-unicode-minus", ARITH, "M1", "The answer is \u221250.", "-50", "-50", "U+2212 minus sign"),
    ("int-m1-lost-sign", ARITH, "M1", "The answer is 50.", "50", "50", ""),
    ("int-m2-trailing", COUNT, "M2", "So the answer is 8.\nAnswer:", "8", "8", ""),
    ("int-m3-equation", COUNT, "M3", "So the answer is 3 + 5 = 8.", N, N, "an equation names several numbers"),
    ("int-m3-or", COUNT, "M3", "The answer is 7 or 8.", N, N, ""),
    ("int-m4-not", COUNT, "M4", "The answer is not 7.", N, N, ""),
    ("int-m5-not", COUNT, "M5", "The answer is 8, not 7.", "8", "8", ""),
    ("int-m6-boxed", COUNT, "M6", "The total is \\boxed{8}", "8", "8", ""),
    ("int-m6-bold", COUNT, "M6", "The answer is **8**.", "8", "8", ""),
    ("int-m6-fullwidth", COUNT, "M6", "The answer is \uff18.", "8", "8", "fullwidth digit"),
    ("int-m7-next-line", COUNT, "M7", "Answer:\n8", "8", "8", ""),
    ("int-f1-total", COUNT, "F1", "I count a flute, a piano and six more. In total there are 8 instruments.", N, "8", ""),
    ("int-f1-short", COUNT, "F1", "There are 8.", N, "8", ""),
    ("int-f1-pronoun-one", COUNT, "F1", "The one that matters: 8.", N, "8", "'The one' is a pronoun"),
    ("int-f2-equation", COUNT, "F2", "3 + 5 = 8", N, N, ""),
    ("int-f2-maybe", COUNT, "F2", "Maybe 7, maybe 8.", N, N, ""),
    ("int-f3-not", COUNT, "F3", "It is not 7.", N, N, ""),
    ("int-f5-not", COUNT, "F5", "It's not 7, it's 8.", N, "8", ""),
    ("int-n1-numbered-list", COUNT, "N1", "1. flute\n2. piano\n3. trombone", N, N, "list numbers are labels"),
    ("int-n1-steps", COUNT, "N1", "Step 1: count.\nStep 2: add.\nStep 3:", N, N, ""),
    ("int-n1-empty", COUNT, "N1", "", N, N, ""),
    ("int-l1-digits", COUNT, "L1", _DIGITS, N, N, "F2: one 40 kB line of numbers"),
    ("int-l1-digits-then-answer", COUNT, "L1", _DIGITS + "\nSo the answer is 8.", "8", "8", "M1: after 40 kB of numbers"),
    # ---- true_false
    ("tf-m1-plain", BOOL, "M1", COT + "not True is False; False and True is False.\nSo the answer is False.",
     "False", "False", ""),
    ("tf-m1-lower", BOOL, "M1", "The answer is false", "False", "False", ""),
    ("tf-m1-upper", BOOL, "M1", "The answer is TRUE.", "True", "True", ""),
    ("tf-m1-colon", BOOL, "M1", "The answer is: false.", "False", "False", ""),
    ("tf-m3-hedge", BOOL, "M3", "The answer is True or False.", N, N, ""),
    ("tf-m4-not-true", BOOL, "M4", "The answer is not True.", N, N, "not True is a ruled-out True, not False"),
    ("tf-m5-not-true", BOOL, "M5", "The answer is False, not True.", "False", "False", ""),
    ("tf-m6-boxed", BOOL, "M6", "\\boxed{\\text{False}}", "False", "False", ""),
    ("tf-m6-fullwidth", BOOL, "M6", "The answer is \uff26\uff21\uff2c\uff33\uff25.", "False", "False", ""),
    ("tf-f1-evaluates", BOOL, "F1", "It evaluates to False.", N, "False", ""),
    ("tf-f1-bold", BOOL, "F1", "**False**", N, "False", ""),
    ("tf-f2-expression", BOOL, "F2", "True and False is False.", N, N, "the unit names True and False"),
    ("tf-f2-either", BOOL, "F2", "Either True or False.", N, N, ""),
    ("tf-f5-not-paren", BOOL, "F5", "not ( True ) is False, so the expression is False.", N, "False",
     "'not ( True )' rules True out"),
    ("tf-n1-zero", BOOL, "N1", "The answer is 0.", N, N, "0 is no true/false word"),
    ("tf-n1-empty", BOOL, "N1", "", N, N, ""),
    # ---- yes_no
    ("yn-m1-no", SPORTS, "M1", COT + "Elias Lindholm is a hockey player; beating the buzzer is basketball.\n"
     "So the answer is no.", "No", "No", ""),
    ("yn-m1-No", SPORTS, "M1", "The answer is No.", "No", "No", ""),
    ("yn-m1-yes", SPORTS, "M1", "The answer is yes.", "Yes", "Yes", ""),
    ("yn-m1-implausible", SPORTS, "M1", "The answer is: implausible.", "No", "No", "implausible is an answer"),
    ("yn-m1-not-plausible", SPORTS, "M1", "The answer is not plausible.", "No", "No", "'not plausible' is an answer"),
    ("yn-m1-causal-yes", CAUSAL, "M1", "So the answer is Yes.", "Yes", "Yes", ""),
    ("yn-m1-nav-no-because", NAV, "M1", "The answer is no because we end 11 steps left.", "No", "No",
     "first word of the segment"),
    ("yn-m3-hedge", SPORTS, "M3", "The answer is yes or no.", N, N, ""),
    ("yn-m4-not-yes", SPORTS, "M4", "The answer is definitely not yes.", N, N, ""),
    ("yn-m6-bold", SPORTS, "M6", "**Answer:** No", "No", "No", ""),
    ("yn-m6-fullwidth", SPORTS, "M6", "Answer: \uff2e\uff4f", "No", "No", ""),
    ("yn-f1-plausible", SPORTS, "F1", "The sentence is plausible.", N, "Yes", ""),
    ("yn-f1-implausible", SPORTS, "F1", "The sentence is implausible.", N, "No", ""),
    ("yn-f1-yes-plausible", SPORTS, "F1", "Yes, Elias Lindholm is a hockey player, so the sentence is plausible.",
     N, "Yes", "Yes and plausible are one candidate"),
    ("yn-f1-no-alone", NAV, "F1", "We do not return.\nNo.", N, "No", ""),
    ("yn-f2-hedge", SPORTS, "F2", "Yes or no? Hard to say.", N, N, ""),
    ("yn-f4-options", CAUSAL, "F4", COT + "Options:\n- Yes\n- No", N, N, ""),
    ("yn-n1-determiner", SPORTS, "N1", "There is no reason to doubt it.", N, N, "'no' as a determiner"),
    ("yn-n1-empty", SPORTS, "N1", "", N, N, ""),
    # ---- valid_invalid
    ("vi-m1-invalid", FALLACY, "M1", COT + "The conclusion does not follow.\nSo the answer is invalid.",
     "invalid", "invalid", ""),
    ("vi-m1-valid", FALLACY, "M1", "The answer is valid.", "valid", "valid", ""),
    ("vi-m1-not-valid", FALLACY, "M1", "The answer is: not valid.", "invalid", "invalid", "'not valid' is an answer"),
    ("vi-m1-quoted", FALLACY, "M1", "The answer is \"invalid\".", "invalid", "invalid", ""),
    ("vi-m1-valid-correct", FALLACY_V, "M1", "So the answer is valid.", "valid", "valid", ""),
    ("vi-m3-hedge", FALLACY, "M3", "The answer is valid or invalid.", N, N, ""),
    ("vi-m6-bold", FALLACY, "M6", "The answer is **invalid**.", "invalid", "invalid", ""),
    ("vi-f1-deductively", FALLACY, "F1", "The argument is deductively valid.", N, "valid", ""),
    ("vi-f1-not-deductively", FALLACY, "F1", "The argument is not deductively valid.", N, "invalid", ""),
    ("vi-f2-hedge", FALLACY, "F2", "valid or invalid? It is hard to tell.", N, N, ""),
    ("vi-f4-options", FALLACY, "F4", "Options:\n- valid\n- invalid", N, N, ""),
    # ---- dyck
    ("dyck-m1-plain", DYCK, "M1", COT + "We close the two square brackets, then the angle bracket.\n"
     "So the answer is ] ] >.", "] ] >", "] ] >", ""),
    ("dyck-m1-no-spaces", DYCK, "M1", "The answer is ]]>", "] ] >", "] ] >", ""),
    ("dyck-m1-wrong", DYCK, "M1", "The answer is ] >", "] >", "] >", ""),
    ("dyck-m1-backticks", DYCK, "M1", "The answer is `] ] >`.", "] ] >", "] ] >", ""),
    ("dyck-m3-hedge", DYCK, "M3", "The answer is ] ] > or ] >.", N, N, "two bracket runs"),
    ("dyck-m7-next-line", DYCK, "M7", "Answer:\n] ] >", "] ] >", "] ] >", ""),
    ("dyck-f1-whole", DYCK, "F1", "The full sequence is < [ [ ] ] >.", N, "< [ [ ] ] >", "the whole sequence is no closing part"),
    ("dyck-n1-prose", DYCK, "N1", "We need to close the brackets.", N, N, ""),
    ("dyck-n1-empty", DYCK, "N1", "", N, N, ""),
    # ---- word_sort
    ("sort-m1-plain", SORT, "M1", COT + "f < h < pe < pu < s.\nSo the answer is fortescue helmsman percept purloin sioux.",
     "fortescue helmsman percept purloin sioux", "fortescue helmsman percept purloin sioux", ""),
    ("sort-m1-commas", SORT, "M1", "The answer is: fortescue, helmsman, percept, purloin, sioux.",
     "fortescue helmsman percept purloin sioux", "fortescue helmsman percept purloin sioux", ""),
    ("sort-m1-and", SORT, "M1", "The answer is fortescue, helmsman, percept, purloin and sioux.",
     "fortescue helmsman percept purloin sioux", "fortescue helmsman percept purloin sioux", "'and' dropped"),
    ("sort-m1-capitals", SORT, "M1", "The answer is Fortescue Helmsman Percept Purloin Sioux.",
     "fortescue helmsman percept purloin sioux", "fortescue helmsman percept purloin sioux", ""),
    ("sort-m1-wrong-order", SORT, "M1", "The answer is helmsman fortescue percept purloin sioux.",
     "helmsman fortescue percept purloin sioux", "helmsman fortescue percept purloin sioux", ""),
    ("sort-m1-missing", SORT, "M1", "The answer is fortescue helmsman percept sioux.",
     "fortescue helmsman percept sioux", "fortescue helmsman percept sioux", "4 of 5 words"),
    ("sort-m7-numbered", SORT, "M7", "The answer is:\n1. fortescue\n2. helmsman\n3. percept\n4. purloin\n5. sioux",
     "fortescue helmsman percept purloin sioux", "fortescue helmsman percept purloin sioux", "one word per line"),
    ("sort-f1-no-marker", SORT, "F1", "Sorted: fortescue helmsman percept purloin sioux", N,
     "fortescue helmsman percept purloin sioux", ""),
    ("sort-n1-placeholder", SORT, "N1", "The answer is X.", N, N, ""),
    ("sort-n1-one-word", SORT, "N1", "The first word is fortescue.", N, N, "one of five words is no candidate"),
    # ---- free_text
    ("free-m1-plain", FREE, "M1", "The answer is Paris.", "paris", "paris", ""),
    ("free-m1-wrong", FREE, "M1", "The answer is Lyon.", "lyon", "lyon", ""),
    ("free-m1-longer", FREE, "M1", "The answer is the city of Paris.", "city of paris", "city of paris", ""),
    ("free-f1-bare", FREE, "F1", "Paris", N, "paris", ""),
    ("free-n1-empty", FREE, "N1", "", N, N, ""),
    # ---- issue 32: text that is not an answer (flexible fallback only)
    # F6: every candidate sits in words read back from the question or from our prompts
    ("choice-f6-option-line-then-steps", SNARK, "F6", COT + "(A) Violence is a perfect way to unleash your "
     "frustrations\n\nStep 1: Identify the subject.\nThe subject is violence.", N, N,
     "option (A)'s line restated, and the reply goes on"),
    ("choice-f6-premise", MEL, "F6", "Mel finished last", N, N, "the question's own premise (option (A)'s text too)"),
    ("choice-f6-format-hint", DATE, "F6", HINT_CHOICE, N, N,
     "our instruction read back: 'X.\"' is no segment with a candidate, 'like (B)' is ours"),
    ("int-f6-one-line", COUNT, "F6",
     'I ended with one line of the form "So the answer is X." where X is a single integer.', N, N, "'one line' is our instruction's"),
    ("yn-f6-question-quoted", SPORTS, "F6", 'I read "Is the following sentence plausible?" twice.', N, N,
     "plausible only inside the question's words"),
    ("int-f6-input-list", COUNT_CARS, "F6", "Then a couch, and four cars.", N, N, "four only in the question's list"),
    ("dyck-f6-input", DYCK, "F6", "The input is < [ [ and nothing more.", N, N,
     "the input read back (opening brackets)"),
    ("sort-f6-list-read-back", SORT, "F6", "The words are: sioux fortescue purloin percept helmsman", N, N,
     "the question's list in its own order"),
    ("tf-f6-format-hint", BOOL, "F6", "Then X is True or False.", N, N, "our format hint"),
    ("vi-f6-format-hint", FALLACY, "F6", "where X is valid or invalid.", N, N, "our format hint"),
    # F1: an echo names nothing, so the model's own words before it decide; answers as written are no echo
    ("choice-f1-before-echoed-hint", DATE, "F1", "So (C) it is.\nUse the reflection and solve the question again. "
     + HINT_CHOICE, N, "(C)", "the echoed instruction after it is skipped"),
    ("choice-f1-label-own-text", SNARK, "F1", 'The reply to "Which statement is sarcastic?" is (A) Violence is a '
     "perfect way to unleash your frustrations.", N, "(A)", "the label with its own option text, in the model's words"),
    ("choice-f1-option-text-ends-reply", SNARK, "F1", "Violence is a perfect way to unleash your frustrations",
     N, "(A)", "an option's text that ends the reply is a conclusion"),
    ("dyck-f1-closers-in-input", DYCK_CLOSERS, "F1", "We close it with ] } }", N, "] } }",
     "closing brackets are what we ask for, even where the input holds the same run"),
    ("choice-f1-stops-at-candidate", DATE, "F1", "Tomorrow's date is (B)", N, "(B)",
     "no full stop, but nothing after the candidate"),
    ("choice-f1-label-text-no-stop", DATE, "F1", "After checking: (B) 12/25/1937", N, "(B)",
     "the option's own text after its label is the answer as written"),
    ("choice-f1-lone-non-option", GEO, "F1", "None of the shapes fit, so I pick:\n(L)", N, "(L)",
     "a letter past the options, not in a list: a wrong answer"),
    # F7: the reply's last unit names its candidate in a sentence that goes on and stops
    ("int-f7-add-to", COUNT, "F7", "So, we add 8 to", N, N, ""),
    ("vi-f7-because", FALLACY, "F7", "The argument is invalid because it does not follow a logical", N, N, ""),
    ("int-f7-operator", ARITH, "F7", "Step 4: -25 * 2 = -50\n\nStep 5: -50 + ", N, N, "an operator goes on"),
    ("choice-f7-bullet-no-stop", DATE, "F7", "Checking the calendar:\n- (B) is Christmas Day", N, N,
     "a sentence past its candidate with no end"),
    ("tf-f7-is", BOOL, "F7", "not True is False. So the whole expression is False and", N, N, ""),
    # F8: a lettered list that runs past the options or stops inside an item's label
    ("choice-f8-past-options", DATE, "F8", "(E) 12/25/2006\n(F) 07/25/1937\n(G)", N, N, "options end at (F)"),
    ("choice-f8-cut-label", DATE, "F8", "Option (A) is in December.\nOption (B) is in December.\nOption (C", N, N,
     "stops inside the label"),
    ("choice-f8-past-same-letter", GEO, "F8", "Option (L) triangle is a polygon.\n\nOption (L)", N, N,
     "options end at (K)"),
]


def main() -> None:
    rows = []
    seen = set()
    for case_id, qkey, rule, reply, strict, flexible, note in CASES:
        if case_id in seen:
            raise SystemExit(f"duplicate case id {case_id}")
        seen.add(case_id)
        q = FREE_QUESTIONS.get(qkey) or question_fields(qkey)
        gold = canonical_gold(q["gold"], q["kind"])
        row = {"id": f"written/{case_id}", "origin": "written", "source": "tests/data/scoring_corpus/make_written.py",
               **{k: v for k, v in q.items() if k != "gold"}, "gold": q["gold"], "reply": reply,
               "expected_strict": label(strict, gold), "expected_flexible": label(flexible, gold),
               "rule": rule, "note": note}
        rows.append(row)
    with open(OUT, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} written cases to {OUT}")


if __name__ == "__main__":
    main()
