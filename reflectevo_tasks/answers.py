"""Answer extraction and scoring, one definition for generation, training data and evaluation.

A model reply is reduced to a canonical answer of its task's answer kind, then compared with the
gold answer in the same canonical form. Three outcomes are kept apart: correct, wrong, and
no answer found (the reply has nothing we can read as an answer of that kind).

Two levels, as lm-eval has. STRICT (the HEADLINE level: every headline number and every curation
decision) reads only the final answer statement after the LAST answer marker ("the answer is",
"answer:", "final answer =", or a LaTeX `\\boxed{...}`): the rest of its sentence, or the next
non-empty line when the marker ends its line. A statement with no candidate at all (a reply that
trails off into "Answer:") passes the turn to the marker before it. FLEXIBLE also reads a reply
without any usable marker: its last sentence that names a candidate in words of its own (text read
back from the question or from our prompts names none), unless that sentence ends the reply
cut off past its candidate, or is an item of a lettered list run past the options.

Either way the statement must COMMIT to exactly one answer. A hedge ("(B) or (C)", "True or
False"), a candidate that is only ruled out ("not (C)", "we can rule out (D)"), an item of a list of
options, a list cut off mid-item, and answer statements that walk through the options in turn are
no answer (NO_ANSWER, with the reason in `refusal`), never the last candidate named.

Extraction never raises: any input string (empty, 100 kB, arbitrary unicode) gives an
`Extraction`, and every pattern runs in linear time so that a long reply cannot stall scoring.
Replies longer than `_MAX_SCAN` characters are read from their tail.
"""

from __future__ import annotations

import bisect
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

CHOICE = "choice"
TRUE_FALSE = "true_false"
YES_NO = "yes_no"
VALID_INVALID = "valid_invalid"
INTEGER = "integer"
DYCK = "dyck"
WORD_SORT = "word_sort"
FREE_TEXT = "free_text"
MATH = "math"  # competition-maths answers compared by value: reflectevo_tasks.math_answers
CODE = "code"  # a program run against the item's tests in the sandbox: reflectevo_tasks.code_scoring
KINDS = (CHOICE, TRUE_FALSE, YES_NO, VALID_INVALID, INTEGER, DYCK, WORD_SORT, FREE_TEXT, MATH, CODE)
# answer kinds whose every question has exactly two possible answers
BINARY_KINDS = (TRUE_FALSE, YES_NO, VALID_INVALID)

CORRECT, WRONG, NO_ANSWER = "correct", "wrong", "no_answer"

# Scoring levels, as lm-eval has: STRICT reads only the final answer statement after an answer
# marker; FLEXIBLE also takes the last committed candidate of a reply without one. Both refuse a
# statement that does not commit to exactly one answer. HEADLINE is the level of every headline
# number and every curation decision.
STRICT, FLEXIBLE = "strict", "flexible"
LEVELS = (STRICT, FLEXIBLE)
HEADLINE = STRICT
# Bumped whenever a change can alter a verdict, at either level: results record it, and rows scored
# by different versions are never compared.
# 1: up to 2026-12-01 (the last candidate anywhere counted); 2: answers must commit, two levels;
# 3: the flexible fallback credits no echo of the question or of our prompts, no sentence cut off
#    at the reply's end, no lettered list that runs past the options (strict unchanged).
SCORING_VERSION = 3
# Bumped only when a STRICT verdict can change. Stored work is gated by the strict verdict alone
# (which trial-1 answers a generation run reflects on, which docs an evaluation resume folder
# retries), so a folder written under the same GATE_VERSION resumes: a flexible-only change must not
# strand a running generation. 2: since SCORING_VERSION 2 (strict unchanged by version 3).
GATE_VERSION = 2

# Replies are read from a bounded tail (answers live at the end); all patterns below are linear.
_MAX_SCAN = 250_000
_MAX_DIGITS = 30  # longer digit runs are not answers (and int() refuses very long ones)
_MARKER = re.compile(
    r"\b(?:final\s+answer|answer)\s*(?:(?:is|was|would\s+be|should\s+be|will\s+be)\b|:|=)\s*[:=]?"
    # a heading line that holds nothing but "Answer" / "Final answer" ends its line
    r"|^[ \t#>]*(?:final[ \t]+)?answer[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_OPTION_LINE = re.compile(r"^\s*\(([A-Za-z])\)\s*(.*?)\s*$", re.MULTILINE)
_PAREN_LETTER = re.compile(r"\(\s*([A-Za-z])\s*\)")
# a letter at the very start of a segment: "B", "B.", "B)", "(B)", "option B", "'b'"
_LEADING_LETTER = re.compile(r"^[^\w(]*((?:option|choice|letter)\s+)?(?:(\()\s*)?([A-Za-z])(\s*\))?(?=$|\W)",
                             re.IGNORECASE)
# a capital letter standing alone inside a marker segment ("the answer is therefore B."); A and I
# are English words, so they count only in the label forms above
_LONE_CAPITAL = re.compile(r"(?<![\w'&.-])([B-HJ-Z])(?![\w'&-]|\.\w)")
_LABEL_LINE = re.compile(r"[^\w(]*(?:(?:option|choice|letter)\s+)?(?:\(\s*)?([A-Za-z])(?:\s*\))?\W*", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(-|minus\s+|negative\s+)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w|\.\d)",
                     re.IGNORECASE)
_BRACKETS = set("()[]{}<>")
_BRACKET_RUN = re.compile(r"[()\[\]{}<>](?:[\s()\[\]{}<>]*[()\[\]{}<>])?")
_PAREN_GROUP = re.compile(r"\(([^()\[\]{}<>]*)\)")


@dataclass(frozen=True)
class AnswerSpec:
    """What kind of answer a question expects, plus what extraction may use from the question."""

    kind: str
    options: tuple[tuple[str, str], ...] = ()  # (letter, text) for multiple choice
    vocabulary: tuple[str, ...] = ()  # the words to sort, for word sorting
    # the question as shown to the model: the flexible fallback does not credit text copied from it
    # (empty: nothing is known to be copied)
    question: str = field(default="", repr=False)
    # code: the assert statements a program must pass, and the code run before them
    tests: tuple[str, ...] = ()
    setup: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown answer kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def two_answers(self) -> bool:
        """Exactly two possible answers: there the verdict "incorrect" on a readable answer names the
        gold, and a retry can be right by elimination rather than by reflection."""
        return self.kind in BINARY_KINDS or (self.kind == CHOICE and len(self.options) == 2)


@dataclass(frozen=True)
class Extraction:
    answer: str | None  # canonical form, or None when the reply commits to no answer
    method: str  # "marker", "fallback" or "none": where the answer (or the refusal) was read
    refusal: str | None = None  # why a statement naming candidates is no answer (HEDGE, NEGATED, ...)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # CORRECT, WRONG or NO_ANSWER
    extracted: str | None
    gold: str
    method: str
    f1: float = field(default=0.0)
    level: str = STRICT
    refusal: str | None = None
    note: str | None = None  # why a comparison was undecided (math: the equivalence check timed out)
    # what the environment tells a second attempt beyond the verdict (code: the first failing test
    # and its error); None: the verdict alone
    feedback: str | None = None

    @property
    def correct(self) -> bool:
        return self.outcome == CORRECT


