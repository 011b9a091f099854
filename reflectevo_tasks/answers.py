"""Answer extraction and scoring, one definition for generation, training data and evaluation.

A model reply is reduced to a canonical answer of its task's answer kind, then compared with the
gold answer in the same canonical form. Three outcomes are kept apart: correct, wrong, and
no answer found (the reply has nothing we can read as an answer of that kind).

Where to look in the reply: the text after the LAST answer marker ("the answer is", "answer:",
"final answer =") is read first and its FIRST candidate wins, because the marker is where the
model commits. Without a usable marker we fall back to the LAST candidate anywhere in the reply,
as lm-eval's "flexible-extract" filters do. Extraction never raises: any input string (empty,
100 kB, arbitrary unicode) gives an `Extraction`.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

CHOICE = "choice"
TRUE_FALSE = "true_false"
YES_NO = "yes_no"
VALID_INVALID = "valid_invalid"
INTEGER = "integer"
DYCK = "dyck"
WORD_SORT = "word_sort"
FREE_TEXT = "free_text"
KINDS = (CHOICE, TRUE_FALSE, YES_NO, VALID_INVALID, INTEGER, DYCK, WORD_SORT, FREE_TEXT)

CORRECT, WRONG, NO_ANSWER = "correct", "wrong", "no_answer"

# Markers are searched on a bounded tail: answers live at the end, and this keeps work linear.
_MAX_SCAN = 20_000
_MARKER = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|would\s+be|should\s+be|will\s+be|:|=)\s*[:=]?",
    re.IGNORECASE,
)
_OPTION_LINE = re.compile(r"^\s*\(([A-Za-z])\)\s*(.*?)\s*$", re.MULTILINE)
_PAREN_LETTER = re.compile(r"\(\s*([A-Za-z])\s*\)")
_LEADING_LETTER = re.compile(r"^\W*?(?:option\s+|choice\s+)?\(?([A-Za-z])\)?(?=$|[\s.,:;!)\]])", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(-|−|minus\s+|negative\s+)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?(?![\w]|\.\d)", re.IGNORECASE)
_BRACKETS = set("()[]{}<>")
_BRACKET_RUN = re.compile(r"[\s()\[\]{}<>]*[()\[\]{}<>][\s()\[\]{}<>]*")


@dataclass(frozen=True)
class AnswerSpec:
    """What kind of answer a question expects, plus what extraction may use from the question."""

    kind: str
    options: tuple[tuple[str, str], ...] = ()  # (letter, text) for multiple choice
    vocabulary: tuple[str, ...] = ()  # the words to sort, for word sorting

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown answer kind {self.kind!r}; expected one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Extraction:
    answer: str | None  # canonical form, or None when nothing answer-like was found
    method: str  # "marker", "fallback" or "none"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # CORRECT, WRONG or NO_ANSWER
    extracted: str | None
    gold: str
    method: str
    f1: float = field(default=0.0)

    @property
    def correct(self) -> bool:
        return self.outcome == CORRECT


# ---------------------------------------------------------------- text normalisation

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-", "\u00a0": " "})
_PUNCT = str.maketrans("", "", string.punctuation)


def clean(text: str) -> str:
    """Unicode-normalise and drop the markdown/LaTeX wrapping small models like to add."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = re.sub(r"\\boxed\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    return text.replace("**", "").replace("__", "").replace("`", "").replace("$", "")


