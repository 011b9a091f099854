"""The README is a contract with a new user (issue #30, item 2): it stays short, its links lead
somewhere, and the commands it shows are the commands the toolkit has.

Fast (no model is loaded):
* README.md has at most 250 lines;
* every relative link of README.md and docs/*.md reaches an existing file, and its #anchor a
  heading of that file (GitHub's anchor rule);
* every `reflectevo …` and `lm_eval …` command in a shell block of README.md (and of docs/*.md)
  names a subcommand that exists and only options that its `--help` prints; the `reflectevo`
  lm-eval model's `--model_args` keys are options of that model or of the base model, and every
  `--tasks` name is a task or group this project ships;
* the README's quick commands (a `--help`, a leaderboard rebuilt from committed results files)
  run as written, in a folder of their own, and the rebuilt table is the committed one;
* the results table of the README agrees with leaderboards/bbh.md.

The README's three workflows, end to end, are in tests/test_readme_workflows.py (slow).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

# one test worker runs this file: its tests share the --help texts they read (help_text is cached)
pytestmark = pytest.mark.xdist_group("readme_commands")

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_README_LINES = 250
BIN = Path(sys.executable).parent  # the environment running the tests: reflectevo, lm_eval
SHELL_LANGS = {"bash", "sh", "shell"}
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"}
QUICK_SECONDS = 120


# ------------------------------------------------------------------ reading markdown


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, first line number) of every fenced code block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i + 1
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append((lang, "\n".join(body), start + 1))
        i += 1
    return blocks


def without_code(text: str) -> str:
    """The text with fenced blocks and inline code blanked (links inside code are not links)."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
            continue
        out.append(re.sub(r"`[^`]*`", "``", line))
    return "\n".join(out)