# ---------------------------------------------------------------- text normalisation

_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2212": "-", "\u2010": "-", "\u00a0": " ",
})
# zero-width and bidirectional format characters: invisible, but they split tokens
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_LATEX_WRAP = re.compile(r"\\(?:boxed|text|textbf|textit|textrm|mathrm|mathbf|mbox)[ \t]*\{([^{}\n]*)\}")
_BOXED = re.compile(r"\\boxed[ \t]*\{([^{}\n]*)\}")
_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _unwrap_latex(text: str, boxed_as_marker: bool = False) -> str:
    for _ in range(3):  # nested wrappers, innermost first
        if boxed_as_marker:
            inner = _LATEX_WRAP.sub(lambda m: m.group(0) if m.group(0).startswith("\\boxed") else m.group(1), text)
            inner = _BOXED.sub(lambda m: f" answer: {m.group(1)} ", inner)
        else:
            inner = _LATEX_WRAP.sub(r"\1", text)
        if inner == text:
            break
        text = inner
    return text


def clean(text: str, boxed_as_marker: bool = False) -> str:
    """Unicode-normalise and drop the markdown/LaTeX wrapping small models like to add.

    With `boxed_as_marker`, `\\boxed{X}` becomes an answer marker (" answer: X ") rather than
    plain X, so that extraction reads a boxed answer first.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _INVISIBLE.sub("", text)
    text = _unwrap_latex(text, boxed_as_marker)
    return text.replace("**", "").replace("__", "").replace("`", "").replace("$", "")


def normalize_text(text: str) -> str:
    """Lower-case, no punctuation, no articles, single spaces: the SQuAD-style normal form."""
    text = clean(text).casefold().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_text(prediction).split(), normalize_text(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------- question parsing

def parse_options(question: str) -> tuple[tuple[str, str], ...]:
    """The `(A) text` option lines of a question, in BBH's `Options:` style."""
    tail = question.split("Options:", 1)[1] if "Options:" in question else question
    return tuple((m.group(1).upper(), m.group(2)) for m in _OPTION_LINE.finditer(tail))


def parse_sort_vocabulary(question: str) -> tuple[str, ...]:
    tail = question.split("List:", 1)[1] if "List:" in question else ""
    return tuple(tail.split())


# ---------------------------------------------------------------- candidates per kind
# Each finder returns candidates in reading order as canonical strings.

def _letters(spec: AnswerSpec) -> set[str]:
    return {letter for letter, _ in spec.options} or set(string.ascii_uppercase[:18])


def _leading_letter(segment: str, letters: set[str]) -> tuple[int, str] | None:
    """A letter label at the start of `segment`, unless it is the word "A"/"I" or an article."""
    m = _LEADING_LETTER.match(segment)
    if not m:
        return None
    prefixed, raw = m.group(1), m.group(3)
    labelled = bool(prefixed or m.group(2) or m.group(4))
    rest = segment[m.end():]
    if raw.upper() not in letters:
        return None
    if re.match(r"'[^\W\d_]", rest):  # "A's", "I'm"
        return None
    if not labelled and raw.upper() in "AI" and re.match(r"\s+[^\W\d_]", rest):
        return None  # "A heptagon has...", "I think...", "a kite"
    return m.start(3), f"({raw.upper()})"


def _as_number(text: str) -> str | None:
    """'3', 'three', 'twenty-one' -> the integer's text; None unless all of `text` is one number."""
    text = text.strip().rstrip(".").strip()
    if len(text) > 80:
        return None
    m = _NUMBER.fullmatch(text)
    if m:
        return _number_text(bool(m.group(1)), m.group(2), m.group(3))
    m = _NUMBER_WORD.fullmatch(text)
    return _word_number(m, text) if m else None


@lru_cache(maxsize=4096)
def _option_forms(options: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str | None], ...]:
    """(letter, normalised text, number or None) per option; questions are scored many times."""
    return tuple((letter, normalize_text(text), _as_number(clean(text))) for letter, text in options)


def _option_text_letter(segment: str, spec: AnswerSpec, prefix_ok: bool) -> str | None:
    """The option whose text is the segment (or, with prefix_ok, starts it); longest wins.
    A number matches an option that is the same number in words ("3" and "three")."""
    norm_segment = normalize_text(segment)
    forms = _option_forms(spec.options)
    best = None
    for letter, opt, _ in forms:
        if opt and (norm_segment == opt or (prefix_ok and norm_segment.startswith(opt + " "))):
            if best is None or len(opt) > best[0]:
                best = (len(opt), letter)
    if best is None:
        number = _as_number(segment)
        if number is not None:
            best = next(((0, letter) for letter, _, value in forms if value == number), None)
    return f"({best[1]})" if best else None


# Negations: "not plausible" -> no, "not valid" -> invalid; "isn't", "is not deductively valid" too.
_NEGATION = r"(?:not|isn't|is\s+not|wasn't|was\s+not)\s+(?:(?:very|really|deductively|logically)\s+)?"
_WORD_PATTERNS = {
    TRUE_FALSE: re.compile(r"\b(true|false)\b", re.IGNORECASE),
    VALID_INVALID: re.compile(rf"\b(invalid|{_NEGATION}valid|valid)\b", re.IGNORECASE),
    YES_NO: re.compile(rf"\b(yes|no|{_NEGATION}plausible|implausible|plausible)\b", re.IGNORECASE),
}
_WORD_CANON = {TRUE_FALSE: {"true": "True", "false": "False"},
               YES_NO: {"yes": "Yes", "no": "No"},
               VALID_INVALID: {"valid": "valid", "invalid": "invalid"}}


def _word_value(kind: str, word: str) -> str:
    w = " ".join(word.lower().split())
    negated = w.startswith(("not ", "isn't ", "is not ", "wasn't ", "was not "))
    if kind == TRUE_FALSE:
        return _WORD_CANON[kind][w]
    if kind == YES_NO:
        if w in ("yes", "no"):
            return _WORD_CANON[kind][w]
        return "No" if negated or w == "implausible" else "Yes"
    return "invalid" if negated or w == "invalid" else "valid"


def _word_candidates(segment: str, kind: str) -> list[str]:
    return [_word_value(kind, m.group(1)) for m in _WORD_PATTERNS[kind].finditer(segment)]


_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}
_ONE_WORD = "(?:" + "|".join(sorted(list(_UNITS) + list(_TENS) + list(_SCALES), key=len, reverse=True)) + r")\b"
_NUMBER_WORD = re.compile(  # the lookahead lets the engine skip most positions quickly
    rf"\b(?=[ztfsenhmo])(?:(minus|negative)\s+)?({_ONE_WORD}(?:[\s-]+(?:and[\s-]+)?{_ONE_WORD})*)", re.IGNORECASE)
_PRONOUN_ONE = re.compile(r"\b(?:the|this|that|which|each|every|any|no)\s+$", re.IGNORECASE)
_MAX_WORD_VALUE = 10**15


def _words_to_int(words: str) -> int | None:
    total, current, seen = 0, 0, False
    for w in re.split(r"[\s-]+", words.lower().strip()):
        if w in ("", "and"):
            continue
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        elif w in _SCALES:
            total += max(current, 1) * _SCALES[w]
            current = 0
        else:
            return None
        if total + current > _MAX_WORD_VALUE:
            return None
        seen = True
    return total + current if seen else None


