"""A written maths answer (LaTeX or plain text) read as a structured value.

`parse_answer(text)` turns the text of one final answer ("\\frac{3}{4}", "x = 5", "[2, 5)",
"(-\\infty, 1] \\cup [3, \\infty)", "75,\\!075", "18 \\text{ integers}") into a `Form`:

- ``expr``: one scalar, with a sympy source string built here (None when the scalar uses notation
  we do not translate: it is then compared by its normalised text only);
- ``eq``: an equation that is not a mere "x =" prefix ("10x - 4y - 5z - 20 = 0");
- ``seq``: an ordered, bracketed tuple: a point, a vector, an interval (the brackets are kept);
- ``set``: an unordered collection: a bare list "1, -2", "19 and 43", a set "\\{1, 2\\}", a union
  of intervals, the two values of a "\\pm";
- ``base``: a numeral with a base subscript ("443_5"), compared as written;
- ``text``: a word answer ("\\text{Dana}", "(E)"), compared as lower-case letters and digits.

A text that does not hold exactly one answer raises `NotOneAnswer` with the reason: a hedge (a
top-level "or"), an unfinished expression (unbalanced brackets, a trailing operator), or an
expression too long to be one answer (a model caught in a loop of "+1+1+1...").

Nothing here evaluates anything: the sympy strings are parsed and compared by
`reflectevo_tasks.math_equivalence`, in a worker process under a time limit. The strings hold
only what this module writes (numbers, operators, a fixed list of sympy names, and variables
written `v_<name>`), so they are safe to hand to sympy's parser.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HEDGE, CUT_OFF = "hedge", "cut_off"  # the reasons shared with reflectevo_tasks.answers
OVERLONG = "overlong"  # an expression too long to be one final answer: a model repeating itself
MAX_ANSWER_CHARS = 600  # the longest MATH gold has 60 characters
_MAX_DEPTH = 60  # nesting deeper than this is not translated (and cannot exhaust the stack)


class NotOneAnswer(Exception):
    """The text does not commit to exactly one answer; `reason` is HEDGE, CUT_OFF or OVERLONG."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Untranslatable(Exception):
    """Notation the sympy translation does not cover: the scalar is compared by its text."""


@dataclass(frozen=True)
class Form:
    kind: str  # expr, eq, seq, set, base, text
    key: str  # normalised text: what is compared when values cannot be
    sympy: str | None = None  # expr: the sympy source; eq: the left side
    rhs: str | None = None  # eq: the right side
    items: tuple["Form", ...] = ()  # seq and set
    brackets: str = ""  # seq: the opening and closing bracket, e.g. "[)"

    def to_json(self) -> list:
        """The form as nested lists, as the equivalence worker reads it."""
        return [self.kind, self.key, self.sympy, self.rhs, [i.to_json() for i in self.items], self.brackets]


# ---------------------------------------------------------------- tidying the text

_UNICODE_MATH = str.maketrans({
    "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u00d7": r"\times ", "\u22c5": r"\cdot ", "\u00b7": r"\cdot ",
    "\u00f7": r"\div ", "\u2212": "-", "\u2013": "-", "\u222a": r"\cup ", "\u00b1": r"\pm ", "\u2044": "/",
    "\u2264": r"\le ", "\u2265": r"\ge ", "\u2248": r"\approx ", "\u00b0": r"^\circ ", "\u2032": "'",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ",
})
_SUPERSCRIPT_DIGITS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b",
                                    "0123456789-")
_SUPERSCRIPTS = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207b]+")
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_UNICODE_ROOT = re.compile(r"\u221a\s*(\d+(?:\.\d+)?|[A-Za-z])")
_DELIMITERS = re.compile(r"\$+|\\[()\[\]]")
_SPACING = re.compile(r"\\[!,;:>]|\\(?:quad|qquad|displaystyle|textstyle|scriptstyle|limits)(?![A-Za-z])")
_SIZERS = re.compile(r"\\(?:left|right|middle|[Bb]igg?[lr]?)(?![A-Za-z])\s*(\\?[()\[\]|.]|\\[{}]|\\[lr]?[vV]ert|\\langle|\\rangle)?")
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])")
_PERCENT = re.compile(r"\\?%")
_DOLLAR = re.compile(r"\\\$")
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf|mathit|operatorname)\s*\{([^{}]*)\}")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_THIN_COMMA = re.compile(r"\{,\}")
# words that are maths, not prose: function names and constants written without a backslash
MATH_WORDS = frozenset("sqrt sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp pi infty "
                       "infinity inf".split())
