"""The `math` answer kind: the final answer of a worked solution, compared with the gold by value.

Reading (tests/data/math_corpus/README.md has the rules in checkable form):

- STRICT reads only answers the reply marks as final. Boxed answers (`\\boxed{...}`, `\\fbox{...}`,
  nested braces allowed) come first: every box states the final answer, so all of them must agree
  in value, otherwise the reply is no answer (BOXES_DIFFER). A reply without a box is read at its
  answer statements, after the markers `reflectevo_tasks.answers` uses ("the answer is",
  "answer:", "final answer ="): the last statement that names an expression decides.
- FLEXIBLE returns strict's reading whenever there is one (a refusal included); otherwise it
  reads the last committed expression of the reply: the last expression of its last sentence
  (or line) that holds one.

Either way the answer must be exactly one: two values joined by "or" (HEDGE), an expression cut
off by the end of the reply or left unfinished (CUT_OFF: unbalanced brackets, a trailing
operator, an open `$` or box), and a value only ruled out ("not 5", NEGATED) are no answer.

The answer text is then read as a structured value (`reflectevo_tasks.math_latex`: units, `\\$`,
degrees, percent signs, "x =" prefixes and layout dropped; lists, tuples, intervals, sets,
equations kept apart) and compared with the gold by `reflectevo_tasks.math_equivalence` (sympy,
in a worker process under a time limit; an overrun is "not equal", with the reason in
`Verdict.note`).

Never raises on any reply, and runs in time linear in the reply's length (replies are read from
their last `answers._MAX_SCAN` characters).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from reflectevo_tasks import answers as A
from reflectevo_tasks.math_equivalence import same_answer
from reflectevo_tasks.math_latex import CUT_OFF, HEDGE, Form, NotOneAnswer, fold, parse_answer

BOXES_DIFFER = "boxes_differ"  # two boxed answers of different value: the reply named two
NEGATED = A.NEGATED

_MAX_BOX = 2_000  # a box's content is at most this long (a longer one is read as cut off)
_MAX_UNIT = 2_000  # a statement or sentence is read up to this many characters
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BOX_TOKEN = re.compile(r"-?\d+(?:\.\d+)?|\\[A-Za-z]+|[^\s$]?")  # "\boxed 5": a number, a command or a character
_BOLD = re.compile(r"(?<![\w)])\*\*|\*\*(?![\w(])|`|__")


@dataclass(frozen=True)
class _Reading:
    """What one statement commits to: an answer (its form), a refusal, or nothing at all."""

    form: Form | None = None
    refusal: str | None = None

    @property
    def empty(self) -> bool:
        return self.form is None and self.refusal is None


_NOTHING = _Reading()


# ---------------------------------------------------------------- boxes

@dataclass(frozen=True)
class _Box:
    content: str
    closed: bool


def _boxes(text: str) -> list[_Box]:
    """The boxed answers in reading order. An unclosed box runs to the end of the text, so it is
    the last one."""
    found, pos = [], 0
    while True:
        m = _BOX.search(text, pos)
        if not m:
            return found
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text):  # the reply stops right after "\boxed"
            found.append(_Box("", closed=False))
            return found
        if text[i] == "{":
            end = _matching_brace(text, i)
            if end is None:
                found.append(_Box(text[i + 1:i + 1 + _MAX_BOX], closed=False))
                return found
            found.append(_Box(text[i + 1:end], closed=True))
            pos = end + 1
        else:  # "\boxed 5": the next token
            token = _BOX_TOKEN.match(text, i).group(0)
            found.append(_Box(token, closed=True))
            pos = i + len(token)


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    for i in range(start, min(len(text), start + _MAX_BOX + 2)):
        c = text[i]
        if c == "\\":
            continue
        if c == "{" and text[i - 1] != "\\":
            depth += 1
        elif c == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return i
    return None


def _read_boxes(boxes: list[_Box]) -> _Reading:
    stated = [b for b in boxes if b.content.strip() or not b.closed]
    if not stated:
        return _NOTHING
    if not stated[-1].closed:
        return _Reading(refusal=CUT_OFF)
    forms = []
    for content in list(dict.fromkeys(b.content for b in reversed(stated)))[::-1]:  # a repeated box is read once
        try:
            form = parse_answer(content)
        except NotOneAnswer as refusal:
            return _Reading(refusal=refusal.reason)
        if form.key:
            forms.append(form)
    if not forms:
        return _NOTHING
    last = forms[-1]
    if any(not same_answer(f, last).equal for f in forms[:-1]):
        return _Reading(refusal=BOXES_DIFFER)
    return _Reading(last)


# ---------------------------------------------------------------- statements and sentences

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_MATH_OPEN = re.compile(r"\$\$|\$|\\\(|\\\[")
_MATH_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


def _math_spans(text: str) -> list[tuple[int, int, int, int, bool]]:
    """(start, end, content start, content end, closed) of each `$..$`, `$$..$$`, `\\(..\\)` and
    `\\[..\\]` span, in order. An unclosed span runs to the end; an inline `$..$` never runs past
    a blank line (Markdown ends it there), so one stray `$` does not swallow the reply."""
    blanks = [m.start() for m in _BLANK_LINE.finditer(text)]
    spans, pos = [], 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if not m:
            return spans
        if m.start() and text[m.start() - 1] == "\\":  # "\$" is a dollar sign
            pos = m.end()
            continue
        closing = _MATH_CLOSE[m.group(0)]
        end = text.find(closing, m.end())
        while end > 0 and closing == "$" and text[end - 1] == "\\":
            end = text.find(closing, end + 1)
        limit = len(text)
        if closing == "$":
            k = bisect.bisect_left(blanks, m.end())
            limit = blanks[k] if k < len(blanks) else len(text)
        if end < 0 or end > limit:
            spans.append((m.start(), limit, m.end(), limit, False))
            if limit == len(text):
                return spans
            pos = limit
            continue
        spans.append((m.start(), end + len(closing), m.end(), end, True))
        pos = end + len(closing)


_NON_SPACE = re.compile(r"\S")
_ITEM_NUMBER = re.compile(r"\s*[-*#>]*\s*(?:step\s*)?\d{1,3}", re.IGNORECASE)
_ELLIPSIS_GOES_ON = re.compile(r"\.\.\.[ \t]*[-+*/=,\\0-9]")  # "1 + 2 + ... + 10": the expression goes on
# a "!" right after a digit or a bracket is a factorial ("7! + 8!"), not the end of a sentence
_ENDING = re.compile(r"\.(?=\s|$)|(?<![0-9)}\]])!(?=\s|$)|\?(?=\s|$)|\n")


def _sentence_ends(text: str, spans) -> list[int]:
    """Where the sentences of `text` end: at `.`, `!`, `?` before white space or the end, and at
    a line break, outside maths and braces. The full stop of an abbreviation ("e.g.") or of a
    list item's number ("3. ...") ends nothing. One pass over the text."""
    ends, start = [], 0
    span_index, depth, counted = 0, 0, 0
    for m in _ENDING.finditer(text):
        i = m.start()
        while span_index < len(spans) and spans[span_index][1] <= i:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= i:
            continue  # inside maths
        depth = max(0, depth + text.count("{", counted, i) - text.count("}", counted, i))
        counted = i
        if depth:
            continue
        if m.group(0) == "." and (_ITEM_NUMBER.fullmatch(text, start, i)
                                  or A._ABBREVIATION.search(text, max(start, i - 8), i + 1)
                                  or _ELLIPSIS_GOES_ON.match(text, i - 2)):
            continue
        ends.append(m.end())
        start = m.end()
    return ends