def normalize_text(text: str) -> str:
    """Lower-case, no punctuation, no articles, single spaces: the SQuAD-style normal form."""
    text = clean(text).casefold().translate(_PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
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

def _choice_candidates(segment: str, spec: AnswerSpec, whole_reply: bool) -> list[str]:
    letters = {letter for letter, _ in spec.options} or set(string.ascii_uppercase[:18])
    found: list[tuple[int, str]] = []
    for m in _PAREN_LETTER.finditer(segment):
        letter = m.group(1).upper()
        if letter in letters:
            found.append((m.start(), f"({letter})"))
    if not whole_reply or not found:
        lead = _LEADING_LETTER.match(segment)
        if lead:
            raw = lead.group(1)
            # lower-case "a" directly followed by a word is the article, not option (A)
            rest = segment[lead.end():lead.end() + 2]
            is_article = raw.islower() and not re.match(r"^\W*?\(", segment) and rest[:1] == " " and rest[1:2].isalpha()
            if raw.upper() in letters and not is_article:
                found.append((lead.start(1), f"({raw.upper()})"))
    if spec.options:
        norm_segment = normalize_text(segment)
        if whole_reply:
            # the option text alone counts only when it is the whole reply
            for letter, text in spec.options:
                if normalize_text(text) and normalize_text(text) == norm_segment:
                    found.append((0, f"({letter})"))
        elif not found and norm_segment:
            best = None
            for letter, text in spec.options:
                opt = normalize_text(text)
                if opt and (norm_segment == opt or norm_segment.startswith(opt + " ")):
                    if best is None or len(opt) > best[0]:
                        best = (len(opt), letter)
            if best:
                found.append((0, f"({best[1]})"))
    found.sort(key=lambda x: x[0])
    return [c for _, c in found]


def _free_text_choice(segment: str) -> list[str]:
    """For the few BBH items whose gold is option text rather than a letter."""
    norm = normalize_text(segment)
    return [norm] if norm else []


_WORD_PATTERNS = {
    TRUE_FALSE: [(re.compile(r"\b(true|false)\b", re.I), None)],
    VALID_INVALID: [(re.compile(r"\b(invalid|not\s+valid|valid)\b", re.I), {"not valid": "invalid"})],
    YES_NO: [(re.compile(r"\b(yes|no|not\s+plausible|implausible|plausible)\b", re.I),
              {"not plausible": "no", "implausible": "no", "plausible": "yes"})],
}
_WORD_CANON = {TRUE_FALSE: {"true": "True", "false": "False"},
               YES_NO: {"yes": "Yes", "no": "No"},
               VALID_INVALID: {"valid": "valid", "invalid": "invalid"}}


def _word_candidates(segment: str, kind: str) -> list[str]:
    out = []
    for pattern, mapping in _WORD_PATTERNS[kind]:
        for m in pattern.finditer(segment):
            word = " ".join(m.group(1).lower().split())
            word = (mapping or {}).get(word, word)
            out.append(_WORD_CANON[kind][word])
    return out


_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6}
_NUMBER_WORD = re.compile(
    r"\b(?:(minus|negative)\s+)?((?:(?:" + "|".join(list(_UNITS) + list(_TENS) + list(_SCALES)) +
    r")(?:[\s-]+(?:and\s+)?)?)+)", re.IGNORECASE)


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
        seen = True
    return total + current if seen else None