def _number_text(sign: bool, digits: str, fraction: str | None) -> str | None:
    digits = digits.replace(",", "")
    if len(digits) > _MAX_DIGITS or (fraction and len(fraction) > _MAX_DIGITS):
        return None
    value = int(digits)
    frac = "".join(str(unicodedata.digit(c)) for c in fraction[1:]).rstrip("0") if fraction else ""
    if frac:
        return f"{'-' if sign else ''}{value}.{frac}"
    return str(-value if sign else value)


def _digit_numbers(segment: str) -> list[re.Match]:
    return list(_NUMBER.finditer(segment))


def _word_number(m: re.Match, segment: str) -> str | None:
    if m.group(2).lower() == "one" and not m.group(1) and _PRONOUN_ONE.search(segment, max(0, m.start() - 8), m.start()):
        return None  # "the one with...", a pronoun
    value = _words_to_int(m.group(2))
    return None if value is None else str(-value if m.group(1) else value)


def _integer_candidates(segment: str, words: bool | None = None) -> list[str]:
    """Numbers in reading order; numbers written in words count only where there are no digits
    (or always, with words=True)."""
    found: list[tuple[int, str]] = []
    for m in _digit_numbers(segment):
        text = _number_text(bool(m.group(1)), m.group(2), m.group(3))
        if text is not None:
            found.append((m.start(), text))
    if words or (words is None and not found):
        for m in _NUMBER_WORD.finditer(segment):
            text = _word_number(m, segment)
            if text is not None:
                found.append((m.start(), text))
    found.sort(key=lambda x: x[0])
    return [c for _, c in found]


def _dyck_runs(segment: str) -> list[re.Match]:
    # a parenthesised remark "(closing the two brackets)" is prose, not part of the sequence
    if "(" in segment:
        segment = _PAREN_GROUP.sub(lambda m: " " if any(c.isalpha() for c in m.group(1)) else m.group(0), segment)
    return list(_BRACKET_RUN.finditer(segment))


def _dyck_text(m: re.Match) -> str:
    return " ".join(c for c in m.group(0) if c in _BRACKETS)


_LIST_ITEM_PREFIX = re.compile(r"^\s*(?:[-*+\u2022\u00b7]|\d+[.)]|\(\d+\))\s+")
_CONNECTORS = {"and", "&"}


def _sort_words(line: str) -> list[str]:
    line = _LIST_ITEM_PREFIX.sub("", line).casefold()
    words = (w.strip(string.punctuation) for w in re.split(r"[\s,;]+", line))
    return [w for w in words if w]


def _sort_blocks(text: str) -> list[list[str]]:
    """Word lists in reading order: a line with several words is a block; consecutive lines of
    one word each (a bulleted or numbered list) form one block."""
    blocks: list[list[str]] = []
    in_list = False
    for line in text.split("\n"):
        if not line or line.isspace():
            continue
        words = _sort_words(line)
        if not words:
            continue
        if len(words) == 1:
            if in_list:
                blocks[-1].extend(words)
            else:
                blocks.append(list(words))
                in_list = True
        else:
            blocks.append(words)
            in_list = False
    return blocks


