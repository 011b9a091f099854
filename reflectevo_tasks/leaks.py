"""Does a reflection give the gold answer away? A classifier with a measured error.

A reflection is written after a failed attempt and must not state the final answer. Curation drops
the reflections that ASSERT the gold answer: that put the gold forward as the answer, as the
correct option, as what should have been said, or as the value or verdict the question asks for.
Naming the gold in passing (a list of options, "(b)" as a list marker, "step 3" when the gold is 3,
"a positive attitude" when the gold option is "positive"), ruling it out ("(B) can be ruled out",
"the answer is not B") or hedging ("(B) or (C)") is not asserting it.

The classifier reads every assertion of ANY candidate answer, not only the gold's, because a
reflection that asserts several different answers singles none out (and a wrong answer gives
nothing away). Assertions come in three strengths, and only the strongest present is compared:

1. emphatic: the candidate called correct/right, or what should have been given ("the correct
   option is B", "B is the right choice", "the answer should have been B", "it should be No");
2. plain: an answer statement ("the answer is B", "Answer: No", a line that is only "(B)"), or the
   result of the question's own computation ("94 + 129 = 223" for "94 + 129 =");
3. verdict: the candidate given as what the question asks about ("the sentiment is positive",
   "the ball travelled up", "there are 161,548 people", "the claim ... a false assumption"), or,
   for options that are names or phrases, the only option the reflection names at all.

The reflection asserts the gold when the strongest level present holds the gold and nothing else.
The labelled set in tests/data/leak_labels/ (rules in RULES.md) measures the error; it holds BBH
reflections only, so the two kinds below have no measured error.

Two kinds are read their own way, with the scorer of their answers:

- math: the candidates are expressions compared with the gold by value (reflectevo_tasks.math_answers).
  Emphatic assertions are what follows an emphatic cue ("the correct answer is", "it should be"),
  read as an answer statement; plain ones are the reflection's own final answer at the strict level
  (a box, "the answer is ..."). The strongest level present decides, as above: every emphatic
  assertion must equal the gold; else the plain one must.
- code: a reflection gives the answer away when it holds a program (its last fenced block, as an
  answer is read) that passes the item's tests: the retry could copy it, and a reflector trained on
  it would learn to write solutions instead of reflections. Such a program is run in the code
  sandbox like any answer (reflectevo_tasks.code_scoring), so judging code can raise its UserError.

Every pattern runs in linear time (bounded windows, possessive digit runs), and `asserts_gold`
never raises: on any internal error it keeps the reflection and says so through `LeakVerdict`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from reflectevo_tasks import answers

EMPHATIC, PLAIN, VERDICT = "emphatic", "plain", "verdict"
STRENGTHS = (EMPHATIC, PLAIN, VERDICT)

_MAX_SCAN = 200_000  # reflections are a few kB; a longer text is read up to here
_WINDOW = 200  # an asserted candidate sits within this many characters of its cue

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"',
                         "\u00bb": '"', "\u2212": "-", "\u00a0": " "})


@dataclass(frozen=True)
class Assertion:
    candidate: str  # canonical, as answers.canonical_gold writes the gold
    strength: str  # EMPHATIC, PLAIN or VERDICT
    rule: str  # which reading found it, for explanations
    position: int


@dataclass(frozen=True)
class LeakVerdict:
    leaks: bool
    gold: str
    strength: str | None  # the level that decided, None when nothing was asserted
    asserted: tuple[str, ...] = ()  # distinct candidates at that level
    assertions: tuple[Assertion, ...] = field(default=(), repr=False)
    error: str | None = None


def asserts_gold(reflection: str, gold: str, spec: answers.AnswerSpec, question: str = "") -> bool:
    """True when the reflection asserts the gold answer (and no other). Never raises.

    `question` (the question text) lets the reader recognise the question's own computation and
    the question's wording ("which direction does the ball travel?" -> "it travels up")."""
    return judge(reflection, gold, spec, question).leaks


def judge(reflection: str, gold: str, spec: answers.AnswerSpec, question: str = "") -> LeakVerdict:
    """The decision with its reasons: which assertions were read, at which strength."""
    if spec.kind == answers.CODE:  # outside the net below: a sandbox refusal must not read as "no leak"
        return _code_judge(reflection, gold, spec)
    try:
        if spec.kind == answers.MATH:
            return _math_judge(reflection if isinstance(reflection, str) else str(reflection or ""), gold)
        text = reflection if isinstance(reflection, str) else str(reflection or "")
        reader = _Reader(spec, gold, question if isinstance(question, str) else "")
        found = reader.assertions(_prepare(text[:_MAX_SCAN]))
        for strength in STRENGTHS:
            level = [a for a in found if a.strength == strength]
            if level:
                distinct = tuple(dict.fromkeys(a.candidate for a in level))
                return LeakVerdict(distinct == (reader.gold,), reader.gold, strength, distinct, tuple(found))
        return LeakVerdict(False, reader.gold, None, (), tuple(found))
    except Exception as err:  # pragma: no cover - a curation run must not stop on one odd text
        return LeakVerdict(False, str(gold), None, error=f"{type(err).__name__}: {err}")