def _statement(text: str, pos: int) -> str:
    """The answer statement after a marker ending at `pos`: the rest of its sentence, or the
    next non-empty line when the marker ends its line; a display that opens there runs to its
    end."""
    m = _NON_SPACE.search(text, pos)
    if not m:
        return ""
    chunk = text[m.start():m.start() + _MAX_UNIT]
    spans = _math_spans(chunk)
    for end in _sentence_ends(chunk, spans):
        if chunk[:end].strip():
            return chunk[:end]
    return chunk


def _units(text: str) -> list[tuple[str, bool]]:
    """The sentences of the reply (lines, and sentences within them) in reading order, each with
    whether it opens a line."""
    spans = _math_spans(text)
    units, start = [], 0
    for end in _sentence_ends(text, spans) + [len(text)]:
        if text[start:end].strip():
            units.append((text[start:end], start == 0 or text[start - 1] == "\n"))
        start = end
    return units


# ---------------------------------------------------------------- expressions inside a unit

_PLAIN_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<text>\\(?:text|textbf|mbox|mathrm)\s*\{[^{}]*\})"
    r"|(?P<cmd>\\[A-Za-z]+|\\[{}])"
    r"|(?P<num>\d+(?:[.,]\d+)*)"
    r"|(?P<word>[A-Za-z]{2,}(?:'[a-z]+)?)"
    r"|(?P<letter>[A-Za-z])"
    r"|(?P<dots>\.\.\.)"  # an ellipsis inside an expression: "1 + 2 + ... + 10"
    r"|(?P<op>[-+*/^_=<>|!]|[()\[\]{}])"
    r"|(?P<punct>[,;:.?'\"])"
    r"|(?P<other>.)", re.DOTALL)