def _sorted_answer(words: list[str], vocab: set[str]) -> str | None:
    """The block read as an answer: from its first to its last word of the list (connectors
    dropped, other intruders kept, so they make the answer wrong), when it is mostly list words
    and covers at least half of the list."""
    if not vocab:
        return " ".join(words) or None
    index = [i for i, w in enumerate(words) if w in vocab]
    if not index:
        return None
    span = [w for w in words[index[0]:index[-1] + 1] if w in vocab or w not in _CONNECTORS]
    in_vocab = sum(1 for w in span if w in vocab)
    if in_vocab >= max(1, len(vocab) // 2) and in_vocab >= 0.8 * len(span):
        return " ".join(span)
    return None


def _word_sort_candidates(segment: str, spec: AnswerSpec, whole_reply: bool) -> list[str]:
    vocab = {w.casefold() for w in spec.vocabulary}
    blocks = _sort_blocks(segment)
    if not whole_reply:
        blocks = blocks[:1]  # the committed answer is the first block after the marker
    elif not vocab:
        return []
    out = []
    for block in blocks:
        answer = _sorted_answer(block, vocab)
        if answer:
            out.append(answer)
    return out


def _last_line_answer(text: str) -> str:
    """The fallback's free-text answer: the last non-empty line, less any marker it holds (a
    marker line whose segment had nothing usable must not become the answer itself)."""
    stripped = text.rstrip()
    line = stripped[stripped.rfind("\n") + 1:]
    rest = _after_last_marker(line)
    return line if rest is None else rest


def _after_last_marker(text: str) -> str | None:
    last = None
    for last in _MARKER.finditer(text):
        pass
    return None if last is None else text[last.end():]


_NON_SPACE = re.compile(r"\S")
_MAX_SEGMENT = 2_000  # an answer sits within this many characters of its marker
_MAX_MARKERS = 50  # how many markers, from the last one back, may be tried


def _first_line(text: str, pos: int = 0) -> str:
    """The first non-empty line of text[pos:], at most _MAX_SEGMENT characters of it.

    The committed answer is on the marker's line; a reply that breaks the line right after the
    marker ("Answer:\n(B)") keeps the next non-empty line."""
    m = _NON_SPACE.search(text, pos)
    if not m:
        return ""
    end = text.find("\n", m.start())
    end = len(text) if end < 0 else end
    return text[m.start():min(end, m.start() + _MAX_SEGMENT)].rstrip()


# ---------------------------------------------------------------- commitment
# A reply is credited only when it commits to exactly one answer (the labelling rules of
# tests/data/scoring_corpus/RULES.md, which this implements). A mention is one place where a unit
# of the reply (a sentence, or a line) names a candidate; a mention is ruled out when the reply
# negates it ("not (C)", "rule out (D)", "(C) is wrong"). The deciding unit (the last marker's
# statement; in the flexible fallback the last unit that names a candidate) commits when its
# mentions that are not ruled out name exactly one distinct answer, and it is not one item of a
# list. Otherwise it refuses: several answers (a hedge "(B) or (C)", "True or False", an equation),
# only ruled-out ones, an item of an enumeration, or a list cut off mid-item.

HEDGE, NEGATED, ENUMERATION, CUT_OFF = "hedge", "negated", "enumeration", "cut_off"

# negation cues just before a mention, in its own clause: "not (C)", "definitely not C",
# "rule out (D)", "isn't option B", "other than (A)"
_NEG_BEFORE = re.compile(
    r"(?:\b(?:not|never|neither|nor|except|excluding|besides|no\s+longer|rule[sd]?\s+out|ruling\s+out"
    r"|eliminat(?:e|es|ed|ing)|exclud(?:e|es|ed)|other\s+than|rather\s+than|instead\s+of|apart\s+from)|n't)"
    r"\s*(?:(?:the|an?|option|choice|answer|letter|definitely|certainly|necessarily|just|simply|be|is|it|that|this)\s+){0,3}"
    r"[\"'(\[]?\s*$", re.IGNORECASE)
# ... and just after it: "(C) is wrong", "(D) can be ruled out", "(A) is not correct"
_NEG_AFTER = re.compile(  # used with match(text, pos): anchored at the mention's end
    r"[\s\"')\].]*(?:(?:is|are|was|were|seems?|looks?|would\s+be|must\s+be|appears?\s+to\s+be)\s+)?"
    r"(?:(?:definitely|clearly|also|therefore|thus|obviously)\s+)?"
    r"(?:not\s+(?:correct|right|the\s+(?:correct\s+|right\s+)?answer|it\b|possible|an?\s+option)|wrong|incorrect|impossible"
    r"|ruled\s+out|eliminated|excluded|out\b"
    r"|(?:can|could|should|must|may)\s+be\s+(?:ruled\s+out|eliminated|excluded|discarded))", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:!?\n]")
# a sentence ends at . ! ? (with any closing quote or bracket) before white space or the end
_SENTENCE_STOP = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
# a full stop after these ends no sentence ("Godzilla vs. Kong", "Dr. Strangelove", "e.g. this")
_ABBREVIATION = re.compile(r"\b(?:vs|mr|mrs|ms|dr|st|jr|sr|inc|ltd|co|vol|etc|e\.g|i\.e|approx|mt|ft)\.$",
                           re.IGNORECASE)


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    answer: str


@dataclass(frozen=True)
class _Reading:
    """What one unit of text commits to: an answer, a refusal, or nothing at all."""

    answer: str | None = None
    refusal: str | None = None

    @property
    def empty(self) -> bool:
        return self.answer is None and self.refusal is None


_NOTHING = _Reading()


def _ruled_out(text: str, m: _Mention) -> bool:
    before = text[max(0, m.start - 60):m.start]
    cut = max((x.end() for x in _CLAUSE_END.finditer(before)), default=0)
    return bool(_NEG_BEFORE.search(before[cut:]) or _NEG_AFTER.match(text, m.end, min(len(text), m.end + 60)))


def _commit(text: str, mentions: list[_Mention]) -> _Reading:
    """The one answer `mentions` (in `text`) commit to, or why they do not."""
    if not mentions:
        return _NOTHING
    kept = [m for m in mentions if not _ruled_out(text, m)]
    answers = list(dict.fromkeys(m.answer for m in kept))
    if len(answers) == 1:
        return _Reading(answer=answers[0])
    if not answers:
        return _Reading(refusal=NEGATED)
    return _Reading(refusal=HEDGE)


_LETTER_LABEL = re.compile(r"(?<![\w(])([A-Za-z])\)|\b(?:option|choice|letter)\s+\(?\s*([A-Za-z])\b\)?", re.IGNORECASE)
_DOT_LABEL = re.compile(r"[\s\-*+\u2022]*([A-Z])\.\s+\S")  # a list item "B. 12/25/1937"
_CUT_OFF_LETTER = re.compile(r"\(\s*([A-Za-z])\s*$")  # "The answer is (D" at the very end of a reply


def _choice_mentions(unit: str, spec: AnswerSpec, at_marker: bool) -> list[_Mention]:
    """Where `unit` names an option. A parenthesised capital that is no option still counts (a
    committed "(Z)" is a wrong answer, as in lm-eval). A bare letter counts after a marker, and
    elsewhere only as the whole unit; an option's text counts when no letter is named."""
    letters = _letters(spec)
    found: list[_Mention] = []
    for m in _PAREN_LETTER.finditer(unit):
        letter = m.group(1).upper()
        if letter in letters or (spec.options and m.group(1).isupper()):
            found.append(_Mention(m.start(), m.end(), f"({letter})"))
    for m in _LETTER_LABEL.finditer(unit):
        raw = m.group(1) or m.group(2)
        if raw.upper() in letters and not any(x.start <= m.start() < x.end or m.start() <= x.start < m.end()
                                              for x in found):
            if m.group(1) and raw in "aI":  # "a)" and "I)" are rarely labels in prose
                continue
            found.append(_Mention(m.start(), m.end(), f"({raw.upper()})"))
    if at_marker:
        lead = _leading_letter(unit, letters)
        if lead and not any(x.start <= lead[0] < x.end for x in found):
            found.append(_Mention(lead[0], lead[0] + 1, lead[1]))
    else:
        m = _LABEL_LINE.fullmatch(unit) or _DOT_LABEL.match(unit)
        if m and m.group(1).upper() in letters and not found:
            found.append(_Mention(m.start(1), m.end(1), f"({m.group(1).upper()})"))
    if not found and spec.options:
        hit = _option_text_letter(unit, spec, prefix_ok=at_marker)
        if hit:  # the option's text is the whole statement (or starts it): nothing outside to negate it
            found.append(_Mention(0, len(unit), hit))
    if not found and at_marker:
        for m in _LONE_CAPITAL.finditer(unit):
            if m.group(1) in letters:
                found.append(_Mention(m.start(), m.end(), f"({m.group(1)})"))
    found.sort(key=lambda x: x.start)
    return found


_ANSWER_WORD_AFTER = re.compile(r"\s*(?:[^\w\s]|$)")
# "Yes or No", "yes and no": both words name answers (a hedge)
_PAIRED_AFTER = re.compile(r"\s+(?:or|and|nor)\s+(?:yes|no)\b", re.IGNORECASE)
_PAIRED_BEFORE = re.compile(r"\b(?:or|and|nor)\s+$", re.IGNORECASE)


def _word_mentions(unit: str, kind: str) -> list[_Mention]:
    """Answer words; a bare yes / no counts only where it stands as an answer: first word of the
    unit, or before punctuation or the end ("There is no reason" names nothing)."""
    found = []
    for m in _WORD_PATTERNS[kind].finditer(unit):
        word = m.group(1).lower()
        if kind == YES_NO and word in ("yes", "no"):
            first = not re.search(r"\w", unit[:m.start()])
            paired = _PAIRED_AFTER.match(unit, m.end()) or _PAIRED_BEFORE.search(unit, max(0, m.start() - 12), m.start())
            if not (first or paired or _ANSWER_WORD_AFTER.match(unit, m.end())):
                continue
        found.append(_Mention(m.start(), m.end(), _word_value(kind, m.group(1))))
    return found


# step and list numbering: "Step 3:", and "3." / "3)" starting a line before more text
_NUMBERING_BEFORE = re.compile(r"\bstep\s*$", re.IGNORECASE)
_NUMBERING_AFTER = re.compile(r"[.)]\s+\S")


def _number_mentions(unit: str) -> list[_Mention]:
    found = []
    for m in _digit_numbers(unit):
        if _NUMBERING_BEFORE.search(unit, max(0, m.start() - 6), m.start()):
            continue
        if not unit[:m.start()].strip(" \t-*") and _NUMBERING_AFTER.match(unit, m.end()):
            continue
        text = _number_text(bool(m.group(1)), m.group(2), m.group(3))
        if text is not None:
            found.append(_Mention(m.start(), m.end(), text))
    if not found and not _digit_numbers(unit):
        for m in _NUMBER_WORD.finditer(unit):
            text = _word_number(m, unit)
            if text is not None:
                found.append(_Mention(m.start(), m.end(), text))
    return found


def _dyck_mentions(unit: str) -> list[_Mention]:
    return [_Mention(m.start(), m.end(), _dyck_text(m)) for m in _dyck_runs(unit)]


def _mentions(unit: str, spec: AnswerSpec, at_marker: bool) -> list[_Mention]:
    kind = spec.kind
    if kind == CHOICE:
        return _choice_mentions(unit, spec, at_marker)
    if kind in _WORD_PATTERNS:
        return _word_mentions(unit, kind)
    if kind == INTEGER:
        return _number_mentions(unit)
    if kind == DYCK:
        return _dyck_mentions(unit)
    return []


def _read_unit(unit: str, spec: AnswerSpec, gold_is_text: bool, at_marker: bool) -> _Reading:
    """What one unit (a marker's statement, or the fallback's last unit naming a candidate)
    commits to."""
    kind = spec.kind
    if kind == CHOICE and gold_is_text:
        cands = _text_gold_candidates(unit, spec, whole_reply=not at_marker)
        return _Reading(answer=cands[0]) if cands else _NOTHING
    if kind == WORD_SORT:
        cands = _word_sort_candidates(unit, spec, whole_reply=not at_marker)
        return _Reading(answer=cands[0 if at_marker else -1]) if cands else _NOTHING
    if kind == FREE_TEXT:
        norm = normalize_text(unit if at_marker else _last_line_answer(unit))
        return _Reading(answer=norm) if norm else _NOTHING
    return _commit(unit, _mentions(unit, spec, at_marker))


_LEADING_LABEL = re.compile(r"^[^\w(]*(?:(?:option|choice|letter)\s+)?[A-Za-z]\s*[.):]\s+", re.IGNORECASE)
# a reply that stops inside a list item's label: "... Option (", "- (", "(B", "Option"
_CUT_OFF_TAIL = re.compile(r"(?:\(\s*[A-Za-z]?|\b(?:option|choice)\s*\(?\s*[A-Za-z]?)\s*$", re.IGNORECASE)
_LABEL_LED = re.compile(r"^[\s\-*+\u2022\u00b7>#\d.]*(?:(?:option|choice)\s+)?(?:\(\s*([A-Za-z])\s*\)|([A-Z])(?:\)|\.(?=\s)))",
                        re.IGNORECASE)


def _text_gold_candidates(segment: str, spec: AnswerSpec, whole_reply: bool) -> list[str]:
    """For the few BBH items whose gold is text rather than a letter (their options split the
    gold at its commas): the text of the committed segment, labels removed; a bare letter when
    there is no text. In the fallback the committed segment is the last non-empty line."""
    part = _last_line_answer(segment) if whole_reply else segment
    text = normalize_text(_PAREN_LETTER.sub(" ", _LEADING_LABEL.sub("", part)))
    if text:
        return [text]
    reading = _commit(segment, _choice_mentions(segment, spec, at_marker=not whole_reply))
    return [reading.answer] if reading.answer else []


def _label(unit: str) -> str | None:
    m = _LABEL_LED.match(unit)
    return None if not m else (m.group(1) or m.group(2)).upper()


_ITEM_NUMBER = re.compile(r"[\s\-*+\u2022]*(?:\d{1,3}|[A-Za-z])")  # "3." or "B." opening a list item


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentences of text[start:end] (one line) as spans. The full stop of an abbreviation, or
    of a list item's number or letter ("3. …", "B. …"), ends no sentence."""
    spans, s = [], start
    for m in _SENTENCE_STOP.finditer(text, start, end):
        if _ABBREVIATION.search(text, max(s, m.start() - 8), m.start() + 1):
            continue
        if s == start and m.group(0) == "." and _ITEM_NUMBER.fullmatch(text, start, m.start()):
            continue
        spans.append((s, m.end()))
        s = m.end()
    spans.append((s, end))
    return [(a, b) for a, b in spans if not text[a:b].isspace() and a < b]


def _unit_spans(text: str, spec: AnswerSpec) -> list[tuple[int, int]]:
    """The reply's units (lines, each cut into sentences) as spans, in reading order; a line that
    is exactly an option's text stays whole (option texts may hold ". " or "! ")."""
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        a, b = line.span()
        if spec.options and _SENTENCE_STOP.search(text, a, b - 1) and _option_text_letter(line.group(0), spec, False):
            spans.append((a, b))
            continue
        spans += _sentence_spans(text, a, b)
    return spans


def _sentences(line: str) -> list[str]:
    return [line[a:b] for a, b in _sentence_spans(line, 0, len(line))]


# what is set aside when two units are compared for being built the same way: numbering, ordinal
# words, bullets and punctuation
_BUILD_NOISE = re.compile(
    r"\bstep\s*\d+|\d+(?:st|nd|rd|th)?\b|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth"
    r"|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth"
    r"|last|next|final)\b|[^\w\s]", re.IGNORECASE)
_MAX_LIST_LOOKBACK = 400  # units looked back through for the previous one that names a candidate


def _lead(unit: str, mention: _Mention) -> str:
    return " ".join(_BUILD_NOISE.sub(" ", unit[:mention.start].lower()).split())


def _is_list_item(text: str, spans: list[tuple[int, int]], i: int, answer: str, spec: AnswerSpec) -> bool:
    """Is unit i, which names `answer`, one item of an enumeration? It is when the unit before it
    that names a candidate names one different answer and both are built the same way (the same
    words before the candidate, numbering and ordinals set aside: "(A) is …" then "(B) is …",
    "Step 9: The answer is (A)." then "Step 10: The answer is (B)."). A different lead-in is a
    correction ("The answer is (C). So the answer is (B).")."""
    if spec.kind not in (CHOICE, TRUE_FALSE, YES_NO, VALID_INVALID, INTEGER):
        return False
    here = text[spans[i][0]:spans[i][1]]
    mine = _mentions(here, spec, at_marker=False) or _mentions(here, spec, at_marker=True)
    if not mine:
        return False
    for j in range(i - 1, max(-1, i - 1 - _MAX_LIST_LOOKBACK), -1):
        prev = text[spans[j][0]:spans[j][1]]
        theirs = _mentions(prev, spec, at_marker=False) or _mentions(prev, spec, at_marker=bool(_MARKER.search(prev)))
        if not theirs:
            continue
        named = {m.answer for m in theirs}  # named, ruled out or not: "(A) is wrong." then "(B) is right."
        return len(named) == 1 and answer not in named and _lead(here, mine[0]) == _lead(prev, theirs[0])
    return False


# ---------------------------------------------------------------- text the fallback does not credit
# Three kinds of text name a candidate without being the model's answer (RULES.md, section 2). Only
# the flexible fallback looks for them, so no strict verdict depends on them.
#
# ECHO: the candidate sits in text copied from the question or from our own prompt wording (an
# option line or the input read back, "where X is ... like (B)." repeated). A copy is a run of at
# least _ECHO_MIN tokens found in that order in one of those texts; it makes an echo when it is the
# whole unit (list numbering aside), or holds more than the candidate written as an answer (a label
# and that option's own text: "... is (B) bion iver." is an answer). An option's own line or text
# as the whole unit is an echo only when the reply goes on after it (at the end it concludes). A
# shorter run proves nothing: "(B) 12/25/1937" or "Yes" is what an answer looks like. The forms we
# ask for are never echoes of the question: dyck closing brackets, word-sort words in sorted order.
# CUT OFF: the reply's last unit names the candidate in a sentence that goes on past it and stops
# ("So, we add 24 to", "The argument is invalid because it does not follow a logical"): the token
# cap cut a statement whose end is unknown. One that stops at its candidate ("... is (B)") has said it.
# LIST RUNS ON: a lettered list ("(X) (A)\n(Y)", "Option (L)" after "Option (L) triangle is a
# polygon." with options A-K) that names a letter past the options, or stops inside an item's label
# ("Option (G) ellipse ...\n\nOption (H").

# Our prompts' own wording, piece by piece between the parts that vary (question, attempt,
# reflection, reflection instruction). prompts.py imports this module, so the wording is restated
# here; tests/test_answers.py builds every prompt with prompts.py's builders and fails when one of
# its sentences is not found in these pieces.
_PROMPT_HINTS = (
    "the letter of one option in parentheses, like (B)", "True or False", "Yes or No", "valid or invalid",
    "a single integer", "the closing brackets only, separated by spaces",
    "the words in sorted order, separated by spaces", "a short answer", "the final answer alone inside \\boxed{}",
)
_PROMPT_PIECES = tuple(
    f'{lead}Reason step by step, then end with one line of the form "So the answer is X." where X is {hint}.'
    for hint in _PROMPT_HINTS
    for lead in ("", "Your final answer is incorrect. Solve the question again. ",
                 "Review your answer. Solve the question again. ", "Use the reflection and solve the question again. ",
                 'Then solve the question again under the heading "Corrected solution:". ')
) + (
    "Let's think step by step.",
    "Your final answer is incorrect. Here is a reflection on your attempt:",
    "Review your answer. Here is a reflection on your attempt:",
    "Below is a question and an attempt to answer it. Question:",
    "Attempt:",
    "Feedback: the attempt's final answer is correct. Write a reflection on the attempt.",
    "Feedback: the attempt's final answer is incorrect. Write a reflection on the attempt.",
    "Feedback: none; the attempt may or may not be correct. Write a reflection on the attempt.",
    "Feedback: the attempt's final answer is correct. First write a reflection on the attempt.",
    "Feedback: the attempt's final answer is incorrect. First write a reflection on the attempt.",
    "Feedback: none; the attempt may or may not be correct. First write a reflection on the attempt.",
    "Structure it as a check (does each step, and the final answer, hold up? where not, and why?) followed by a "
    "plan (keep the answer if the check confirms it, otherwise what to do differently). Do not state a final answer.",
    "Structure it as a diagnosis (where and why the attempt went wrong) followed by a plan (what to do differently). "
    "Do not state a final answer.",
    "Structure it as a check (does each step, and the final answer, hold up? where not, and why?) followed by a "
    "plan (keep the answer if the check confirms it, otherwise what to do differently).",
)

_ECHO_MIN = 3  # tokens in a row: fewer is what an answer looks like anyway
_GRAM_MAX = 6  # runs of up to this many tokens are looked up in a set; longer ones in the joined text
# a token: an option label "(B)", one bracket, or a word (punctuation at its edges set aside)
_TOKEN = re.compile(r"\(\s*[A-Za-z]\s*\)|[()\[\]{}<>]|[^\s()\[\]{}<>]+")
_TOKEN_EDGE = "\"'.,;:!?*`_"
_NUMBERING_LEAD = re.compile(r"^[\s\-*+\u2022\u00b7>#]*(?:step\s*\d+\s*[:.)]?\s*|\d{1,3}[.)]\s+)?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")
_GOES_ON = re.compile(r"[^\s\"')\]}>]")  # after a candidate: anything but closing quotes and brackets
_CLOSERS = set(")]}>")


@dataclass(frozen=True)
class _Token:
    word: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN.finditer(text):
        s, e = m.start(), m.end()
        if text[s] == "(" and e - s > 1:  # an option label
            out.append(_Token(f"({text[s + 1:e - 1].strip().casefold()})", s, e))
            continue
        while s < e and text[s] in _TOKEN_EDGE:
            s += 1
        while e > s and text[e - 1] in _TOKEN_EDGE:
            e -= 1
        word = text[s:e].casefold()
        if word in _BRACKETS or any(c.isalnum() for c in word):  # dashes, bullets and operators are layout
            out.append(_Token(word, s, e))
    return out


@dataclass(frozen=True)
class _Source:
    """Texts a reply may copy: their runs of up to _GRAM_MAX tokens, and the tokens themselves
    joined by NUL (each text between NULs) to confirm a longer run."""

    grams: frozenset
    joined: str


def _source(texts) -> _Source:
    grams, joined = set(), []
    for text in texts:
        words = [t.word for t in _tokens(clean(text))]
        for n in range(_ECHO_MIN, _GRAM_MAX + 1):
            grams.update(tuple(words[k:k + n]) for k in range(len(words) - n + 1))
        joined.append("\0".join(words))
    return _Source(frozenset(grams), "\0" + "\0\0".join(joined) + "\0")


_NO_SOURCE = _Source(frozenset(), "")


@lru_cache(maxsize=1024)
def _question_grams(question: str, without: str | None = None) -> _Source:
    """The runs of the question's text; `without` a letter: with that option's own line left out."""
    if without is not None:
        question = "\n".join(line for line in question.split("\n")
                             if not re.match(rf"\s*\(\s*{re.escape(without)}\s*\)", line, re.IGNORECASE))
    return _source((question,))


@lru_cache(maxsize=1)
def _prompt_grams() -> _Source:
    return _source(_PROMPT_PIECES)


def _copied(words: list[str], source: _Source) -> bool:
    """Are these words (at least _ECHO_MIN) a run of the source's text, in that order?"""
    n = len(words)
    if n < _ECHO_MIN:
        return False
    if n <= _GRAM_MAX:
        return tuple(words) in source.grams
    # a missing window settles most longer runs at once; the rest are confirmed as one run
    if not all(tuple(words[k:k + _GRAM_MAX]) in source.grams for k in range(0, n - _GRAM_MAX + 1, _GRAM_MAX)):
        return False
    return "\0" + "\0".join(words) + "\0" in source.joined


@lru_cache(maxsize=4096)
def _option_words(options: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, ...]]:
    return {f"({letter})": tuple(t.word for t in _tokens(clean(text))) for letter, text in options}