CONNECTORS = frozenset(("and", "or"))
# a unit's power: "\text{ cm}^2", "units^3"
_UNIT_POWER = r"(?:\s*\^\s*(?:\{\s*[23]\s*\}|[23]))?"
_WORD = re.compile(r"(?<![A-Za-z\\])([A-Za-z]{2,})" + _UNIT_POWER)


def fold(text: str) -> str:
    """Unicode compatibility forms folded, invisible characters dropped, maths symbols written
    as their LaTeX commands (superscript digits first: NFKC would make "x²" the product x2)."""
    text = _SUPERSCRIPTS.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPT_DIGITS) + "}", text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).translate(_UNICODE_MATH)
    return _UNICODE_ROOT.sub(r"\\sqrt{\1}", text).replace("\u221a", "\\sqrt")


def _layout_free(text: str) -> str:
    """Delimiters, sizing and spacing commands, `\\dfrac`, degrees, percent and dollar signs
    removed: none of them changes the value of an answer (corpus README, E2 and E3)."""
    text = _DELIMITERS.sub(" ", text)
    text = _BOX.sub(r"\1", text)
    text = _MATRIX.sub(_matrix_as_tuple, text)
    text = _SIZERS.sub(lambda m: _sizer_bracket(m.group(1)), text)
    text = _SPACING.sub("", text).replace("\\ ", " ").replace("~", " ")
    text = _THIN_COMMA.sub(",", text)
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _DEGREES.sub(" ", text)
    text = _PERCENT.sub(" ", text)
    return _DOLLAR.sub(" ", text)


def _sizer_bracket(bracket: str | None) -> str:
    """What a `\\left`/`\\right` leaves behind: its bracket (set braces keep their backslash),
    nothing for the invisible `.`."""
    if not bracket or bracket == ".":
        return " "
    if bracket in ("\\{", "\\}"):
        return bracket
    if bracket.endswith(("vert", "Vert")):
        return "|"
    return {"\\langle": "(", "\\rangle": ")"}.get(bracket, bracket.lstrip("\\"))


def strip_words(text: str) -> tuple[str, str]:
    """(text with its prose words and units removed, the words removed). `\\text{...}` groups are
    read as words; "and"/"or" stay as connectors; a unit's power ("cm^2") goes with it.

    A run of letters counts as a word when it starts the text or follows a space or punctuation;
    letters glued to a number or a bracket ("2xy", "f(x)") are variables."""
    removed: list[str] = []

    for _ in range(3):  # nested text groups
        new = _TEXT_GROUP.sub(r" \1 ", text)
        if new == text:
            break
        text = new

    def word(m: re.Match) -> str:
        w = m.group(1)
        before = text[m.start(1) - 1] if m.start(1) else " "
        if w.lower() in CONNECTORS:
            return f" {w.lower()} "
        if w.lower() in MATH_WORDS or before.isdigit() or before in ")]}^_|":
            return m.group(0)  # a function name, or letters glued to maths: variables
        removed.append(w)
        return " "

    text = _WORD.sub(word, text)
    return text, " ".join(removed)


# ---------------------------------------------------------------- splitting at the top level

_OPEN, _CLOSE = "([{", ")]}"


def _depths(text: str) -> list[int]:
    """How many brackets are open at each character (any shapes pair: intervals mix them)."""
    out, depth = [], 0
    for c in text:
        if c in _CLOSE:
            depth -= 1
        out.append(depth)
        if c in _OPEN:
            depth += 1
    return out


def _balanced(text: str) -> bool:
    """Every bracket closed, and none closed before it was opened."""
    depth = 0
    for c in text:
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _split_top(text: str, pattern: re.Pattern) -> list[str]:
    """Split at the matches of `pattern` that sit outside every bracket."""
    depth_at = _depths(text)
    parts, last = [], 0
    for m in pattern.finditer(text):
        if depth_at[m.start()] == 0:
            parts.append(text[last:m.start()])
            last = m.end()
    parts.append(text[last:])
    return parts