_NAMES_VALUE = re.compile(r"[0-9\\+\-*/^=<>!|]")  # a digit, a command or an operator
# letter styles, accents and figure signs: `$\mathbf{a}$`, `$\overline{AB}$`, `$\triangle ACD$` are names
_DECORATION = re.compile(r"\\(?:mathbf|mathrm|mathit|mathcal|mathbb|boldsymbol|vec|overline|overrightarrow|hat|bar"
                         r"|tilde|text|textbf|operatorname|triangle|angle|measuredangle)(?![A-Za-z])|[{}\s]")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s*$")
_MATH_WORDS = frozenset("sqrt pi infty sin cos tan log ln exp".split())
_NEGATIONS = frozenset("not isn't isnt never cannot can't".split())
_NUMBERING = frozenset(("step", "case", "part", "line", "problem", "question", "example", "equation"))


@dataclass
class _Run:
    """A stretch of maths in a unit: a `$..$` span, or plain tokens between prose words."""

    text: str
    closed: bool = True  # False: a `$..$` span the unit ends inside
    before: str = ""  # the prose word just before it
    joined_by: str = ""  # "and", "or" or "," to the run before it; "" when prose stands between


class _RunScanner:
    """Cuts a unit into runs of maths, keeping what joins each run to the one before it.

    Prose words end a run; "and", "or" and commas join runs into one answer ("1, 2 and 3"); runs
    with nothing but space between them are one expression ("$\\frac{7}{2}$ = 3.5"). "Step 3" and
    a "3." opening a line are numbering, not maths. A plain run counts only if it holds a number,
    a LaTeX command or a maths word ("sqrt", "pi")."""

    def __init__(self, line_start: bool, fallback: bool):
        self.fallback = fallback
        self.prose_after = False  # a prose word follows the last run
        self.runs: list[_Run] = []
        self.join = ""  # what stands since the last run: "" (prose), "next" (space), ",", "and", "or"
        self.last_word = ""
        self.current: list[str] = []
        self.written = False  # the current run holds more than spaces
        self.candidate = False
        self.line_start = line_start

    def span(self, content: str, closed: bool) -> None:
        self.flush()
        if self.fallback and closed and not _NAMES_VALUE.search(_DECORATION.sub("", content)):
            self.prose("")  # "$ABCD$", "$h$": in running text a name, not a value
        elif content.strip():
            self.add(_Run(content, closed))

    def add(self, run: _Run) -> None:
        if self.runs and self.join == "next":  # one expression, written partly inside `$..$`
            last = self.runs[-1]
            last.text, last.closed = f"{last.text} {run.text}", run.closed
        else:
            run.before = self.last_word
            run.joined_by = self.join if self.runs else ""
            self.runs.append(run)
        self.join, self.line_start, self.prose_after = "next", False, False

    def flush(self) -> None:
        body = "".join(self.current).strip().lstrip(",;").rstrip(".,;:?").strip()
        if body.endswith("!") and not re.search(r"[0-9)}\]]!$", body):
            body = body[:-1].strip()  # an exclamation mark; after a number it is a factorial
        if body and self.candidate:
            self.add(_Run(body))
        self.current, self.written, self.candidate = [], False, False

    def prose(self, word: str) -> None:
        self.flush()
        if word in ("and", "or"):
            if self.join:
                self.join = "or" if "or" in (word, self.join) else "and"
        else:
            self.join, self.last_word = "", word or self.last_word
        self.line_start, self.prose_after = False, True

    def plain(self, text: str) -> None:
        tokens = [(m.lastgroup, m.group(0)) for m in _PLAIN_TOKEN.finditer(text)]
        for i, (kind, value) in enumerate(tokens):
            if kind == "word" and value.lower() not in _MATH_WORDS and not _letters_are_maths(tokens, i):
                self.prose(value.lower())
            elif kind == "letter" and not _letter_is_maths(tokens, i):
                self.prose(value.lower())
            elif kind == "num" and self.numbering(tokens, i):
                self.flush()
                self.join = ""
            elif kind == "punct" and value != ",":
                self.flush()
                self.join = ""
            else:
                if value == "," and self.join == "next" and not self.candidate:
                    self.join = ","
                self.current.append(value)
                self.written = self.written or kind != "space"
                if kind in ("num", "cmd") or kind == "word":
                    self.candidate = self.candidate or value not in ("\\{", "\\}")
            if kind != "space" and value not in ("*", "#", "-", ">"):  # markdown may open a line
                self.line_start = False

    def numbering(self, tokens, i: int) -> bool:
        """"Step 3", and a "3." or "3)" opening a line."""
        if self.last_word in _NUMBERING and not self.written:
            return True
        if self.line_start and not self.written and not self.runs:
            after = tokens[i + 1:i + 3]
            return bool(after) and after[0][1] in (".", ")", ":") and (len(after) < 2 or after[1][0] == "space")
        return False