def _integer_candidates(segment: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in _NUMBER.finditer(segment):
        value = int(m.group(2).replace(",", ""))
        found.append((m.start(), str(-value if m.group(1) else value)))
    if not found:
        for m in _NUMBER_WORD.finditer(segment):
            value = _words_to_int(m.group(2))
            if value is not None:
                found.append((m.start(), str(-value if m.group(1) else value)))
    found.sort(key=lambda x: x[0])
    return [c for _, c in found]


def _dyck_candidates(segment: str) -> list[str]:
    out = []
    for m in _BRACKET_RUN.finditer(segment):
        symbols = [c for c in m.group(0) if c in _BRACKETS]
        if symbols:
            out.append(" ".join(symbols))
    return out


def _word_sort_candidates(segment: str, spec: AnswerSpec, whole_reply: bool) -> list[str]:
    vocab = {w.casefold() for w in spec.vocabulary}
    out = []
    for line in segment.splitlines() if whole_reply else [segment]:
        words = [w for w in re.split(r"[\s,;]+", clean(line).casefold().strip(" .:")) if w]
        words = [w.strip(string.punctuation) for w in words]
        words = [w for w in words if w]
        if not words:
            continue
        if vocab:
            in_vocab = [w for w in words if w in vocab]
            # a line that is mostly our words and covers at least half of them is an answer
            if len(in_vocab) >= max(1, len(vocab) // 2) and len(in_vocab) >= 0.8 * len(words):
                out.append(" ".join(in_vocab))
        elif not whole_reply:
            out.append(" ".join(words))
    return out


def _candidates(segment: str, spec: AnswerSpec, gold_is_text: bool, whole_reply: bool) -> list[str]:
    kind = spec.kind
    if kind == CHOICE:
        if gold_is_text and not _PAREN_LETTER.search(segment):
            # the gold is option text that no single option carries; compare the text itself
            if whole_reply:
                lines = [ln for ln in segment.splitlines() if ln.strip()]
                return _free_text_choice(lines[-1]) if lines else []
            return _free_text_choice(segment)
        return _choice_candidates(segment, spec, whole_reply)
    if kind in _WORD_PATTERNS:
        return _word_candidates(segment, kind)
    if kind == INTEGER:
        return _integer_candidates(segment)
    if kind == DYCK:
        return _dyck_candidates(segment)
    if kind == WORD_SORT:
        return _word_sort_candidates(segment, spec, whole_reply)
    if kind == FREE_TEXT:
        if whole_reply:
            lines = [ln for ln in segment.splitlines() if ln.strip()]
            return [normalize_text(lines[-1])] if lines and normalize_text(lines[-1]) else []
        norm = normalize_text(segment)
        return [norm] if norm else []
    return []


def _marker_segment(text: str) -> str | None:
    last = None
    for last in _MARKER.finditer(text):
        pass
    if last is None:
        return None
    segment = text[last.end():]
    # the committed answer is on the marker's line; a reply that breaks the line right after the
    # marker ("Answer:\n(B)") keeps the next non-empty line
    lines = [ln for ln in segment.split("\n")]
    first = next((ln for ln in lines if ln.strip()), "")
    return first.strip()


def extract(reply: str, spec: AnswerSpec, gold_is_text: bool = False) -> Extraction:
    """Read the answer of kind `spec.kind` from a model reply. Never raises."""
    try:
        text = clean(reply if isinstance(reply, str) else str(reply or ""))[-_MAX_SCAN:]
        segment = _marker_segment(text)
        if segment:
            cands = _candidates(segment, spec, gold_is_text, whole_reply=False)
            if cands:
                return Extraction(cands[0], "marker")
        cands = _candidates(text, spec, gold_is_text, whole_reply=True)
        if cands:
            return Extraction(cands[-1], "fallback")
    except Exception:  # pragma: no cover - a scorer must not take a whole run down
        pass
    return Extraction(None, "none")


def canonical_gold(gold: str, spec: AnswerSpec) -> str:
    """The gold answer in the same canonical form extraction produces."""
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


def score(reply: str, gold: str, spec: AnswerSpec) -> Verdict:
    """Extract and compare. Never raises."""
    canon = canonical_gold(gold, spec)
    text_gold = gold_is_text(gold, spec)
    ex = extract(reply, spec, gold_is_text=text_gold)
    f1 = token_f1(ex.answer, canon) if spec.kind == FREE_TEXT and ex.answer else 0.0
    if ex.answer is None:
        return Verdict(NO_ANSWER, None, canon, ex.method, 0.0)
    ok = ex.answer == canon
    if not ok and text_gold and ex.answer.startswith("("):
        # a letter whose option text is the gold text (options split the gold in a few BBH items)
        letter = ex.answer[1]
        ok = any(l == letter and normalize_text(t) == canon for l, t in spec.options)
    return Verdict(CORRECT if ok else WRONG, ex.answer, canon, ex.method, 1.0 if ok and spec.kind == FREE_TEXT else f1)


def mentions_answer(text: str, gold: str, spec: AnswerSpec) -> bool:
    """Does a reflection give the gold answer away? Used to drop leaking reflections."""
    canon = canonical_gold(gold, spec)
    t = clean(text)
    if spec.kind == CHOICE and canon.startswith("("):
        letter = canon[1]
        if re.search(rf"\(\s*{letter}\s*\)|\b(?:option|choice|answer(?: is)?)\s+{letter}\b", t, re.IGNORECASE):
            return True
        option_text = next((normalize_text(x) for l, x in spec.options if l == letter), "")
        return bool(option_text) and len(option_text) > 3 and f" {option_text} " in f" {normalize_text(t)} "
    if spec.kind == INTEGER:
        return canon in _integer_candidates(t)
    if spec.kind in _WORD_CANON:
        seg = _marker_segment(t)
        return bool(seg) and canon in _word_candidates(seg, spec.kind)
    norm = normalize_text(canon)
    return bool(norm) and f" {norm} " in f" {normalize_text(t)} "