def _answer_form(toks: list[_Token], i: int, j: int, mention: _Mention, spec: AnswerSpec) -> tuple[int, int] | None:
    """The tokens [i, j) of a mention widened to the candidate as an answer is written: a label
    with (the start of) its own option text after it. None: a dyck run of closing brackets, never
    an echo."""
    if spec.kind == DYCK:
        return None if set(mention.answer.replace(" ", "")) <= _CLOSERS else (i, i)
    own = _option_words(spec.options).get(mention.answer, ()) if spec.kind == CHOICE else ()
    k = 0
    while k < len(own) and j + k < len(toks) and toks[j + k].word == own[k]:
        k += 1
    return i, j + k


def _mention_spans(toks: list[_Token], mentions: list[_Mention]) -> list[tuple[int, int] | None]:
    """For each mention the tokens [i, j) that overlap it (tokens are in order and do not overlap);
    None for a mention that holds no token."""
    ends, starts = [t.end for t in toks], [t.start for t in toks]
    spans = ((bisect.bisect_right(ends, m.start), bisect.bisect_left(starts, m.end)) for m in mentions)
    return [(i, j) if i < j else None for i, j in spans]


def _echo(unit: str, mentions: list[_Mention], spec: AnswerSpec, last: bool) -> bool:
    """Does every candidate the unit names sit in words copied from the question or our prompts?
    `last`: the unit ends the reply (an option restated at the very end is read as a conclusion)."""
    toks = _tokens(unit)
    spans = _mention_spans(toks, mentions)
    if not mentions or None in spans:
        return False
    forms = [_answer_form(toks, i, j, m, spec) for (i, j), m in zip(spans, mentions)]
    # dyck closing brackets: the question's input may hold the very answer, so only our prompts'
    # wording (which holds brackets too) can make them an echo
    answer_shaped = None in forms
    forms = [span if form is None else form for form, span in zip(forms, spans)]
    prompt = _prompt_grams()
    question = _question_grams(spec.question) if spec.question and not answer_shaped else _NO_SOURCE
    # the whole unit copied: from the question's text beyond the candidate's own option line, or
    # from our prompts; the option's own line (or text) alone only when the reply goes on after it
    lead = _NUMBERING_LEAD.match(unit).end()
    whole = [t.word for t in toks if t.start >= lead]
    answers = {m.answer for m in mentions}
    own = next(iter(answers)).strip("()") if spec.kind == CHOICE and len(answers) == 1 else None
    beyond_own = _question_grams(spec.question, own) if own and question is not _NO_SOURCE else question
    if _copied(whole, prompt) or _copied(whole, beyond_own) or (not last and _copied(whole, question)):
        return True
    # or each candidate inside a copied run that reaches past the candidate as an answer is written;
    # the shortest such runs start at most two tokens before it and end at most two after it or
    # after its answer form
    for (i, j), (fi, fj) in zip(spans, forms):
        found = False
        for a in range(max(0, i - 2), i + 1):
            for b in sorted({j, j + 1, j + 2, fj + 1, fj + 2}):
                if b < j or b > len(toks) or b - a < _ECHO_MIN or (fi <= a and b <= fj):
                    continue
                words = [t.word for t in toks[a:b]]
                if _copied(words, question) or _copied(words, prompt):
                    found = True
                    break
            if found:
                break
        if not found:
            return False
    return True