def _outer_pair(text: str) -> tuple[str, str, str] | None:
    """(opening, inside, closing) when one bracket pair encloses the whole text ("(1,2)",
    "[3, 4)", "\\{1, 2\\}"); brackets of different shapes may pair, as intervals do."""
    t = text.strip()
    if t.startswith("\\{") and t.endswith("\\}"):
        inner = t[2:-2]
        return ("{", inner, "}") if _balanced(inner) else None
    if len(t) < 2 or t[0] not in "([" or t[-1] not in ")]":
        return None
    inner = t[1:-1]
    return (t[0], inner, t[-1]) if _balanced(inner) else None


_COMMA = re.compile(r",|;|\band\b|\\\\")
_OR = re.compile(r"\bor\b|\\lor(?![A-Za-z])|\\vee(?![A-Za-z])")
_UNION = re.compile(r"\\cup(?![A-Za-z])|(?<=[)\]])\s*U\s*(?=[(\[])")
_EQUALS = re.compile(r"=|\\approx(?![A-Za-z])")
_PM = re.compile(r"\\pm(?![A-Za-z])|\+-|\+/-")
_THOUSANDS = re.compile(r"(?<![\d.,])(-?\d{1,3}(?:,\d{3})+)(?![\d,]|\.\d)")
_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*?)\\end\{\1\}", re.DOTALL)
_BASE_NUMBER = re.compile(r"-?(?=[0-9A-Fa-f.]*\d)[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]+)?_\{?\s*(\d{1,2})\s*\}?")
_LONE_VARIABLE = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?(?:\([A-Za-z]\))?\s*")
_TRAILING_OPERATOR = re.compile(r"(?:[-+*/^=_]|\\(?:frac|sqrt|cdot|times|div|pm)|\\)\s*$")


def _key(text: str) -> str:
    """The normalised text of an answer: white space only where it parts two letters or digits
    ("1 7" is not "17")."""
    return re.sub(r"(?<=\W) | (?=\W)", "", re.sub(r"\s+", " ", text).strip())


def text_key(text: str) -> str:
    """A word answer's key: lower-case letters and digits only ("\\text{(E)}" and "E" are "e")."""
    return re.sub(r"[^0-9a-z]", "", _TEXT_GROUP.sub(r"\1", text).lower())


def parse_answer(text: str) -> Form:
    """The structured value of one final answer's text. Raises NotOneAnswer."""
    text = fold(text)
    if len(text) > MAX_ANSWER_CHARS:
        raise NotOneAnswer(OVERLONG)
    text = _layout_free(text)
    cleaned, words = strip_words(text)
    if not _has_maths(cleaned):
        number = _number_in_words(words)
        if number is not None:
            return Form("expr", number, number)
        if words:
            return Form("text", text_key(words))
        if not cleaned.strip():
            return Form("text", "")
    _check_finished(cleaned)
    return _structure(cleaned.strip(), depth=0)


def _number_in_words(words: str) -> str | None:
    """"five", "twenty-one": a whole number written in words, read as answers.py reads one."""
    from reflectevo_tasks.answers import _as_number

    return _as_number(words) if words else None


def _has_maths(text: str) -> bool:
    return bool(re.search(r"[0-9]|\\[A-Za-z]|[A-Za-z]", re.sub(r"\b(?:and|or)\b", " ", text)))


def _check_finished(text: str) -> None:
    if not _balanced(text) or _TRAILING_OPERATOR.search(text):
        raise NotOneAnswer(CUT_OFF)


def _structure(text: str, depth: int) -> Form:
    if depth > 8:
        return Form("expr", _key(text))
    if len(_split_top(text, _OR)) > 1:
        raise NotOneAnswer(HEDGE)
    unions = _split_top(text, _UNION)
    if len(unions) > 1:
        parts = tuple(_structure(p.strip(), depth + 1) for p in unions)
        return Form("set", _key(text), items=parts)
    pair = _outer_pair(text)
    if pair:
        opening, inside, closing = pair
        inside = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), inside)
        elements = _split_top(inside, _COMMA)
        if len(elements) > 1 or opening == "{":
            items = tuple(_structure(e.strip(), depth + 1) for e in elements if e.strip())
            if opening == "{":
                return Form("set", _key(text), items=items)
            return Form("seq", _key(text), items=items, brackets=opening + closing)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    elements = [e.strip() for e in _split_top(text, _COMMA)]
    elements = [e for e in elements if e]
    if len(elements) > 1:
        return Form("set", _key(text), items=tuple(_structure(e, depth + 1) for e in elements))
    if not elements:
        return Form("text", "")
    text = elements[0]
    pm = _split_top(text, _PM)
    if len(pm) == 2:
        left, right = pm[0].strip() or "0", pm[1].strip()
        return Form("set", _key(text), items=(_structure(f"{left} + {right}", depth + 1),
                                                _structure(f"{left} - ({right})", depth + 1)))
    return _equation_or_scalar(text)


