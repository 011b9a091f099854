"""Write written.jsonl: math replies written to test the reading and the comparison rules of
README.md, each labelled here by those rules (the label is what a reader takes from the reply,
never what the scorer returns).

A case is (id, rule, gold, reply, strict, flexible, note); a label is (verdict, answer) with the
answer as the reader reads it (None for no answer). Run from the repository root:
    python tests/data/math_corpus/make_written.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from math_rows import check_row  # noqa: E402

OUT = HERE / "written.jsonl"
OK, BAD, NONE = "correct", "wrong", "no_answer"
SOURCE = "tests/data/math_corpus/make_written.py"
QUESTION = "A written case: the question does not enter the reading."
TOWER = "9^{9^{9^{9}}}"


def same(verdict, answer):
    """Both levels read the same."""
    return (verdict, answer), (verdict, answer)


def flexible_only(verdict, answer):
    return (NONE, None), (verdict, answer)


NO = ((NONE, None), (NONE, None))

# (id, rule, gold, reply, (strict, flexible), note)
CASES = [
    # ---- equivalent forms (E rules), read from a box
    ("half-frac-vs-decimal", "B1", "0.5", r"So the answer is $\boxed{\frac{1}{2}}$.", same(OK, r"\frac{1}{2}"), "E1 fraction = decimal"),
    ("half-decimal-vs-frac", "B1", r"\frac12", r"So the answer is $\boxed{0.5}$.", same(OK, "0.5"), "E1"),
    ("half-dfrac-short", "B1", r"\frac{1}{2}", r"So the answer is $\boxed{\dfrac12}$.", same(OK, r"\dfrac12"), "E2 dfrac, one-digit arguments"),
    ("half-slash", "B1", r"\frac{1}{2}", r"So the answer is $\boxed{1/2}$.", same(OK, "1/2"), "E1"),
    ("half-leading-point", "B1", r"\frac12", r"The answer is $\boxed{.5}$", same(OK, ".5"), "E1"),
    ("half-tfrac", "B1", "0.5", r"$\boxed{\tfrac{1}{2}}$", same(OK, r"\frac{1}{2}"), "E2"),
    ("root-2sqrt2-vs-sqrt8", "B1", r"\sqrt{8}", r"So the answer is $\boxed{2\sqrt{2}}$.", same(OK, r"2\sqrt{2}"), "E1 radicals"),
    ("root-sqrt8-vs-2sqrt2", "B1", r"2\sqrt2", r"So the answer is $\boxed{\sqrt{8}}$.", same(OK, r"\sqrt8"), "E1"),
    ("root-rationalised", "B1", r"\frac{\sqrt{2}}{2}", r"So the answer is $\boxed{\frac{1}{\sqrt{2}}}$.", same(OK, r"\frac{1}{\sqrt2}"), "E1"),
    ("root-unicode", "M1", r"2\sqrt{2}", "So the answer is 2\u221a2.", same(OK, r"2\sqrt2"), "E2 unicode root"),
    ("root-sqrt-space-number", "B1", r"\sqrt{10}", r"So the answer is $\boxed{\sqrt 10}$.", same(OK, r"\sqrt{10}"), "E7 the whole number under the root"),
    ("pi-times-two", "B1", r"2\pi", r"So the answer is $\boxed{\pi \cdot 2}$.", same(OK, r"2\pi"), "E1 pi"),
    ("pi-quarter", "B1", r"\frac14\pi", r"So the answer is $\boxed{\frac{\pi}{4}}$.", same(OK, r"\frac{\pi}{4}"), "E1"),
    ("pi-unicode", "M1", r"\frac{\pi}{2}", "So the answer is \u03c0/2.", same(OK, r"\pi/2"), "E2 unicode pi"),
    ("pi-decimal-near-miss", "B1", r"2\pi", r"So the answer is $\boxed{6.28}$.", same(BAD, "6.28"), "E1 a rounded value is another number"),
    ("third-rounded-near-miss", "B1", r"\frac13", r"So the answer is $\boxed{0.333}$.", same(BAD, "0.333"), "E1"),
    ("third-vs-rounded-gold", "B1", "0.33", r"So the answer is $\boxed{\frac{1}{3}}$.", same(BAD, r"\frac13"), "E1"),
    ("percent-vs-number", "B1", "50", r"So the answer is $\boxed{50\%}$.", same(OK, "50"), "E3 the percent sign is dropped"),
    ("percent-gold-vs-number", "B1", r"25\%", r"So the answer is $\boxed{25}$.", same(OK, "25"), "E3"),
    ("percent-vs-fraction", "B1", r"50\%", r"So the answer is $\boxed{0.5}$.", same(BAD, "0.5"), "E3 50% is read as 50, not 0.5"),
    ("percent-word", "M1", "40", "So the answer is 40 percent.", same(OK, "40"), "E3 unit word"),
    ("interval-same", "B1", r"\left[ \frac{3}{2}, 2 \right)", r"So the answer is $\boxed{[1.5, 2)}$.", same(OK, "[1.5,2)"), "E6 interval, E2 left/right"),
    ("interval-wrong-bracket", "B1", "[2,5)", r"So the answer is $\boxed{(2,5)}$.", same(BAD, "(2,5)"), "E6 brackets are part of an interval"),
    ("interval-infinity", "B1", r"[3,\infty)", r"So the answer is $\boxed{[3, \infty)}$.", same(OK, r"[3,\infty)"), "E6"),
    ("interval-union-reordered", "B1", r"(-\infty, \tfrac37] \cup [\tfrac35, \infty)",
     r"So the answer is $\boxed{[0.6, \infty) \cup (-\infty, 3/7]}$.", same(OK, r"[0.6,\infty)\cup(-\infty,3/7]"), "E6 a union is unordered"),
    ("interval-union-missing-part", "B1", r"(-\infty, -2) \cup (0, 1) \cup (2, 4)",
     r"So the answer is $\boxed{(-\infty, -2) \cup (2, 4)}$.", same(BAD, r"(-\infty,-2)\cup(2,4)"), "E6"),
    ("tuple-same", "B1", "(3,-1)", r"So the answer is $\boxed{(3, -1)}$.", same(OK, "(3,-1)"), "E6 ordered pair"),
    ("tuple-swapped", "B1", "(3,-1)", r"So the answer is $\boxed{(-1, 3)}$.", same(BAD, "(-1,3)"), "E6 order matters"),
    ("tuple-fractions", "B1", r"\left( \frac{1}{2}, -\frac{3}{4} \right)", r"$\boxed{(0.5, -0.75)}$", same(OK, "(0.5,-0.75)"), "E6 element-wise values"),
    ("tuple-bare-list-near-miss", "B1", "(6,7)", r"So the answer is $\boxed{6, 7}$.", same(BAD, "6,7"), "E6 a list is not a point"),
    ("vector-pmatrix-vs-tuple", "B1", r"\begin{pmatrix} 3/5 \\ 57/5 \end{pmatrix}", r"So the answer is $\boxed{(0.6, 11.4)}$.",
     same(OK, "(0.6,11.4)"), "E6 a column vector is the tuple of its entries"),
    ("vector-pmatrix-same", "B1", r"\begin{pmatrix} -4/9 \\ 1/9 \\ 8/9 \end{pmatrix}",
     r"$\boxed{\begin{pmatrix} -\frac{4}{9} \\ \frac{1}{9} \\ \frac{8}{9} \end{pmatrix}}$",
     same(OK, r"\begin{pmatrix}-\frac49\\\frac19\\\frac89\end{pmatrix}"), "E6 nested braces in a box"),
    ("set-reordered", "B1", "1,-2", r"So the answer is $\boxed{-2, 1}$.", same(OK, "-2,1"), "E6 a list is unordered"),
    ("set-braces", "B1", "1,-2", r"So the answer is $\boxed{\{1, -2\}}$.", same(OK, r"\{1,-2\}"), "E6"),
    ("set-pm", "B1", "2,-2", r"So the answer is $\boxed{\pm 2}$.", same(OK, r"\pm2"), "E6 plus-minus is two values"),
    ("set-extra-element", "B1", "1,2", r"So the answer is $\boxed{1, 2, 3}$.", same(BAD, "1,2,3"), "E6"),
    ("set-single-vs-list", "B1", "2,3", r"So the answer is $\boxed{2}$.", same(BAD, "2"), "E6 one value is not the list"),
    ("set-and-statement", "M1", r"19 \text{ and }43", "So the answer is 43 and 19.", same(OK, "43, 19"), "E6 'and' joins list items"),
    ("units-text-squared", "B1", "24", r"So the answer is $\boxed{24 \text{ cm}^2}$.", same(OK, "24"), "E3 unit and its power"),
    ("units-words", "M1", "24", "So the answer is 24 square units.", same(OK, "24"), "E3"),
    ("units-dollars", "B1", r"\$18.90", r"So the answer is $\boxed{18.9}$.", same(OK, "18.9"), "E3 dollar sign, E1 trailing zero"),
    ("units-dollar-sign-in-box", "B1", "18.90", r"So the answer is $\boxed{\$18.90}$.", same(OK, "18.90"), "E3"),
    ("units-degrees-circ", "B1", "55", r"So the answer is $\boxed{55^\circ}$.", same(OK, "55"), "E3"),
    ("units-degrees-word", "M1", r"55^\circ", "So the answer is 55 degrees.", same(OK, "55"), "E3"),
    ("units-gold-mbox", "B1", r"864 \mbox{ inches}^2", r"$\boxed{864}$", same(OK, "864"), "E3"),
    ("prefix-x-equals", "B1", "3", r"So the answer is $\boxed{x = 3}$.", same(OK, "3"), "E4"),
    ("prefix-statement", "M1", "3", r"So the answer is $x=3$.", same(OK, "3"), "E4"),
    ("prefix-gold-has-it", "B1", "x=5", r"So the answer is $\boxed{5}$.", same(OK, "5"), "E4"),
    ("chain-last-side", "M1", "10", r"So the answer is $2 \cdot 5 = 10$.", same(OK, "10"), "E4 a computation's result is its last side"),
    ("equation-rearranged", "B1", "10x - 4y - 5z - 20 = 0", r"So the answer is $\boxed{10x - 4y - 5z = 20}$.",
     same(OK, "10x-4y-5z=20"), "E4 the same equation"),
    ("equation-vs-solutions", "B1", "1,-1", r"So the answer is $\boxed{x^2 - 1 = 0}$.", same(BAD, "x^2-1=0"), "E4 an equation is not its solutions"),
    ("thousands-comma", "B1", r"10,\!080", r"So the answer is $\boxed{10,080}$.", same(OK, "10080"), "E5"),
    ("thousands-plain", "M1", r"25,\!000", "So the answer is 25000.", same(OK, "25000"), "E5"),
    ("thousands-thin-comma", "B1", "90{,}900{,}909", r"$\boxed{90900909}$", same(OK, "90900909"), "E5"),
    ("mixed-number", "B1", r"\frac{27}{8}", r"So the answer is $\boxed{3\frac{3}{8}}$.", same(OK, r"3\frac38"), "E7"),
    ("word-answer-letter", "B1", r"\text{(E)}", r"So the answer is $\boxed{E}$.", same(OK, "E"), "E8"),
    ("word-answer-wrong-letter", "B1", r"\text{(E)}", r"So the answer is $\boxed{\text{(D)}}$.", same(BAD, "(D)"), "E8"),
    ("word-answer-name", "B1", r"\text{Dana}", r"So the answer is $\boxed{\text{Dana}}$.", same(OK, "Dana"), "E8"),
    ("number-word-in-box", "B1", "5", r"So the answer is $\boxed{\text{five}}$.", same(OK, "5"), "E8 number words in a box"),
    ("base-subscript", "B1", "443_5", r"So the answer is $\boxed{443_{5}}$.", same(OK, "443_5"), "E9"),
    ("base-decimal-value-near-miss", "B1", "443_5", r"So the answer is $\boxed{123}$.", same(BAD, "123"), "E9 the numeral, not its value"),
    ("complex-reordered", "B1", "-3 + 6i", r"So the answer is $\boxed{6i - 3}$.", same(OK, "6i-3"), "E1 i is the imaginary unit"),
    ("polynomial-reordered", "B1", "x^3+3x-6", r"So the answer is $\boxed{3x + x^3 - 6}$.", same(OK, "3x+x^3-6"), "E1"),
    ("polynomial-factored", "B1", "7x^3-21x^2+14x", r"So the answer is $\boxed{7x(x-1)(x-2)}$.", same(OK, "7x(x-1)(x-2)"), "E1 by value, whatever the form"),
    ("polynomial-sign-near-miss", "B1", "x^2-1", r"So the answer is $\boxed{x^2+1}$.", same(BAD, "x^2+1"), "E1"),
    ("negative-near-miss", "B1", "5", r"So the answer is $\boxed{-5}$.", same(BAD, "-5"), "E1"),
    ("trig-degrees", "B1", r"\cos 13^\circ", r"So the answer is $\boxed{\cos 13^{\circ}}$.", same(OK, r"\cos13"), "E3"),
    ("fbox", "B1", "12", r"So the answer is \fbox{12}.", same(OK, "12"), "B1 fbox is a box"),
    ("box-without-braces", "B1", "5", r"So the answer is $\boxed 5$.", same(OK, "5"), "B1"),
    ("box-markdown", "B1", "12", r"**Final Answer:** $\boxed{12}$", same(OK, "12"), "B1"),
    ("statement-half-unicode", "M1", r"\frac12", "So the answer is \u00bd.", same(OK, "1/2"), "E2 unicode fraction"),
    ("statement-display", "M1", r"\frac{3}{4}", "So the answer is:\n\\[\n\\frac{3}{4}\n\\]", same(OK, r"\frac34"), "M1 a display after a marker ending its line"),
    # ---- boxes that agree or differ
    ("boxes-agree", "B1", r"\frac12", r"First $\boxed{\frac{2}{4}}$, that is $\boxed{0.5}$.", same(OK, "0.5"), "B1 same value twice"),
    ("boxes-differ", "B2", "3", r"The area is $\boxed{3}$. The answer is $\boxed{4}$.", NO, "B2"),
    ("boxes-differ-first-right", "B2", "12", r"So $x = \boxed{12}$ and then $y = \boxed{7}$.", NO, "B2"),
    ("box-empty-then-statement", "M1", "9", r"We write it in \boxed{}. So the answer is 9.", same(OK, "9"), "M1 an empty box states nothing"),
    ("box-overrides-statement", "B1", "6", r"The answer is 5. Checking again, $\boxed{6}$.", same(OK, "6"), "B1 a box comes before statements"),
    # ---- hedges and refusals
    ("hedge-or", "M3", "3", "So the answer is 3 or 4.", NO, "M3"),
    ("hedge-either", "M3", r"\frac12", r"The answer is either $\frac12$ or $\frac13$.", NO, "M3"),
    ("hedge-in-box", "B4", "3", r"So the answer is $\boxed{3 \text{ or } 4}$.", NO, "B4"),
    ("hedge-roots", "F2", "2", "Solving, x = 2 or x = -2.", NO, "F2"),
    ("negated", "M4", "5", "So the answer is not 5.", NO, "M4"),
    # ---- cut off
    ("cut-box", "B3", r"\frac34", r"So the answer is $\boxed{\frac{3}{", NO, "B3 the reply ends inside the box"),
    ("cut-box-root", "B3", r"2\sqrt2", r"Hence the answer is \boxed{2\sqrt", NO, "B3"),
    ("cut-statement-dollar", "M5", r"\frac34", r"So the answer is $\frac{3}{4", NO, "M5 unclosed maths"),
    ("cut-trailing-operator", "M5", "5", "So the answer is 2 +", NO, "M5 trailing operator"),
    ("overlong-loop", "M5", "12", "So the answer is $" + "1 + " * 200 + "1$.", NO, "M5 a 800-character expression is no one answer"),
    ("overlong-box", "B3", "12", r"$\boxed{" + "2^{2}+" * 120 + "1}$", NO, "B3"),
    ("cut-fallback", "F3", "7", r"We add them: $3 + 4 = 7$. Then $x = 3 +", NO, "F3 the last sentence with maths is unfinished"),
    # ---- statements
    ("statement-earlier-marker", "M2", r"\frac12", "The answer is $\\frac{1}{2}$.\nSo the final answer is:", same(OK, r"\frac12"), "M2"),
    ("statement-because", "M1", "12", "The answer is 12, because 3 times 4 is 12.", same(OK, "12"), "M1 the first expression of the statement"),
    ("statement-dollars", "M1", "12", "The answer is $12$ dollars.", same(OK, "12"), "M1 E3"),
    ("statement-last-marker", "M1", "7", "Step 1: The answer is 5.\nStep 2: So the answer is 7.", same(OK, "7"), "M1 the last statement decides"),
    ("statement-tuples", "M1", "(1,2),(3,4)", r"The answer is $(3, 4)$ and $(1, 2)$.", same(OK, "(3,4),(1,2)"), "M1 E6 a list of points"),
    ("statement-placeholder", "N1", "4", 'So the answer is X.', NO, "N1 a lone letter outside maths is prose"),
    # ---- flexible fallback
    ("fallback-last-result", "F1", "10", "First, 2 + 3 = 5. Then multiply by 2 to get 10.", flexible_only(OK, "10"), "F1"),
    ("fallback-equation", "F1", "7", r"Therefore, $x = 7$.", flexible_only(OK, "7"), "F1 E4"),
    ("fallback-wrong", "F1", "8", "The total is 3 + 4 = 7.", flexible_only(BAD, "7"), "F1 E4 last side"),
    ("fallback-list", "F1", "2,3", "The roots are 2 and 3.", flexible_only(OK, "2, 3"), "F1 E6"),
    ("fallback-numbering", "N1", "2", "Let's think step by step.\n1. Compute the sum.\n2. Check it.", NO, "N1 list numbers are not answers"),
    ("fallback-step-number", "N1", "3", "Step 3: Simplify the expression.", NO, "N1"),
    ("fallback-cut-in-prose", "F3", "31", "The line with slope $2$ and y-intercept $h$ is given by the", NO,
     "F3 the reply stops in the sentence's prose"),
    ("fallback-ends-at-answer", "F1", "7", "Therefore x = 7", flexible_only(OK, "7"), "F1 no full stop, but it ends at its answer"),
    ("fallback-name-span", "F1", "3", "So $y = 3$. This is the equation of line $AB$.", flexible_only(OK, "3"),
     "F1 letters alone name an object"),
    ("fallback-span-then-plain", "F1", "3.5", r"We compute $\frac{7}{2}$ = 3.5", flexible_only(OK, "3.5"),
     "F1 maths partly inside $..$ is one expression; a variable-free chain is its last side"),
    ("fallback-span-list", "F1", "1,2", "The roots are $1$, $2$.", flexible_only(OK, "1, 2"), "F1 E6"),
    ("fallback-ellipsis", "F1", "55", "The sum is 1 + 2 + ... + 10 = 55.", flexible_only(OK, "55"),
     "F1 an ellipsis inside an expression ends no sentence"),
    ("fallback-factorial", "F1", "5040", "We get 7! = 5040", flexible_only(OK, "5040"), "F1 a factorial is no exclamation"),
    ("fallback-plain-polynomial", "F1", "x^2+2x+1", "The result is x^2 + 2x + 1", flexible_only(OK, "x^2+2x+1"),
     "F1 letters between operators are variables"),
    ("statement-word-before-sign", "M1", "-5", "So the answer is -5.", same(OK, "-5"), "M1 'is -5': a word, then the value"),
    ("fallback-styled-name", "F1", "2", "The length is $2$. The vector $\\mathbf{a}$ is the line through the origin.",
     flexible_only(OK, "2"), "F1 a bold letter names an object"),
    ("fallback-stray-dollar", "F1", "12", "We get $x = 4\n\nThen the total is $12$.", flexible_only(OK, "12"),
     "F1 an inline $ ends at a blank line"),
    ("fallback-stray-dollar-last", "F3", "4", "Then the total is $12$.\n\nWe get $x = 4\n\n", NO,
     "F3 maths left open at the end of its paragraph"),
    # ---- nothing
    ("nothing-empty", "N1", "1", "", NO, "N1"),
    ("nothing-prose", "N1", "1", "Let's think step by step. I do not know how to solve this.", NO, "N1"),
    # ---- time limit
    ("tower-times-out", "B1", "1", rf"So the answer is $\boxed{{{TOWER}}}$.", same(BAD, TOWER),
     "T1 the comparison cannot finish: not equal, with the timeout recorded"),
    ("tower-identical", "B1", TOWER, rf"So the answer is $\boxed{{{TOWER}}}$.", same(OK, TOWER), "T1 the same text needs no evaluation"),
    # ---- long replies
    ("long-box-at-end", "L1", "7", "Let's think step by step. " + "We keep adding one to the count. " * 2500 + r"So the answer is $\boxed{7}$.",
     same(OK, "7"), "B1: 80 kB of reasoning"),
    ("long-hedge-at-end", "L1", "7", "Let's think step by step. " + "The value is $3 + 4$. " * 2000 + "So the answer is 7 or 8.",
     NO, "M3: 45 kB of reasoning"),
]


def rows() -> list[dict]:
    out = []
    for case_id, rule, gold, reply, (strict, flexible), note in CASES:
        row = {
            "id": f"written/{case_id}", "origin": "written", "source": SOURCE, "question": QUESTION,
            "gold": gold, "reply": reply,
            "expected_strict": {"verdict": strict[0], "answer": strict[1]},
            "expected_flexible": {"verdict": flexible[0], "answer": flexible[1]},
            "rule": rule, "note": note,
        }
        check_row(row, row["id"])
        out.append(row)
    return out


def main() -> None:
    made = rows()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in made), encoding="utf-8")
    print(f"{OUT}: {len(made)} written cases")


if __name__ == "__main__":
    main()