def _code_judge(reflection, gold: str, spec: answers.AnswerSpec) -> LeakVerdict:
    verdict = answers.score(reflection if isinstance(reflection, str) else "", gold, spec)
    if verdict.extracted is None:
        return LeakVerdict(False, gold, None)
    found = (Assertion("a program", PLAIN, "a program in the reflection, run against the tests", 0),)
    return LeakVerdict(verdict.correct, gold, PLAIN, ("a program that passes the tests" if verdict.correct
                                                       else "a program that fails the tests",), found)


def _math_judge(text: str, gold: str) -> LeakVerdict:
    from reflectevo_tasks import math_answers

    text = text[:_MAX_SCAN]
    canon = math_answers.canonical_gold(gold)
    emphatic = []
    for m in [*_ANSWER_CUE.finditer(text), *_NOUN_CUE.finditer(text), *_SHOULD_CUE.finditer(text)]:
        if m.re is _ANSWER_CUE and (m.group("report") or not (m.group("adj") or m.group("strong"))):
            continue
        statement = text[m.end():m.end() + _WINDOW].split("\n\n", 1)[0]
        verdict = math_answers.score(f"The answer is {statement}", gold, answers.STRICT)
        if verdict.extracted is not None:
            emphatic.append(Assertion(canon if verdict.correct else verdict.extracted, EMPHATIC, "emphatic cue",
                                      m.start()))
    if emphatic:
        distinct = tuple(dict.fromkeys(a.candidate for a in emphatic))
        return LeakVerdict(distinct == (canon,), canon, EMPHATIC, distinct, tuple(emphatic))
    verdict = math_answers.score(text, gold, answers.STRICT)
    if verdict.extracted is None:
        return LeakVerdict(False, canon, None)
    plain = Assertion(canon if verdict.correct else verdict.extracted, PLAIN, "final answer", 0)
    return LeakVerdict(verdict.correct, canon, PLAIN, (plain.candidate,), (plain,))


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return text.replace("**", "").replace("__", "").replace("`", "")