def _matrix_as_tuple(m: re.Match) -> str:
    """A matrix written as nested tuples: a column or a row vector is the tuple of its entries
    (as a point is), a matrix the tuple of its rows."""
    rows = [r for r in (row.strip() for row in re.split(r"\\\\", m.group(2))) if r]
    cells = [[c.strip() for c in row.split("&")] for row in rows]
    if all(len(r) == 1 for r in cells):
        return "(" + ", ".join(r[0] for r in cells) + ")"
    if len(cells) == 1:
        return "(" + ", ".join(cells[0]) + ")"
    return "(" + ", ".join("(" + ", ".join(r) + ")" for r in cells) + ")"


def _equation_or_scalar(text: str) -> Form:
    """A lone variable before "=" is a prefix ("x = 5" is 5); a chain of sides free of variables
    is a computation whose result is its last side ("2 + 3 = 5" is 5); any other equation is
    kept whole (first and last side)."""
    sides = [s.strip() for s in _split_top(text, _EQUALS)]
    if len(sides) == 1:
        return _scalar(text)
    while len(sides) > 1 and _LONE_VARIABLE.fullmatch(sides[0]):
        sides = sides[1:]
    if len(sides) == 1:
        return _scalar(sides[0])
    if any(not s for s in sides):
        raise NotOneAnswer(CUT_OFF)
    translated = [_try_sympy(s) for s in sides]
    if all(_free_of_variables(s, t) for s, t in zip(sides, translated)):
        return _scalar(sides[-1])
    lhs, rhs = translated[0], translated[-1]
    key = _key(f"{sides[0]}={sides[-1]}")
    if lhs is None or rhs is None:
        return Form("eq", key)
    return Form("eq", key, lhs, rhs)


def _free_of_variables(side: str, translated: str | None) -> bool:
    """Does a side of an equation hold no variable? Read from its translation, else from its
    letters outside commands (e and i are constants)."""
    if translated is not None:
        return "v_" not in translated
    letters = re.sub(r"\\[A-Za-z]+", " ", side)
    letters = re.sub(r"(?<![A-Za-z])(?:" + "|".join(sorted(MATH_WORDS, key=len, reverse=True)) + r")(?![A-Za-z])",
                     " ", letters)
    return not re.search(r"[A-Za-df-hj-z]", letters)


def _scalar(text: str) -> Form:
    if _BASE_NUMBER.fullmatch(text):
        m = _BASE_NUMBER.fullmatch(text)
        digits = text[:text.index("_")].strip().upper()
        return Form("base", f"{digits}_{int(m.group(1))}")
    return Form("expr", _key(text), _try_sympy(text))


def _try_sympy(text: str) -> str | None:
    try:
        return to_sympy(text)
    except (_Untranslatable, RecursionError):
        return None


# ---------------------------------------------------------------- LaTeX scalar -> sympy source

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<cmd>\\[A-Za-z]+|\\[{}|])"
    r"|(?P<letters>[A-Za-z]+)"
    r"|(?P<sym>\*\*|[-+*/^_!()\[\]{}|'=<>:.,]))")
_GREEK = frozenset("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
                   "rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi "
                   "Omega".split())
_FUNCTIONS = {"sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
              "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh",
              "tanh": "tanh", "log": "log", "ln": "log", "exp": "exp", "lg": "log"}
_CONSTANTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "inf": "oo"}
_OPERATORS = {"cdot": "*", "times": "*", "ast": "*", "div": "/"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _Untranslatable(text[pos:pos + 10])
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "letters":
            out.extend(_letter_tokens(value))
        elif kind == "cmd":
            out.append(_command_token(value))
        elif value in ("{", "}"):  # braces group, as parentheses do
            out.append(("sym", "(" if value == "{" else ")"))
        else:
            out.append((kind, value))
    return out


def _letter_tokens(run: str) -> list[tuple[str, str]]:
    """A run of letters: known names ("sqrt", "pi", "sin") where they start, else one variable
    per letter ("xy" is x times y)."""
    out, i = [], 0
    names = sorted(list(_FUNCTIONS) + list(_CONSTANTS) + ["sqrt"], key=len, reverse=True)
    while i < len(run):
        name = next((n for n in names if run.startswith(n, i)), None)
        if name:
            out.append(_command_token("\\" + name))
            i += len(name)
        else:
            out.append(("var", run[i]))
            i += 1
    return out


def _command_token(cmd: str) -> tuple[str, str]:
    name = cmd[1:]
    if name in _FUNCTIONS:
        return ("func", _FUNCTIONS[name])
    if name in _CONSTANTS:
        return ("const", _CONSTANTS[name])
    if name in _OPERATORS:
        return ("sym", _OPERATORS[name])
    if name in _GREEK:
        return ("var", name)
    if name in ("frac", "sqrt", "binom"):
        return ("cmd", name)
    if name in ("{", "}"):
        return ("sym", "(" if name == "{" else ")")
    if name == "|":
        return ("sym", "|")
    raise _Untranslatable(cmd)


def to_sympy(text: str) -> str:
    """The sympy source of one LaTeX or plain-text scalar; raises _Untranslatable."""
    parser = _Parser(_tokens(text))
    out = parser.expression()
    if parser.pos != len(parser.toks):
        raise _Untranslatable(f"stray {parser.toks[parser.pos][1]!r}")
    return out


_ATOM_START = {"num", "var", "const", "func", "cmd"}


class _Parser:
    """Recursive descent over the tokens: sums, products (written or implied), signs, powers,
    factorials, fractions, roots, functions, absolute values.

    LaTeX reading where LaTeX is what was written (`\\frac12` is 1/2, `\\sqrt2x` is sqrt(2)*x);
    plain-text reading elsewhere (`2^10` is 2 to the tenth, `sqrt10` the root of 10). A whole
    number directly followed by a fraction of whole numbers is a mixed number (`3\\frac{3}{8}` is
    27/8), except in an exponent."""

    def __init__(self, toks: list[tuple[str, str]]):
        self.toks, self.pos, self.depth, self.bars, self.exponents = toks, 0, 0, 0, 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] == "sym"

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _Untranslatable("unexpected end")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        if not self.at(value):
            raise _Untranslatable(f"expected {value!r}")
        self.pos += 1

    def expression(self) -> str:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Untranslatable("nested too deep")
        out = self.term()
        while self.at("+") or self.at("-"):
            op = self.take()[1]
            out = f"{out} {op} {self.term()}"
        self.depth -= 1
        return out

    def starts_factor(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        if tok[0] in ("num", "var", "const", "func", "cmd"):
            return True
        return self.at("(") or self.at("[") or (self.at("|") and self.bars == 0)

    def term(self) -> str:
        out = self.signed()
        while True:
            if self.at("*") or self.at("/"):
                op = self.take()[1]
                out = f"({out}){op}({self.signed()})"
            elif self.starts_factor():  # implied multiplication: "2x", "3(x+1)", "2\\sqrt{3}"
                out = f"({out})*({self.power()})"
            else:
                return out

    def signed(self) -> str:
        if self.at("-") or self.at("+"):
            op = self.take()[1]
            inner = self.signed()
            return f"(-({inner}))" if op == "-" else inner
        return self.power()

    def power(self) -> str:
        base = self.postfix()
        if self.at("^") or self.at("**"):
            self.take()
            self.exponents += 1
            try:
                exponent = self.signed_exponent()
            finally:
                self.exponents -= 1
            return f"({base})**({exponent})"
        return base

    def signed_exponent(self) -> str:
        if self.at("-") or self.at("+"):
            op = self.take()[1]
            inner = self.signed_exponent()
            return f"(-({inner}))" if op == "-" else inner
        return self.postfix()

    def postfix(self) -> str:
        out = self.atom()
        while self.at("!"):
            self.take()
            out = f"factorial({out})"
        return out

    def group(self, closing: str) -> str:
        inner = self.expression()
        self.expect(closing)
        return f"({inner})"

    def argument(self) -> str:
        """A LaTeX macro argument: a braced group, else one character (a digit or a letter)."""
        kind, value = self.take()
        if kind == "sym" and value == "(":
            return self.group(")")
        if kind == "num":
            if value[0] == ".":
                raise _Untranslatable("argument '.'")
            if len(value) > 1:  # "\\frac12": the first digit is the argument, the rest comes next
                self.toks[self.pos - 1:self.pos] = [("num", value[0]), ("num", value[1:])]
            return value[0]
        if kind == "var":
            return _variable(value)
        if kind == "const":
            return value
        raise _Untranslatable(f"argument {value!r}")

    def atom(self) -> str:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Untranslatable("nested too deep")
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> str:
        kind, value = self.take()
        if kind == "num":
            return self.mixed_number(value) or value
        if kind == "var":
            return self.subscripted(value)
        if kind == "const":
            return value
        if kind == "func":
            return self.function(value)
        if kind == "cmd":
            if value == "frac":
                return f"(({self.argument()})/({self.argument()}))"
            if value == "binom":
                return f"binomial({self.argument()}, {self.argument()})"
            return self.root()
        if value == "(":
            return self.group(")")
        if value == "[":
            return self.group("]")
        if value == "|" and self.bars == 0:
            self.bars += 1
            inner = self.expression()
            self.bars -= 1
            self.expect("|")
            return f"Abs({inner})"
        raise _Untranslatable(f"unexpected {value!r}")

    def mixed_number(self, whole: str) -> str | None:
        """"3\\frac{3}{8}": a whole number directly followed by a fraction of whole numbers."""
        if "." in whole or self.exponents or self.peek() != ("cmd", "frac"):
            return None
        saved_pos, saved_toks = self.pos, list(self.toks)
        self.take()
        try:
            num, den = self.argument(), self.argument()
        except _Untranslatable:
            num = den = ""
        num, den = num.strip("()"), den.strip("()")
        if num.isdigit() and den.isdigit():
            return f"({whole} + ({num})/({den}))"
        self.pos, self.toks = saved_pos, saved_toks
        return None

    def subscripted(self, name: str) -> str:
        if self.at("_"):
            self.take()
            if self.at("("):
                self.take()
                parts = []
                while self.peek() is not None and not self.at(")"):
                    parts.append(self.take()[1])
                self.expect(")")
                sub = "".join(parts)
            else:
                sub = self.take()[1]
            if not re.fullmatch(r"[A-Za-z0-9]+", sub):
                raise _Untranslatable(f"subscript {sub!r}")
            return _variable(f"{name}_{sub}")
        if self.at("'"):
            raise _Untranslatable("prime")
        return _variable(name)

    def root(self) -> str:
        index = None
        if self.at("["):
            self.take()
            index = self.expression()
            self.expect("]")
        tok = self.peek()
        if tok is not None and tok[0] == "num" and "." not in tok[1]:
            # "\\sqrt 10", "sqrt10": a reader takes the whole number under the root
            radicand = self.take()[1]
        else:
            radicand = self.argument()
        return f"sqrt({radicand})" if index is None else f"(({radicand})**(1/({index})))"

    def function(self, name: str) -> str:
        power = base = None
        while True:
            if self.at("^") and power is None:
                self.take()
                power = self.signed_exponent()
            elif self.at("_") and name == "log" and base is None:
                self.take()
                base = self.argument()
            else:
                break
        if self.peek() is None:
            raise _Untranslatable(f"{name} without an argument")
        if self.at("("):
            self.take()
            arg = self.group(")")
        else:  # "\\sin 2x": the factors that follow, up to the next operator or function
            arg = self.power()
            while self.peek() is not None and self.peek()[0] in ("num", "var", "const"):
                arg = f"({arg})*({self.power()})"
        call = f"log({arg}, {base})" if base is not None else f"{name}({arg})"
        return f"({call})**({power})" if power is not None else call


_RESERVED = {"e": "E", "i": "I"}


def _variable(name: str) -> str:
    """e and i are Euler's number and the imaginary unit; every other name is a variable."""
    if name in _RESERVED:
        return _RESERVED[name]
    return "v_" + name