def _echoed_block(answer: str, spec: AnswerSpec) -> bool:
    """A word-sort block that is the question's list read back (not in sorted order)."""
    words = answer.split()
    if len(words) < _ECHO_MIN or words == sorted(words):
        return False
    return _copied(words, _prompt_grams()) or bool(spec.question) and _copied(words, _question_grams(spec.question))


def _cut_off_sentence(unit: str, mentions: list[_Mention], spec: AnswerSpec) -> bool:
    """Is the unit (the reply's last) a sentence that goes on past its candidate and stops before
    its end ("So, we add 24 to", "... is (B) because it")? One that stops right at its candidate,
    as written for an answer ("(B)", "(B) 12/25/1937", "the sentence is plausible"), has said what
    it names: a reply may end without a full stop."""
    if not mentions or _SENTENCE_END.search(unit):
        return False
    last = max(mentions, key=lambda m: m.end)
    end = last.end
    toks = _tokens(unit)
    (span,) = _mention_spans(toks, [last])
    if span is not None:
        form = _answer_form(toks, *span, last, spec)
        if form is not None and form[1] > span[1]:
            end = max(end, toks[form[1] - 1].end)
    return bool(_GOES_ON.search(unit, end))


def _list_runs_on(text: str, spans: list[tuple[int, int]], i: int, answer: str | None, spec: AnswerSpec) -> str | None:
    """ENUMERATION when unit i is an item of a lettered list that names a letter past the options,
    CUT_OFF when it stops inside its label ("Option (H"); None otherwise. A list: unit i and the
    candidate-naming unit before it both start with a label."""
    if spec.kind != CHOICE or not spec.options:
        return None
    unit = text[spans[i][0]:spans[i][1]]
    cut = bool(_CUT_OFF_LETTER.search(unit))
    past = (answer is not None and answer.strip("()") not in {letter for letter, _ in spec.options}
            and _label(unit) is not None)
    if not (cut or past):
        return None
    for j in range(i - 1, max(-1, i - 1 - _MAX_LIST_LOOKBACK), -1):
        prev = text[spans[j][0]:spans[j][1]]
        if _mentions(prev, spec, at_marker=False):
            return (CUT_OFF if cut else ENUMERATION) if _label(prev) else None
    return None