def _scan(unit: str, line_start: bool, fallback: bool) -> _RunScanner:
    scanner = _RunScanner(line_start, fallback)
    pos = 0
    for start, end, inner_start, inner_end, closed in _math_spans(unit):
        scanner.plain(unit[pos:start])
        scanner.span(unit[inner_start:inner_end], closed)
        pos = end
    scanner.plain(unit[pos:])
    scanner.flush()
    return scanner


def _letters_are_maths(tokens, i: int) -> bool:
    """Letters written together outside `$..$` ("ax^2 + bx + c", "2xy") are variables when they
    touch maths: glued to a digit, `^`, `_` or a bracket, or standing between two arithmetic
    operators. Otherwise they are a word ("is -5", "equals = 5")."""
    before = tokens[i - 1] if i else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if (before and (before[0] == "num" or before[1] in ")]}^_")) or (after and after[1] in ("^", "_")):
        return True
    left, right = _neighbour(tokens, i, -1), _neighbour(tokens, i, 1)
    return left in _ARITHMETIC and right in _ARITHMETIC and (left, right) != ("=", "=")


def _neighbour(tokens, i: int, step: int) -> str:
    """The nearest token beyond spaces, as text ("" at the ends)."""
    j = i + step
    while 0 <= j < len(tokens) and tokens[j][0] == "space":
        j += step
    return tokens[j][1] if 0 <= j < len(tokens) else ""


_ARITHMETIC = ("+", "-", "*", "/", "=")


def _letter_is_maths(tokens, i: int) -> bool:
    """A single letter outside `$..$` is a variable when it touches maths: a digit, operator or
    command right beside it ("2x", "x^2") or an operator beyond a space ("x = 5")."""
    for step in (-1, 1):
        j = i + step
        if not 0 <= j < len(tokens):
            continue
        kind, value = tokens[j]
        if kind in ("num", "op", "cmd"):
            return True
        k = j + step
        if kind == "space" and 0 <= k < len(tokens) and tokens[k][0] == "op" and tokens[k][1] in "=+-*/^<>":
            return True
    return False