def logical_lines(body: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    lines, current = [], ""
    for raw in body.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, leading VAR=value assignments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    for token in lexer:
        if token in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for words in commands:
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def shell_commands(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, logical line, words) of every simple command in the file's shell blocks."""
    found = []
    for lang, body, start in fenced_blocks(path.read_text()):
        if lang not in SHELL_LANGS:
            continue
        for line in logical_lines(body):
            for words in simple_commands(line):
                found.append((start, line, words))
    return found


def program(words: list[str]) -> str:
    return os.path.basename(words[0])


def options_of(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]


# ------------------------------------------------------------------ running commands


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@functools.lru_cache(maxsize=None)
def help_text(argv: tuple[str, ...]) -> tuple[int, str]:
    """`argv --help`: its exit code and text. `reflectevo`'s is asked in this process, from the function
    its console script calls (a process each would import TRL again: seconds per subcommand); the
    README's quick `--help` commands still run as processes (test_the_readme_quick_commands_run_as_written)."""
    if Path(argv[0]) == BIN / "reflectevo":
        import contextlib
        import io

        from reflectevo.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main([*argv[1:], "--help"])
            except SystemExit as stop:
                code = stop.code
        return int(code or 0), out.getvalue()
    proc = subprocess.run([*argv, "--help"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=QUICK_SECONDS)
    return proc.returncode, proc.stdout + proc.stderr


def reflectevo_help(words: list[str]) -> tuple[list[str], str]:
    """The subcommand a `reflectevo …` command names (e.g. ["gen", "run"]) and its --help text."""
    exe = str(BIN / "reflectevo")
    leading = []
    for w in words[1:]:
        if w.startswith("-"):
            break
        leading.append(w)
    if not leading:
        rc, text = help_text((exe,))
        assert rc == 0, text
        return [], text
    rc, text = help_text((exe, leading[0]))
    assert rc == 0, f"`reflectevo {leading[0]}` is not a subcommand:\n{text}"
    if "positional arguments" in text and len(leading) > 1:
        rc, text = help_text((exe, leading[0], leading[1]))
        assert rc == 0, f"`reflectevo {leading[0]} {leading[1]}` is not a subcommand:\n{text}"
        return leading[:2], text
    return leading[:1], text


def lm_eval_help(words: list[str]) -> str:
    sub = words[1] if len(words) > 1 and not words[1].startswith("-") else "run"
    rc, text = help_text((str(BIN / "lm_eval"), sub))
    assert rc == 0, text
    return text


def named_in(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def option_value(words: list[str], option: str) -> str | None:
    for i, w in enumerate(words):
        if w == option and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(option + "="):
            return w.split("=", 1)[1]
    return None


@functools.lru_cache(maxsize=1)
def reflectevo_model_options() -> frozenset:
    """The `--model_args` keys the `reflectevo` lm-eval model reads itself, and `pretrained`, which
    every lm-eval model takes."""
    from harness_plugins import reflect_model

    return frozenset({"pretrained", *reflect_model.OUR_OPTIONS, *reflect_model.ENGINE_OPTIONS,
                      *reflect_model.BASE_ADAPTER_OPTIONS})


@functools.lru_cache(maxsize=1)
def hf_model_options() -> frozenset:
    """Keyword arguments of lm-eval's `hf` model (imported only when a key needs it: seconds)."""
    import inspect

    from lm_eval.models.huggingface import HFLM

    return frozenset(inspect.signature(HFLM.__init__).parameters) - {"self", "kwargs"}


def prefetch_helps(commands: list[list[str]]) -> None:
    """Ask for the --help of every subcommand the commands name, before the checks read them."""
    from concurrent.futures import ThreadPoolExecutor

    exe, wanted = str(BIN / "reflectevo"), set()
    for words in commands:
        if program(words) == "lm_eval":
            sub = words[1] if len(words) > 1 and not words[1].startswith("-") else "run"
            wanted.add((str(BIN / "lm_eval"), sub))
            continue
        leading = [w for w in words[1:3] if not w.startswith("-")]
        if len(leading) == 2 and not words[2].startswith("-"):
            rc, text = help_text((exe, leading[0]))
            if rc == 0 and "positional arguments" in text:
                wanted.add((exe, *leading))
    # lm_eval's in processes, several at a time; reflectevo's one by one in this process (help_text
    # swaps sys.stdout, which threads would share)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(help_text, sorted(w for w in wanted if w[0] != exe)))
    for argv in sorted(w for w in wanted if w[0] == exe):
        help_text(argv)


@functools.lru_cache(maxsize=1)
def shipped_task_names() -> frozenset:
    """Every `task:` and `group:` name of the project's lm-eval task YAMLs."""
    import yaml

    names = set()
    for path in (ROOT / "reflectevo_tasks" / "lm_eval_tasks").rglob("*"):
        if path.is_file() and (path.suffix == ".yaml" or path.name.startswith("_")) and path.suffix != ".py":
            try:
                data = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue
            if isinstance(data, dict):
                for key in ("task", "group"):
                    value = data.get(key)
                    names.update([value] if isinstance(value, str) else [v for v in value or () if isinstance(v, str)])
    return frozenset(names)


def check_command(words: list[str]) -> list[str]:
    """What is wrong with one `reflectevo` / `lm_eval` command (empty: nothing)."""
    problems = []
    if program(words) == "reflectevo":
        sub, text = reflectevo_help(words)
        name = " ".join(["reflectevo", *sub])
    else:
        text, name = lm_eval_help(words), "lm_eval"
    for option in options_of(words):
        if option != "--help" and not named_in(option, text):
            problems.append(f"`{name}` has no option {option} (its --help does not name it)")
    if program(words) == "lm_eval":
        tasks = option_value(words, "--tasks")
        for task in (tasks or "").split(","):
            if task and task.startswith("reflectevo") and task not in shipped_task_names():
                problems.append(f"lm_eval --tasks {task}: no such task or group in reflectevo_tasks/lm_eval_tasks")
        if option_value(words, "--model") == "reflectevo":
            args = dict(kv.split("=", 1) for kv in (option_value(words, "--model_args") or "").split(",") if "=" in kv)
            for key in args:
                if key in reflectevo_model_options() or args.get("base", "hf") != "hf":
                    continue  # another base model takes its own keys
                if key not in hf_model_options():
                    problems.append(f"lm_eval --model reflectevo: unknown model_args key {key}")
    return problems


# ------------------------------------------------------------------ anchors


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").replace("*", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset:
    seen: dict[str, int] = {}
    out = set()
    for line in without_code(path.read_text()).splitlines():
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_anchor(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    for m in re.finditer(r'<a\s+(?:name|id)="([^"]+)"', path.read_text()):
        out.add(m.group(1))
    return frozenset(out)


def links(path: Path) -> list[str]:
    text = without_code(path.read_text())
    return re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)


# ================================================================== tests


def test_readme_has_at_most_250_lines():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/ (the limit is {MAX_README_LINES})"


def test_the_quick_start_keeps_its_two_commands_first():
    """Command (1) runs the main job offline, command (2) the tests: the first two shell blocks."""
    shell = [body for lang, body, _ in fenced_blocks(README.read_text()) if lang in SHELL_LANGS]
    assert shell[0].strip() == ("./scripts/setup-env.sh && REFLECTEVO_BBH_DIR=../shared/data/bbh "
                                ".venv/bin/reflectevo evolve --config demo")
    assert shell[1].strip() == "./scripts/setup-env.sh && REFLECTEVO_BBH_DIR=../shared/data/bbh .venv/bin/pytest"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    assert DOCS, "docs/ has no pages"
    missing = [str(p.relative_to(ROOT)) for p in DOCS if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


def _project_commands(page: Path) -> list[tuple[int, str, list[str]]]:
    return [c for c in shell_commands(page) if program(c[2]) in ("reflectevo", "lm_eval")]


def test_the_readme_names_only_subcommands_and_options_that_exist():
    commands = _project_commands(README)
    prefetch_helps([w for _, _, w in commands])
    assert any(program(w) == "lm_eval" for _, _, w in commands), "the README shows no lm_eval command"
    problems = [f"README.md block at line {n}: {p}\n    {line}" for n, line, words in commands
                for p in check_command(words)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_name_only_subcommands_and_options_that_exist(page):
    prefetch_helps([w for _, _, w in _project_commands(page)])
    problems = [f"{page.relative_to(ROOT)} block at line {n}: {p}\n    {line}" for n, line, words in
                _project_commands(page) for p in check_command(words)]
    assert not problems, "\n".join(problems)


def _quick(words: list[str]) -> bool:
    """A command that finishes in seconds: a --help, or a leaderboard built from committed files."""
    if "--help" in words or "-h" in words:
        return True
    if program(words) == "reflectevo" and words[1:3] == ["leaderboard", "build"]:
        inputs = [w for w in words[3:] if not w.startswith("-") and w != option_value(words, "--output")]
        expanded = [p for w in inputs for p in _braces(w)]
        return bool(expanded) and all((ROOT / p).is_file() for p in expanded)
    return False


def _braces(word: str) -> list[str]:
    m = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not m:
        return [word]
    return [x for part in m.group(1).split(",") for x in _braces(word[:m.start()] + part + word[m.end():])]


def _workspace(tmp_path: Path) -> Path:
    """A folder that looks like the clone (its top-level entries linked) but writes runs/ and
    results/ of its own."""
    work = tmp_path / "clone"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("runs", "results", ".git"):
            (work / entry.name).symlink_to(entry)
    return work


def test_the_readme_quick_commands_run_as_written(tmp_path):
    work = _workspace(tmp_path)
    lines = [line for lang, body, _ in fenced_blocks(README.read_text()) if lang in SHELL_LANGS
             for line in logical_lines(body)]
    quick = []
    for line in dict.fromkeys(lines):
        parts = simple_commands(line)
        if parts and all(program(w) in ("reflectevo", "lm_eval") and _quick(w) for w in parts):
            quick.append(line)
    assert any("--help" in q for q in quick), "the README shows no --help command"
    rebuilds = [q for q in quick if "leaderboard build" in q]
    assert rebuilds, "the README shows no leaderboard rebuilt from committed results files"
    for line in quick:
        proc = subprocess.run(["bash", "-c", line], cwd=work, env=_env(), capture_output=True, text=True,
                              timeout=QUICK_SECONDS)
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    for line in rebuilds:
        out = work / option_value(simple_commands(line)[0], "--output")
        assert out.resolve().is_relative_to(tmp_path.resolve()), f"{line} wrote outside its folder"
        files = {p.name for p in out.iterdir()}
        assert {"bbh.md", "bbh.json", "bbh_comparisons.json", "bbh_t1_t2.png", "bbh_subtask_delta.png"} <= files
        # a rebuild of committed rows gives the committed board's rows again (columns added since aside;
        # the board may hold rows finished after the README's command was written, numbered after them)
        boards = {"leaderboards/measured/": ROOT / "leaderboards", "leaderboards/test-split/rows/": ROOT / "leaderboards" / "test-split"}
        for rows_folder, board in boards.items():
            if rows_folder in line:
                _same_rows(_table(_section(out / "bbh.md", "Rows")), _table(_section(board / "bbh.md", "Rows")), board)


def _same_rows(built: list[list[str]], committed: list[list[str]], board: Path) -> None:
    common = [c for c in committed[0] if c in built[0] and c != "trial 1"]  # 'shared: #1–#N' counts later rows
    assert len(common) >= 8 and 1 < len(built) <= len(committed), (built[0], committed[0])
    for new, old in zip(built[1:], committed[1:]):
        for c in common:
            assert new[built[0].index(c)] == old[committed[0].index(c)], (
                f"row #{old[0]} {c}: rebuilt {new[built[0].index(c)]!r}, {board.relative_to(ROOT)}/bbh.md "
                f"{old[committed[0].index(c)]!r}")


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"{path}: no section {heading}"
    return m.group(1).strip()


def _table(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _results_board() -> Path:
    """The folder of the leaderboard the README's results table shows: the first bbh.md it links."""
    m = re.search(r"\]\(((?:[\w.-]+/)*)bbh\.md\)", _section(README, "Results at a glance"))
    assert m, "the README's results section links no bbh.md"
    return ROOT / m.group(1)


def test_the_readme_results_agree_with_the_leaderboard():
    board = _table(_section(_results_board() / "bbh.md", "Rows"))
    head, body = board[0], {r[0]: r for r in board[1:]}
    readme = _table(_section(README, "Results at a glance"))
    rhead, rows = readme[0], readme[1:]
    assert rows, "the README has no results table"
    for row in rows:
        assert row[0] in body, f"README results row #{row[0]} is not in leaderboards/bbh.md"
        for column in ("Acc@t1", "Acc@t2"):
            ours = row[rhead.index(column)]
            theirs = body[row[0]][head.index(column)].split(" [")[0]
            if ours:  # a line of one comparison may leave a column empty
                assert ours == theirs, f"row #{row[0]} {column}: README {ours}, leaderboards/bbh.md {theirs}"


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _same_p(readme: str, computed: float) -> bool:
    """The README's p-value is the computed one rounded to the README's significant digits."""
    digits = len(readme.lstrip("0.").rstrip()) or 1
    return float(f"{computed:.{digits}g}") == float(readme)


def test_every_readme_comparison_is_a_row_of_the_comparisons_file():
    """Each difference the README states (difference, interval, p, within noise) is the leaderboard's own
    comparison of those two rows, on final answers or on trial 1 where the line says (Acc@t1), on all items or
    without the two-answer subtasks where it says (w/o two-answer)."""
    saved = json.loads((_results_board() / "bbh_comparisons.json").read_text())["comparisons"]
    readme = _table(_section(README, "Results at a glance"))
    head, rows = readme[0], readme[1:]
    checked = 0
    for row in rows:
        against = row[head.index("against")]
        if not against:
            continue
        m = re.match(r"#(\d+)", against)
        assert m, f"README row #{row[0]}: 'against' {against!r} names no row"
        cell = row[head.index("difference [95%]")]
        measure = "trial 1" if "(Acc@t1)" in cell else "final"
        found = [c for c in saved if (c["row"], c["against"], c["measure"]) == (int(row[0]), int(m.group(1)), measure)]
        assert found, f"README row #{row[0]} against #{m.group(1)} ({measure}) is not in bbh_comparisons.json"
        c = found[0]["without_two_answer"] if "(w/o two-answer)" in cell else found[0]
        d, lo, hi = map(_number, re.match(r"(\S+) \[(\S+), (\S+)\]", cell).groups())
        assert abs(d - 100 * c["difference"]) < 0.051, f"row #{row[0]}: difference {d} vs {100 * c['difference']:.2f}"
        assert abs(lo - 100 * c["difference_ci"][0]) < 0.051 and abs(hi - 100 * c["difference_ci"][1]) < 0.051, row[0]
        assert _same_p(row[head.index("p")], c["p_value"]), f"row #{row[0]}: p {row[head.index('p')]} vs {c['p_value']}"
        assert row[head.index("within noise?")] == ("yes" if c["within_noise"] else "no"), row[0]
        checked += 1
    assert checked >= 5