def _fallback(text: str, spec: AnswerSpec, gold_is_text: bool) -> _Reading:
    """The flexible level without a marker: the last unit that names a candidate in words of its
    own (not an echo) must commit to exactly one, must not be an item of a list (nor may the reply
    stop inside a list, or run its list past the options), and, as the reply's last unit, must not
    be a sentence cut off before its end."""
    kind = spec.kind
    if kind == WORD_SORT:
        cands = [c for c in _word_sort_candidates(text, spec, whole_reply=True) if not _echoed_block(c, spec)]
        return _Reading(answer=cands[-1]) if cands else _NOTHING
    if kind == FREE_TEXT or (kind == CHOICE and gold_is_text):
        return _read_unit(text, spec, gold_is_text, at_marker=False)
    spans = _unit_spans(text, spec)
    echoed = set()  # a reply that loops repeats its units: each is judged once
    for i in range(len(spans) - 1, -1, -1):
        unit = text[spans[i][0]:spans[i][1]]
        if unit in echoed:
            continue
        reading = _read_unit(unit, spec, gold_is_text, at_marker=False)
        if reading.empty:
            continue
        mentions = _mentions(unit, spec, at_marker=False)
        if _echo(unit, mentions, spec, last=i == len(spans) - 1):
            # an echo at the reply's end (judged most leniently) is an echo anywhere before it
            echoed.add(unit)
            continue  # copied words name no candidate of the model's own
        if kind == CHOICE and _label(unit) and _CUT_OFF_TAIL.search(text[-200:]):
            return _Reading(refusal=CUT_OFF)
        runs_on = _list_runs_on(text, spans, i, reading.answer, spec)
        if runs_on:
            return _Reading(refusal=runs_on)
        if reading.answer is not None and _is_list_item(text, spans, i, reading.answer, spec):
            return _Reading(refusal=ENUMERATION)
        if i == len(spans) - 1 and _cut_off_sentence(unit, mentions, spec):
            return _Reading(refusal=CUT_OFF)
        return reading
    return _NOTHING


def _marker_statement(text: str, end: int, spec: AnswerSpec) -> tuple[str, bool]:
    """The committed statement after a marker ending at `end`: the rest of its sentence, or the
    next non-empty line when the marker ends its line (a word-sorting list: the lines from there).
    Second value: the marker is followed by a list of options rather than one answer."""
    if spec.kind == WORD_SORT:
        return text[end:end + 10 * _MAX_SEGMENT], False
    segment = _first_line(text, end)
    listed = False
    if spec.kind == CHOICE and segment and _label(segment):
        # "Answer:\n(A) ...\n(B) ...": the statement is the first item of a list of options
        following = [ln for ln in text[end:end + 4 * _MAX_SEGMENT].split("\n") if ln.strip()][1:2]
        listed = bool(following) and (_label(following[0]) or _label(segment)) != _label(segment)
    if spec.kind in (CHOICE, TRUE_FALSE, YES_NO, VALID_INVALID, INTEGER, DYCK) and segment:
        whole = segment
        segment = _sentences(segment)[0] if _sentences(segment) else segment
        if (spec.kind == CHOICE and spec.options and segment != whole
                and not _choice_mentions(segment, spec, at_marker=True)
                and _option_text_letter(whole, spec, prefix_ok=True)):
            # an option text with a full stop inside ("Godzilla as. Kong"): the whole line names it
            segment = whole
        if spec.kind == CHOICE and text.rstrip().endswith(whole.rstrip()):
            cut = _CUT_OFF_LETTER.search(segment)
            if cut and not _choice_mentions(segment, spec, at_marker=True):
                segment = segment[:cut.start()] + f"({cut.group(1)})"
    return segment, listed