def _norm(text: str) -> str:
    """Lower case, punctuation to spaces, no articles, single spaces: for comparing option texts
    ("the answer is a blue whale" names the option "A blue whale")."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    return " ".join(w for w in re.sub(r"[^\w\s]", " ", text).split() if w not in _ARTICLES)


_ARTICLES = {"a", "an", "the"}
_TEXT_GOLD = "*"  # the key of a text gold among the options
_GAP = r"(?:[^\w]+(?:(?:a|an|the)[^\w]+)*)"  # what may stand between two words of a normalised text


def _words_pattern(norm: str) -> str:
    """A pattern for the raw form of a normalised text: any punctuation and articles between words."""
    return _GAP.join(map(re.escape, norm.split()))


# ------------------------------------------------------------------ cues

_ADJ = r"(?:correct|right|true|actual|proper|best|real|intended|expected|only\s+correct)"
_REPORT = (r"(?:attempt'?s|attempted|previous|original|initial|first|given|provided|chosen|selected|wrong|"
           r"incorrect|old|earlier|predicted|my|your|its|their|his|her|model'?s|same|other|another|second|third)")
_STRONG_VERB = r"(?:should\s+have\s+been|should\s+be|must\s+have\s+been|must\s+be|has\s+to\s+be|had\s+to\s+be|ought\s+to\s+be)"
_PLAIN_VERB = r"(?:(?:is|was|would\s+be|will\s+be|seems\s+to\s+be|appears\s+to\s+be|lies\s+in)(?:\s*:)?|:|=)"
# "the answer is", "the correct answer to the question ... is", "the answer should have been"
_ANSWER_CUE = re.compile(
    rf"\b(?:(?P<report>{_REPORT})\s+)?(?:(?P<adj>{_ADJ})\s+)?(?:final\s+)?answer"
    rf"(?:\s+to\s+(?:the|this|that|your|my|our|a)\b[^.!?\n]{{0,160}}?)?\s*"
    rf"(?:(?P<strong>{_STRONG_VERB})|{_PLAIN_VERB})",
    re.IGNORECASE)
_NOUNS = (r"(?:option|choice|letter|response|result|value|solution|one|operation|length|number|sum|total|"
          r"conclusion|label|classification|verdict|sentiment|move|direction|statement|output|reply)")
# "the correct option is", "the right choice would be"
_NOUN_CUE = re.compile(rf"\b(?P<adj>{_ADJ})\s+{_NOUNS}\s*(?:{_STRONG_VERB}|{_PLAIN_VERB}|would\s+have\s+been)",
                       re.IGNORECASE)
# "it should be", "the solution should also be", "we should have chosen", "choose (B) instead"
_SHOULD_CUE = re.compile(
    r"\b(?:it|this|that|which|they|you|we|i|attempt|answer|solution|result|option|choice|response)\s+"
    r"(?:should|must|ought\s+to|has\s+to|had\s+to)\s+(?:also\s+|instead\s+|really\s+)?"
    r"(?:have\s+)?(?:been\s+corrected\s+to|been\s+changed\s+to|been|be|chosen|selected|picked|answered|said|"
    r"given|gone\s+with|written|choose|select|pick|answer|say|give|go\s+with|change\s+(?:it|the\s+answer)\s+to)\b"
    r"|\b(?:choose|select|pick|go\s+with|opt\s+for)\s+(?=\(|option\b|choice\b)",
    re.IGNORECASE)
# a line that opens with an answer label: "A: Yes.", "Response: Valid", "Solution: Option B"
_LINE_MARKER = re.compile(r"^[ \t>*#-]*(?:Answer|Response|Solution|Final\s+answer|Conclusion)[ \t]*:", re.MULTILINE)
_QA_MARKER = re.compile(r"^[ \t>*#-]*A[ \t]*:", re.MULTILINE)  # "A: Yes." (not for lettered options)

# leading words that may stand between a cue and its candidate
_LEAD_FILLER = re.compile(
    r"(?:[\s\"'*:,(\[-]*?)(?:(?i:indeed|actually|therefore|thus|hence|so|clearly|definitely|certainly|"
    r"obviously|simply|just|still|then|now|probably|likely|really|also|either|in\s+fact|the|an|that)\b"
    r"|a\b(?=\s+[a-z])|(?i:(?:final\s+)?answer\s+(?:is|was|would\s+be))\b)")
_LEAD_PUNCT = re.compile(r"[\s\"'*:,\[-]+")
_NEGATED_LEAD = re.compile(r"(?i:not|never|neither|isn't|wasn't|no\s+longer)\b")
# after a candidate: it is then called wrong, or it is only a condition
_AFTER_NEGATION = re.compile(
    r"[^.!?\n]{0,40}?\b(?:is|was|are|were)\s+(?:not\s+(?:the\s+)?(?:correct|right|answer|possible|valid)\b|"
    r"(?:also\s+)?(?:incorrect|wrong|a\s+typo|false|ruled\s+out)\b)|\s*[\"']?\s*if\b|\s*[\"']?\s*is\s+not\b",
    re.IGNORECASE)
_HEDGE = re.compile(r"\s*[\"')]*\s*(?:,|/|\bor\b|\band\b|&)\s*(?:(?:or|either|maybe|perhaps)\s+)?", re.IGNORECASE)

# candidate first, then what is said of it
_BACK_EMPHATIC = re.compile(
    rf"\b(?:which\s+)?(?:is|was|are|would\s+be|should\s+be|must\s+be|seems\s+to\s+be|appears\s+to\s+be)\s+"
    rf"(?:(?:also|indeed|actually|clearly|definitely|certainly|really)\s+)?(?:the\s+)?(?:only\s+)?"
    rf"(?:correct|right|best|accurate|proper|appropriate|true)\b(?!\s+(?:that|to|if)\b)(?!\s*\?)",
    re.IGNORECASE)
_BACK_PLAIN = re.compile(r"\b(?:is|was|would\s+be)\s+(?:the\s+|our\s+)?(?:final\s+)?answer\b(?!\s+(?:to\s+)?(?:a|an)\b)",
                         re.IGNORECASE)
_BACK_FAILED = re.compile(
    r"\bwhich\s+is\s+the\s+(?:option|answer|choice)\s+(?:that\s+)?(?:i|we|you|it|the\s+attempt)\s+"
    r"(?:failed\s+to|should\s+have|needed\s+to|had\s+to|ought\s+to\s+have)\b",
    re.IGNORECASE)

_VERDICT_VERBS = {"is", "are", "was", "were", "be", "been", "being", "s", "becomes", "become", "became", "seems",
                  "seem", "appears", "sounds", "feels", "looks", "remains", "means", "mean", "meaning"}
_VERDICT_FILLERS = re.compile(
    r"(?:(?:a|an|the|actually|clearly|indeed|really|definitely|certainly|obviously|in\s+fact|quite|very|more|"
    r"most|rather|overall|generally|mostly|truly|also|still|probably|likely|entirely|completely)\s+){0,3}",
    re.IGNORECASE)
_PHRASE_END = re.compile(r"\s*(?:$|[.!?,;:)\]\"'\n]|\s*(?:and|but|because|since|as|so|which|while|instead|rather)\b)",
                         re.IGNORECASE)
_CLAIM_WORDS = re.compile(r"\b(?:claim|statement|assertion|assumption|premise|fact)\b", re.IGNORECASE)
_TRUTH_WORD = re.compile(r"\b(true|false)\b(?!\s*(?:or|and|/)\s*(?:true|false)\b)(?!\s+that\b)", re.IGNORECASE)
_NOT_BEFORE = re.compile(r"(?:\bnot|n't|\bnever|\bno)\s*$", re.IGNORECASE)
_NEGATION_NEAR = re.compile(r"\b(?:not|n't|instead\s+of|rather\s+than|rule\s+out|ruled\s+out|never|avoid|unlike)\b",
                            re.IGNORECASE)
_REPORT_BEFORE = re.compile(r"\b(?:attempt|attempted|previous|original|initial|initially|earlier|my\s+answer|your\s+answer|"
                            r"you\s+(?:said|wrote|answered|chose)|i\s+(?:said|wrote|answered|chose))\b[^.!?\n]*$",
                            re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")

_NUMBER = r"-?\d++(?:,\d{3})*+(?:\.\d++)?"
_OPERATOR = r"(?:[-+*/x\u00d7\u00f7^]|plus|minus|times|divided\s+by|multiplied\s+by|over)"
_COMPUTATION = re.compile(
    rf"(?<![\w.,])(?<![-+*/x\u00d7\u00f7^]\s)(?P<lhs>{_NUMBER}(?:\s*{_OPERATOR}\s*{_NUMBER}){{1,6}}+)\s*(?:,\s*which\s+)?"
    rf"(?:=|equals|is\s+equal\s+to|is|gives|makes|yields|results?\s+in|resulted\s+in|comes\s+to)\s*(?P<res>{_NUMBER})"
    rf"(?![\d,]*\s*{_OPERATOR}\s*\d)",
    re.IGNORECASE)
_RESULT_CUE = re.compile(
    rf"\b(?:there\s+(?:are|were|is|was)|equals?|total(?:\s+of)?|resulted\s+in|results\s+in|comes\s+to|is|are|was|were)"
    rf"\s+(?:about\s+|exactly\s+|approximately\s+|only\s+|indeed\s+|actually\s+)?(?P<num>{_NUMBER})"
    rf"(?![\d,]*\s*{_OPERATOR}\s*\d)|=\s*(?P<num2>{_NUMBER})(?![\d,]*\s*{_OPERATOR}\s*\d)",
    re.IGNORECASE)
_LIST_PREFIX = re.compile(r"^\s*(?:[-*\u2022>]+|\d+[.)]|\(\d+\)|step\s*\d+\s*[:.)-]?)\s*", re.IGNORECASE)
_UNIT_SPLIT = re.compile(r"(?<=[.!?])(?<!\b[A-Z][.])\s+")
_COMMON_WORDS = {"true", "false", "yes", "no", "valid", "invalid", "up", "down", "left", "right", "neither",
                 "unknown", "none", "both", "correct", "incorrect", "positive", "negative", "neutral"}


_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_WORD_NUMBER = re.compile(rf"\b(?:(?P<tens>{'|'.join(_TENS)})(?:[\s-](?P<unit>{'|'.join(_UNITS[1:10])}))?|"
                          rf"(?P<small>{'|'.join(_UNITS)}))\b", re.IGNORECASE)
# "I counted eight", "there are eight instruments" ("one" is left out: it is mostly a pronoun)
_WORD_RESULT = re.compile(r"\b(?:counted|count\s+is|there\s+(?:are|were)|total(?:\s+is|\s+of)?|makes|gives|equals|"
                          r"is|are|was|were)\s+(?:about\s+|exactly\s+|only\s+)?(?=[a-z])", re.IGNORECASE)
_TEXT_VERDICT = re.compile(r"\b(?:is|are|was|were|be|means|gives|becomes|reads)\s+|:[ \t]*", re.IGNORECASE)


def _word_number(m: re.Match) -> str | None:
    if m.group("small"):
        word = m.group("small").lower()
        return None if word == "one" else str(_UNITS.index(word))
    value = 20 + 10 * _TENS.index(m.group("tens").lower())
    return str(value + (_UNITS.index(m.group("unit").lower()) if m.group("unit") else 0))


def _overlap(a: str, b: str) -> float:
    """Word Jaccard similarity of two normalised texts."""
    wa, wb = set(a.split()), set(b.split())
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def _canon_int(text: str) -> str | None:
    digits = text.replace(",", "")
    if not re.fullmatch(r"-?\d{1,30}(?:\.\d+)?", digits):
        return None
    if "." in digits:
        whole, frac = digits.split(".", 1)
        frac = frac.rstrip("0")
        return f"{int(whole)}.{frac}" if frac else str(int(whole))
    return str(int(digits))


class _Reader:
    """Finds the assertions of one question's candidates in a text."""

    def __init__(self, spec: answers.AnswerSpec, gold: str, question: str):
        self.spec, self.kind = spec, spec.kind
        canon = answers.canonical_gold(gold, spec)
        self.options = tuple((letter.upper(), text) for letter, text in spec.options)
        self.option_norm = {letter: _norm(text) for letter, text in self.options}
        self.option_number = {letter: _canon_int(_norm(text).split(" ")[0]) if _norm(text) else None
                              for letter, text in self.options}
        # a text gold (a few BBH items) is compared through the option that carries it
        if self.kind == answers.CHOICE and not re.fullmatch(r"\([A-Z]\)", canon):
            letter = next((l for l, t in self.option_norm.items() if t == _norm(gold)), None)
            if letter:
                canon = f"({letter})"
            elif _norm(gold):  # options that split the gold at its commas: the whole gold is a candidate too
                self.option_norm[_TEXT_GOLD] = _norm(gold)
                self.options += ((_TEXT_GOLD, str(gold)),)
                self.option_number[_TEXT_GOLD] = None
        self.gold = canon
        self.question = question
        self.question_numbers = {c for c in (_canon_int(m.group(0)) for m in re.finditer(_NUMBER, question)) if c}
        option_words = {w for t in self.option_norm.values() for w in t.split()}
        self.question_stems = {w[:5] for w in re.findall(r"[a-z]{5,}", question.casefold()) if w not in option_words}
        self.question_words = {w for w in re.findall(r"[a-z]{4,}", question.casefold()) if w not in option_words}
        self._verdict_re = self._verdict_pattern()

    # ---------------------------------------------------------- candidates

    def _label(self, letter: str) -> str:
        return self.gold if letter == _TEXT_GOLD else f"({letter})"

    def _word_value(self, word: str) -> str | None:
        w = " ".join(word.casefold().split())
        if self.kind == answers.YES_NO:
            return {"yes": "Yes", "no": "No", "true": "Yes", "false": "No", "plausible": "Yes",
                    "implausible": "No", "not plausible": "No"}.get(w)
        if self.kind == answers.TRUE_FALSE:
            return {"true": "True", "false": "False"}.get(w)
        if self.kind == answers.VALID_INVALID:
            return {"valid": "valid", "invalid": "invalid", "not valid": "invalid"}.get(w)
        return None

    def lead(self, segment: str) -> tuple[str, int] | None:
        """The candidate that opens `segment` (after filler words), with where it ends."""
        pos = 0
        for _ in range(8):
            m = _LEAD_FILLER.match(segment, pos)
            if not m or m.end() == pos:
                break
            pos = m.end()
        m = _LEAD_PUNCT.match(segment, pos)
        if m:
            pos = m.end()
        if _NEGATED_LEAD.match(segment, pos):
            return None
        return self.candidate_at(segment, pos)

    def candidate_at(self, text: str, pos: int) -> tuple[str, int] | None:
        kind = self.kind
        if kind == answers.CHOICE:
            return self._choice_at(text, pos)
        if kind in (answers.YES_NO, answers.TRUE_FALSE, answers.VALID_INVALID):
            m = re.compile(r"(?i:not\s+plausible|implausible|plausible|not\s+valid|invalid|valid|yes|no|true|false)"
                           r"(?=\s*(?:$|[^\w\s]|\s(?:because|since|as|so|and|but|it|this|the|to|in|for)\b))").match(text, pos)
            if m:
                value = self._word_value(m.group(0))
                return (value, m.end()) if value else None
            return None
        if kind == answers.INTEGER:
            m = re.compile(rf"{_NUMBER}(?![\d,]*\s*{_OPERATOR}\s*\d)").match(text, pos)
            if m:
                value = _canon_int(m.group(0))
                return (value, m.end()) if value else None
            return None
        # dyck, word sorting, free text: the gold when the segment starts with it, else another answer
        rest = _norm(text[pos:pos + _WINDOW])
        if kind == answers.DYCK:
            brackets = " ".join(c for c in text[pos:pos + _WINDOW] if c in "()[]{}<>")
            return (self.gold, pos + 1) if self.gold and brackets.startswith(self.gold) else (
                ("other", pos + 1) if brackets else None)
        gold = _norm(self.gold)
        if gold and (rest == gold or rest.startswith(gold + " ")):
            return self.gold, pos + len(gold)
        return ("other", pos + 1) if rest else None

    def _choice_at(self, text: str, pos: int) -> tuple[str, int] | None:
        m = re.compile(r"\(\s*([A-Za-z])\s*\)").match(text, pos)
        if m:
            return f"({m.group(1).upper()})", m.end()
        m = re.compile(r"(?i:option|choice|letter)\s*\(?\s*([A-Za-z])\b\)?").match(text, pos)
        if m:
            return f"({m.group(1).upper()})", m.end()
        m = re.compile(r"([A-Z])(?:\)|(?=[.:;,!?\"']|\s*$)|(?=\s+(?:because|since|as|is|was|would|and|but|-|\u2013)\b))"
                       ).match(text, pos)
        if m and (m.group(1) not in "AI" or not re.match(r"\s+[a-z]", text[m.end():])):
            return f"({m.group(1)})", m.end()
        m = re.compile(rf"{_NUMBER}(?![\d,]*\s*{_OPERATOR}\s*\d)").match(text, pos)
        if m:
            value = _canon_int(m.group(0))
            letter = next((l for l, n in self.option_number.items() if n is not None and n == value), None)
            if letter:
                return f"({letter})", m.end()
        window = _norm(text[pos:pos + _WINDOW])
        best = None
        for letter, opt in self.option_norm.items():
            if self.option_number.get(letter) is not None:
                continue
            if opt and (window == opt or window.startswith(opt + " ")) and (best is None or len(opt) > len(best[1])):
                best = (letter, opt)
        if best:
            return self._label(best[0]), pos + self._raw_length(text, pos, best[1])
        return None

    @staticmethod
    def _raw_length(text: str, pos: int, normalised: str) -> int:
        """How many raw characters from pos make up `normalised` (with its punctuation and articles)."""
        m = re.compile(r"[^\w]*(?:(?:a|an|the)[^\w]+)*" + _words_pattern(normalised), re.IGNORECASE).match(text, pos)
        return m.end() - pos if m else len(normalised)

    def candidate_ending_at(self, text: str, end: int) -> str | None:
        """A candidate that ends exactly at `end` (for "B is the right choice")."""
        # the anchored searches below try every start in the window: keep it short and trimmed
        window = text[max(0, end - 80):end].rstrip().rstrip(",").rstrip()
        if self.kind == answers.CHOICE:
            m = re.search(r"(?:\(\s*([A-Za-z])\s*\)|(?i:option|choice|letter)\s+\(?([A-Za-z])\)?|(?<![\w'])([B-HJ-Z])\)?)$",
                          window)
            if m:
                return f"({(m.group(1) or m.group(2) or m.group(3)).upper()})"
            tail = _norm(window)
            best = None
            for letter, opt in self.option_norm.items():
                if opt and (tail == opt or tail.endswith(" " + opt)) and (best is None or len(opt) > len(best[1])):
                    best = (letter, opt)
            return self._label(best[0]) if best else None
        if self.kind in (answers.YES_NO, answers.TRUE_FALSE, answers.VALID_INVALID):
            m = re.search(r"\b(?i:yes|no|true|false|valid|invalid|plausible|implausible)[\"']?$", window)
            return self._word_value(m.group(0).strip("\"' \t\n")) if m else None
        if self.kind == answers.INTEGER:
            m = re.search(rf"(?<![\w.,]){_NUMBER}$", window)
            return _canon_int(m.group(0).strip()) if m else None
        return None

    # ---------------------------------------------------------- readings

    def assertions(self, text: str) -> list[Assertion]:
        found: list[Assertion] = []
        found += self._forward(text)
        found += self._backward(text)
        found += self._lone_units(text)
        if self.kind in (answers.INTEGER, answers.CHOICE):
            found += self._computations(text)
        if not any(a.strength in (EMPHATIC, PLAIN) for a in found):
            found += self._verdicts(text)
        return found

    def _segment(self, text: str, start: int) -> str:
        end = _SENTENCE_END.search(text, start, min(len(text), start + _WINDOW))
        segment = text[start:end.start() if end else min(len(text), start + _WINDOW)]
        if not segment.strip() and text[start:start + 1] == "\n":  # "Answer:\n(B)": the next line
            nxt = re.compile(r"\s*([^\n]{0,200})").match(text, start)
            segment = nxt.group(1) if nxt else ""
        return segment

    def _segment_assertion(self, text: str, start: int, strength: str, rule: str) -> Assertion | None:
        segment = self._segment(text, start)
        hit = self.lead(segment)
        if not hit:
            return None
        cand, end = hit
        after = segment[end:]
        if _AFTER_NEGATION.match(after):
            return None
        hedge = _HEDGE.match(after)
        if hedge and self.lead(after[hedge.end():]):
            return None
        return Assertion(cand, strength, rule, start)

    def _forward(self, text: str) -> list[Assertion]:
        out = []
        for m in _ANSWER_CUE.finditer(text):
            if m.group("report"):
                continue
            strength = EMPHATIC if (m.group("adj") or m.group("strong")) else PLAIN
            a = self._segment_assertion(text, m.end(), strength, "answer statement")
            if a:
                out.append(a)
        for m in _NOUN_CUE.finditer(text):
            a = self._segment_assertion(text, m.end(), EMPHATIC, "correctness claim")
            if a:
                out.append(a)
        for m in _SHOULD_CUE.finditer(text):
            a = self._segment_assertion(text, m.end(), EMPHATIC, "what should have been")
            if a:
                out.append(a)
        markers = list(_LINE_MARKER.finditer(text))
        if self.kind != answers.CHOICE:
            markers += list(_QA_MARKER.finditer(text))
        for m in markers:
            a = self._segment_assertion(text, m.end(), PLAIN, "answer line")
            if a:
                out.append(a)
        return out

    def _backward(self, text: str) -> list[Assertion]:
        out = []
        for pattern, strength in ((_BACK_EMPHATIC, EMPHATIC), (_BACK_PLAIN, PLAIN)):
            for m in pattern.finditer(text):
                cand = self.candidate_ending_at(text, m.start())
                if cand and not self._quoted_question(text, m.start()):
                    out.append(Assertion(cand, strength, "called correct" if strength == EMPHATIC else "is the answer",
                                         m.start()))
        for m in _BACK_FAILED.finditer(text):
            low = max(0, m.start() - _WINDOW)
            sentence_start = max(text.rfind("\n", low, m.start()), text.rfind(". ", low, m.start()), low - 1) + 1
            cands = self._candidates_in(text[sentence_start:m.start()])
            if cands:
                out.append(Assertion(cands[-1], EMPHATIC, "what should have been", m.start()))
        return out

    @staticmethod
    def _quoted_question(text: str, pos: int) -> bool:
        """"Is (B) correct?" asks, it does not assert."""
        end = _SENTENCE_END.search(text, pos, min(len(text), pos + _WINDOW))
        return bool(end) and text[end.start()] == "?"

    def _candidates_in(self, text: str) -> list[str]:
        """Every label-form candidate in a short text, in order (choice questions only)."""
        if self.kind != answers.CHOICE:
            return []
        return [f"({(m.group(1) or m.group(2)).upper()})"
                for m in re.finditer(r"\(\s*([A-Za-z])\s*\)|(?i:option|choice)\s+\(?([A-Za-z])\b", text)]

    def _lone_units(self, text: str) -> list[Assertion]:
        """A line or sentence that is nothing but a candidate: "(B)", "(E) 270.", "Yes.", "False"."""
        out = []
        offset = 0
        for line in text.split("\n"):
            start = offset
            offset += len(line) + 1
            if not line.strip() or len(line) > 4 * _WINDOW:
                continue
            body = _LIST_PREFIX.sub("", line, count=1)
            for unit in _UNIT_SPLIT.split(body):
                if re.match(r"\s*[A-Z]\s*:", unit):
                    continue  # "A:" opens a dialogue turn or a labelled paragraph
                cand = self._lone_candidate(unit.strip().strip("\"'*").rstrip(".!,;: \t").strip())
                if cand:
                    out.append(Assertion(cand, PLAIN, "a line that is only an answer", start))
        return out

    def _lone_candidate(self, unit: str) -> str | None:
        if not unit or len(unit) > _WINDOW:
            return None
        if self.kind == answers.CHOICE:
            m = re.fullmatch(r"\(\s*([A-Za-z])\s*\)\s*(.*)|([A-Z])\)\s*(.*)|([A-Z])", unit, re.DOTALL)
            if m:
                letter = (m.group(1) or m.group(3) or m.group(5)).upper()
                rest = _norm(m.group(2) or m.group(4) or "")
                own = self.option_norm.get(letter, "")
                # its own text, or a short item of a list ("B) 161,548", "(C) thing to do ...")
                if not rest or len(rest.split()) <= 8 or _overlap(rest, own) >= 0.5:
                    return f"({letter})"
                return None
            norm = _norm(unit)
            return next((self._label(l) for l, t in self.option_norm.items() if t and t == norm), None)
        if self.kind in (answers.YES_NO, answers.TRUE_FALSE, answers.VALID_INVALID):
            return self._word_value(unit)
        if self.kind == answers.INTEGER:
            return _canon_int(unit) if re.fullmatch(r"-?[\d,]{1,40}(?:\.\d+)?", unit) else None
        return None

    def _computations(self, text: str) -> list[Assertion]:
        """The question's own computation with its result: "94 + 129 = 223" for "94 + 129 =".
        A computation on other numbers is a step on the way, not the answer."""
        out = []
        for m in _COMPUTATION.finditer(text):
            operands = {_canon_int(n.group(0)) for n in re.finditer(_NUMBER, m.group("lhs"))}
            if self.question_numbers and not operands <= self.question_numbers:
                continue
            cand = self._number_candidate(m.group("res"))
            if cand:
                out.append(Assertion(cand, PLAIN, "the question's computation", m.start()))
        return out

    def _number_candidate(self, number: str) -> str | None:
        value = _canon_int(number)
        if value is None:
            return None
        if self.kind == answers.INTEGER:
            return value
        letter = next((l for l, n in self.option_number.items() if n is not None and n == value), None)
        return f"({letter})" if letter else None

    # ---------------------------------------------------------- verdicts (weakest)

    def _verdict_pattern(self) -> re.Pattern | None:
        if self.kind == answers.CHOICE:
            texts = [t for t in self.option_norm.values() if t and len(t.split()) <= 5]
        elif self.kind == answers.YES_NO:
            texts = ["not plausible", "implausible", "plausible", "true", "false"]
        elif self.kind == answers.TRUE_FALSE:
            texts = ["true", "false"]
        elif self.kind == answers.VALID_INVALID:
            texts = ["not valid", "invalid", "valid"]
        else:
            return None
        if not texts:
            return None
        alternatives = "|".join(_words_pattern(t) for t in sorted(texts, key=len, reverse=True))
        return re.compile(rf"\b(?P<verb>[a-z]+)\s+{_VERDICT_FILLERS.pattern}(?P<cand>{alternatives})\b", re.IGNORECASE)

    def _verdict_value(self, text: str) -> str | None:
        if self.kind == answers.CHOICE:
            norm = _norm(text)
            return next((self._label(l) for l, t in self.option_norm.items() if t == norm), None)
        return self._word_value(_norm(text))

    def _verdicts(self, text: str) -> list[Assertion]:
        out = []
        if self._verdict_re is not None:
            for m in self._verdict_re.finditer(text):
                verb = m.group("verb").casefold()
                if verb not in _VERDICT_VERBS and verb[:5] not in self.question_stems:
                    continue
                if _NOT_BEFORE.search(text, max(0, m.start() - 12), m.start() + len(m.group("verb"))) or \
                        re.search(r"\bnot\b", m.group(0)[len(m.group("verb")):m.start("cand") - m.start()], re.IGNORECASE):
                    continue
                if re.search(r"(?:\(\s*[A-Za-z]\s*\)|\b(?:option|choice)\s+[A-Za-z]|\b[A-Z]\))\s*$",
                             text[max(0, m.start() - 20):m.start()]):
                    continue  # "(A) is positive": an option restated, not a verdict
                if _REPORT_BEFORE.search(text, max(0, m.start() - 40), m.start() + len(m.group("verb"))):
                    continue  # "the attempt at emotion was disgust" reports the attempt
                after = text[m.end():m.end() + 60]
                if not self._phrase_ends(after):
                    continue
                hedge = _HEDGE.match(after)
                if hedge and self._verdict_re_word(after[hedge.end():]):
                    continue
                cand = self._verdict_value(m.group("cand"))
                if cand:
                    out.append(Assertion(cand, VERDICT, "verdict", m.start()))
        if self.kind == answers.TRUE_FALSE:
            out += self._claim_truth(text)
        if self.kind in (answers.INTEGER, answers.CHOICE):
            for m in _RESULT_CUE.finditer(text):
                number = m.group("num") or m.group("num2")
                cand = self._number_candidate(number)
                if not cand or _NOT_BEFORE.search(text, max(0, m.start() - 6), m.start()):
                    continue
                if _REPORT_BEFORE.search(text, max(0, m.start() - 40), m.start()):
                    continue  # "the attempted answer was 161,548" reports the attempt
                before = re.search(rf"({_NUMBER})\s*$", text[max(0, m.start() - 30):m.start()])
                if before and _canon_int(before.group(1)) == _canon_int(number):
                    continue  # "161,548 is indeed 161,548", "4 = 4": an identity
                out.append(Assertion(cand, VERDICT, "a value given", m.start()))
        if self.kind == answers.CHOICE:
            out += self._sole_mention(text)
        if self.kind == answers.INTEGER:
            for m in _WORD_RESULT.finditer(text):
                w = _WORD_NUMBER.match(text, m.end())
                value = _word_number(w) if w else None
                if value is not None and not _REPORT_BEFORE.search(text, max(0, m.start() - 40), m.start()):
                    out.append(Assertion(value, VERDICT, "a value given", m.start()))
        if self.kind in (answers.DYCK, answers.WORD_SORT, answers.FREE_TEXT):
            out += self._text_verdicts(text)
        return out

    def _text_verdicts(self, text: str) -> list[Assertion]:
        """"The closing part is ] ] here", "Sorted, it is syndrome therefrom": the gold text given
        after a copula or a colon."""
        out = []
        gold = _norm(self.gold)
        for m in _TEXT_VERDICT.finditer(text):
            if self.kind == answers.DYCK:
                run = re.compile(r"[()\[\]{}<> \t]{1,400}").match(text, m.end())
                brackets = " ".join(c for c in run.group(0) if c in "()[]{}<>") if run else ""
                if brackets:
                    out.append(Assertion(self.gold if brackets == self.gold else "other", VERDICT, "verdict", m.start()))
            elif gold:
                rest = _norm(text[m.end():m.end() + len(self.gold) + 40])
                if rest == gold or rest.startswith(gold + " "):
                    out.append(Assertion(self.gold, VERDICT, "verdict", m.start()))
        return out

    def _phrase_ends(self, after: str) -> bool:
        """The candidate ends its phrase, or one word of the question's own wording follows it
        ("a correlative relation" when the question asks about relations)."""
        if _PHRASE_END.match(after):
            return True
        m = re.match(r"\s+([A-Za-z]+)", after)
        return bool(m) and m.group(1).casefold() in self.question_words and bool(_PHRASE_END.match(after[m.end():]))

    def _verdict_re_word(self, text: str) -> bool:
        m = re.match(r"\s*([A-Za-z]+(?:\s+[A-Za-z]+)?)", text)
        return bool(m) and any(self._verdict_value(w) for w in (m.group(1), m.group(1).split()[0]))

    def _claim_truth(self, text: str) -> list[Assertion]:
        """"The claim ... is one of the worst examples of a false assumption": a truth word in a
        sentence about the claim is the reflection's verdict on it."""
        out = []
        for sentence in re.finditer(r"[^.!?\n]{1,400}", text):
            s = sentence.group(0)
            if not _CLAIM_WORDS.search(s) or re.search(r"\b(?:whether|if)\b", s, re.IGNORECASE):
                continue
            for m in _TRUTH_WORD.finditer(s):
                if _NOT_BEFORE.search(s, max(0, m.start() - 6), m.start()):
                    continue
                if re.search(r"\b(?:true|false)\s*(?:or|and|/)\s*$", s[:m.start()], re.IGNORECASE):
                    continue
                value = self._word_value(m.group(1))
                if value:
                    out.append(Assertion(value, VERDICT, "verdict on the claim", sentence.start() + m.start()))
        return out

    def _sole_mention(self, text: str) -> list[Assertion]:
        """For options that are names or phrases: a reflection that names exactly one of them (not
        to reject it) has picked it ("the story of Geronimo, a French designer")."""
        norm_text = " " + _norm(text) + " "
        named = [l for l, t in self.option_norm.items() if t and f" {t} " in norm_text]
        if len(named) != 1:
            return []
        letter = named[0]
        raw = next(t for l, t in self.options if l == letter)
        norm = self.option_norm[letter]
        if _canon_int(norm.split(" ")[0]) is not None and len(norm.split()) <= 2 or not self._distinctive(raw, norm):
            return []
        if len(norm.split()) == 1:  # a name: its capital letter must be there too
            pattern = re.compile(rf"(?<!\w){re.escape(raw.strip().strip('.!?'))}(?!\w)")
        else:
            pattern = re.compile(rf"(?<!\w){_words_pattern(norm)}(?!\w)", re.IGNORECASE)
        is_list = "," in raw
        hits = [m for m in pattern.finditer(text)
                if not _NEGATION_NEAR.search(text, max(0, m.start() - 30), m.start())
                and not re.search(r"(?:\(\s*[A-Za-z]\s*\)|\b[A-Z]\))\s*$", text[max(0, m.start() - 6):m.start()])
                and not (is_list and re.match(r"\s*,\s*\w", text[m.end():]))]
        if not hits:
            return []
        return [Assertion(self._label(letter), VERDICT, "the only option named", hits[0].start())]

    @staticmethod
    def _distinctive(raw: str, norm: str) -> bool:
        """A phrase of two words or more, or a capitalised name, is not used in passing."""
        if len(norm.split()) >= 2:
            return True
        return len(norm) >= 4 and raw[:1].isupper() and norm not in _COMMON_WORDS


# The filter's error on the labelled set (tests/data/leak_labels: real reflections of the embedded
# model, labelled by the rules in RULES.md). tests/test_leaks.py re-measures it and fails when this
# record is out of date; the dataset card quotes it.
MEASURED_ERROR = {"rows": 293, "leaks": 42, "keeps": 251, "missed": 0, "false_drops": 0}
LABELLED_SET = "tests/data/leak_labels/labels.jsonl"