def _group(runs: list[_Run], last: bool) -> list[_Run]:
    """The runs that form one answer: joined by "and", "or" or commas. At a marker statement the
    first such group, in the fallback the last one."""
    if not runs:
        return []
    groups: list[list[_Run]] = []
    for run in runs:
        if groups and run.joined_by:
            groups[-1].append(run)
        else:
            groups.append([run])
    return groups[-1] if last else groups[0]


def _read_unit(unit: str, last: bool, line_start: bool = True, ends_reply: bool = False) -> _Reading:
    """What a unit commits to: at a marker (last=False) its first answer, in the fallback
    (last=True) its last one. The fallback does not credit the reply's last sentence when the reply
    stops in its prose, after its last answer: the sentence never ended ("... is given by the")."""
    scanner = _scan(unit, line_start, fallback=last)
    group = _group(scanner.runs, last)
    if not group:
        return _NOTHING
    if ends_reply and scanner.prose_after and not _SENTENCE_END.search(unit):
        return _Reading(refusal=CUT_OFF)
    if group[0].before in _NEGATIONS:
        return _Reading(refusal=NEGATED)
    if any(r.joined_by == "or" for r in group[1:]):
        return _Reading(refusal=HEDGE)
    if not group[-1].closed:
        return _Reading(refusal=CUT_OFF)
    text = ", ".join(r.text for r in group)
    try:
        form = parse_answer(text)
    except NotOneAnswer as refusal:
        return _Reading(refusal=refusal.reason)
    return _Reading(form) if form.key else _NOTHING


# ---------------------------------------------------------------- the reply

def _prepare(reply) -> str:
    text = reply if isinstance(reply, str) else str(reply or "")
    text = fold(text[-A._MAX_SCAN:])
    return _BOLD.sub("", text)


def _read(reply, level: str) -> tuple[A.Extraction, Form | None]:
    text = _prepare(reply)
    reading = _read_boxes(_boxes(text))
    if not reading.empty:
        return _extraction(reading, "marker")
    markers = list(A._MARKER.finditer(text))
    for marker in reversed(markers[-A._MAX_MARKERS:]):
        statement = _statement(text, marker.end())
        reading = _read_unit(statement, last=False, line_start=False) if statement else _NOTHING
        if not reading.empty:
            return _extraction(reading, "marker")
    if level == A.STRICT:
        return A.Extraction(None, "none"), None
    units = _units(text)
    for i in range(len(units) - 1, -1, -1):
        unit, line_start = units[i]
        reading = _read_unit(unit, last=True, line_start=line_start, ends_reply=i == len(units) - 1)
        if not reading.empty:
            return _extraction(reading, "fallback")
    return A.Extraction(None, "none"), None


def _extraction(reading: _Reading, method: str) -> tuple[A.Extraction, Form | None]:
    if reading.form is None:
        return A.Extraction(None, method, reading.refusal), None
    return A.Extraction(reading.form.key, method), reading.form


def extract(reply, level: str) -> A.Extraction:
    """The final answer of a reply at `level`, as `reflectevo_tasks.answers.extract` returns it."""
    return _read(reply, level)[0]


def gold_form(gold: str) -> Form:
    """The gold answer's structured value; a gold that does not parse is compared as text."""
    text = str(gold)
    try:
        return parse_answer(text)
    except NotOneAnswer:
        return Form("expr", re.sub(r"\s+", "", text))


def canonical_gold(gold: str) -> str:
    return gold_form(gold).key


def score(reply, gold: str, level: str) -> A.Verdict:
    """Read the final answer at `level` and compare it with `gold` by value."""
    try:
        ex, form = _read(reply, level)
    except Exception:  # pragma: no cover - a scorer must not take a whole run down
        ex, form = A.Extraction(None, "none"), None
    gold_f = gold_form(gold)
    if form is None:
        return A.Verdict(A.NO_ANSWER, None, gold_f.key, ex.method, 0.0, level, ex.refusal)
    comparison = same_answer(form, gold_f)
    outcome = A.CORRECT if comparison.equal else A.WRONG
    return A.Verdict(outcome, ex.answer, gold_f.key, ex.method, 0.0, level, note=comparison.reason)