def _unit_at(spans: list[tuple[int, int]], pos: int) -> int | None:
    for i, (a, b) in enumerate(spans):
        if a <= pos < b:
            return i
    return None


def _extract(reply: str, spec: AnswerSpec, gold_is_text: bool = False, level: str = None) -> Extraction:
    level = HEADLINE if level is None else level
    if spec.kind == MATH:
        from reflectevo_tasks import math_answers

        return math_answers.extract(reply, level)
    if spec.kind == CODE:
        from reflectevo_tasks import code_scoring

        return code_scoring.extract(reply)
    text = reply if isinstance(reply, str) else str(reply or "")
    text = clean(text[-_MAX_SCAN:], boxed_as_marker=True)
    # the last marker whose statement names a candidate: a reply that ends with an empty "Answer:"
    # (a model starting the next question, say) keeps the answer it committed to before; a
    # statement that names candidates without committing is a refusal at both levels
    markers = [m for m in _MARKER.finditer(text)]
    for marker in reversed(markers[-_MAX_MARKERS:]):
        segment, listed = _marker_statement(text, marker.end(), spec)
        if listed:
            return Extraction(None, "marker", ENUMERATION)
        reading = _read_unit(segment, spec, gold_is_text, at_marker=True) if segment else _NOTHING
        if reading.empty:
            continue
        if reading.answer is not None and not gold_is_text:
            spans = _unit_spans(text, spec)
            i = _unit_at(spans, marker.start())
            if i is not None and _is_list_item(text, spans, i, reading.answer, spec):
                return Extraction(None, "marker", ENUMERATION)
        return Extraction(reading.answer, "marker", reading.refusal)
    if level == STRICT:
        return Extraction(None, "none")
    reading = _fallback(text, spec, gold_is_text)
    if reading.empty:
        return Extraction(None, "none")
    return Extraction(reading.answer, "fallback", reading.refusal)


def extract(reply: str, spec: AnswerSpec, gold_is_text: bool = False, level: str | None = None) -> Extraction:
    """Read the answer of kind `spec.kind` from a model reply at `level` (default: HEADLINE).
    Never raises."""
    level = _check_level(level)
    try:
        return _extract(reply, spec, gold_is_text, level)
    except Exception:  # pragma: no cover - a scorer must not take a whole run down
        return Extraction(None, "none")


def _check_level(level: str | None) -> str:
    if level is None:
        return HEADLINE
    if level not in LEVELS:
        raise ValueError(f"unknown scoring level {level!r}; expected one of {', '.join(LEVELS)}")
    return level


def canonical_gold(gold: str, spec: AnswerSpec) -> str:
    """The gold answer in the same canonical form extraction produces."""
    if spec.kind == MATH:
        from reflectevo_tasks import math_answers

        return math_answers.canonical_gold(gold)
    if spec.kind == CODE:  # a reference program: never compared, only recorded
        return str(gold)
    g = clean(str(gold)).strip()
    if spec.kind == CHOICE:
        m = re.fullmatch(r"\(?([A-Za-z])\)?", g)
        return f"({m.group(1).upper()})" if m else normalize_text(g)
    if spec.kind in _WORD_CANON:
        cands = _word_candidates(g, spec.kind)
        return cands[0] if cands else g
    if spec.kind == INTEGER:
        cands = _integer_candidates(g)
        return cands[0] if cands else g
    if spec.kind == DYCK:
        return " ".join(c for c in g if c in _BRACKETS)
    if spec.kind == WORD_SORT:
        return " ".join(g.casefold().split())
    return normalize_text(g)


def gold_is_text(gold: str, spec: AnswerSpec) -> bool:
    return spec.kind == CHOICE and not re.fullmatch(r"\(?[A-Za-z]\)?", clean(str(gold)).strip())


def score(reply: str, gold: str, spec: AnswerSpec, level: str | None = None) -> Verdict:
    """Extract at `level` and compare. Never raises (an unknown level is a ValueError), bar one case:
    a code item whose program cannot be run where no isolated sandbox is allowed (UserError).

    The default level is HEADLINE (STRICT): every headline number and every curation decision
    uses the verdict this returns with no level given. A reply that names candidates without
    committing to exactly one (a hedge, a negation, a list of options, a list cut off) is
    NO_ANSWER, with the reason in `refusal`.

    For a text gold (three BBH items) the extracted text is correct when it is the gold or starts
    with it ("Monsters, Inc. It is..."); a letter is correct only if its option's text is the gold.
    """
    level = _check_level(level)
    if spec.kind == MATH:  # compared by value, not by canonical text
        from reflectevo_tasks import math_answers

        return math_answers.score(reply, gold, level)
    if spec.kind == CODE:  # the program is run against the item's tests; may raise UserError (code_scoring)
        from reflectevo_tasks import code_scoring

        return code_scoring.score(reply, canonical_gold(gold, spec), spec, level)
    canon = canonical_gold(gold, spec)
    text_gold = gold_is_text(gold, spec)
    ex = extract(reply, spec, gold_is_text=text_gold, level=level)
    if ex.answer is None:
        return Verdict(NO_ANSWER, None, canon, ex.method, 0.0, level, ex.refusal)
    ok = ex.answer == canon
    if not ok and text_gold and canon:
        if re.fullmatch(r"\([A-Z]\)", ex.answer):
            letter = ex.answer[1]
            ok = any(l == letter and normalize_text(t) == canon for l, t in spec.options)
        else:
            ok = ex.answer.startswith(canon + " ")
    f1 = 0.0
    if spec.kind == FREE_TEXT:
        f1 = 1.0 if ok else token_f1(ex.answer, canon)
    return Verdict(CORRECT if ok else WRONG, ex.answer, canon, ex.method, f1, level)


def score_levels(reply: str, gold: str, spec: AnswerSpec) -> dict[str, Verdict]:
    """The verdict at every level, keyed by level name."""
    return {level: score(reply, gold, spec, level) for level in LEVELS}


def score_many(items, level: str | None = None) -> list[Verdict]:
    """`score` over (reply, gold, spec) triples, in order. The programs of code items are first run in
    the sandbox all together, in parallel (reflectevo_tasks.code_scoring.prepare): a pass of replies
    costs the time of the slowest few runs, not of all of them in a row."""
    items = list(items)
    code = [(reply, spec) for reply, _, spec in items if spec.kind == CODE]
    if code:
        from reflectevo_tasks import code_scoring

        code_scoring.prepare(code)
    return [score(reply, gold, spec, level) for reply, gold, spec in items]
