"""Column-mapped user datasets: good rows kept, bad rows rejected one by one with file and row."""

import json

import pytest

from reflectevo.errors import UserError
from reflectevo_tasks import answers as A
from reflectevo_tasks.custom import DatasetSpec, load_custom
from reflectevo_tasks.sources import load_questions


def _write(tmp_path, rows, spec_extra=""):
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"name: mine\npath: {data}\ncolumns: {{question: q, answer: a}}\n{spec_extra}")
    return data, spec


def test_bad_rows_rejected_with_file_and_row_rest_kept(tmp_path):
    rows = [{"q": "2+2?", "a": 4}, {"q": "", "a": "1"}, {"a": "3"}, {"q": 7, "a": "1"}, "{torn", {"q": "10-1?", "a": "9"}]
    data, spec = _write(tmp_path, rows)
    rep = load_questions(str(spec))
    assert [q.index for q in rep.questions] == [0, 5]
    assert all(q.kind == A.INTEGER for q in rep.questions)
    assert rep.questions[0].answer == "4" and rep.questions[0].id == "custom/mine/0"
    assert len(rep.rejected) == 4
    for row, needle in zip((2, 3, 4, 5), ("empty question", "missing field 'q'", "must be a string", "not valid JSON")):
        assert any(m.startswith(f"{data}: row {row}: ") and needle in m for m in rep.rejected), (row, rep.rejected)


def test_choices_column_renders_bbh_style(tmp_path):
    rows = [{"q": "Pick the prime.", "a": "7", "c": ["4", "6", "7"]}, {"q": "Pick 1.", "a": 0, "c": ["1", "2"]}]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    rep = load_custom(DatasetSpec(name="mc", path=str(data), columns={"question": "q", "answer": "a", "choices": "c"}))
    q0, q1 = rep.questions
    assert q0.kind == A.CHOICE and q0.answer == "(C)" and "Options:\n(A) 4\n(B) 6\n(C) 7" in q0.question
    assert q1.answer == "(A)"
    assert A.score("So the answer is (C).", q0.answer, q0.spec).correct


def test_spec_errors_are_clear(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("path: x.jsonl\ncolums: {}\n")
    with pytest.raises(UserError, match="s.yaml: unknown keys"):
        load_questions(str(spec))
    spec.write_text(f"path: {tmp_path}/missing.jsonl\n")
    with pytest.raises(UserError, match="missing.jsonl: cannot load dataset"):
        load_questions(str(spec))
    with pytest.raises(UserError, match="unknown question source"):
        load_questions("nonsense")


def test_answer_kinds_filter_comes_before_the_limit(tmp_path, bbh_dir):
    # a user dataset has one answer kind (guessed from its answers, here integer): all or nothing
    _, spec = _write(tmp_path, [{"q": "2+2?", "a": 4}, {"q": "", "a": 1}, {"q": "3+3?", "a": 6}, {"q": "1+0?", "a": 1}])
    kept = load_questions(str(spec), limit=2, kinds="integer,yes_no")
    assert [q.index for q in kept.questions] == [0, 2] and len(kept.rejected) == 1
    assert load_questions(str(spec), kinds="yes_no").questions == []
    # BBH's generation pool: --limit counts kept questions only, in the pool's order
    pool = load_questions("bbh-pool", limit=40, bbh_dir=bbh_dir, kinds="choice,yes_no").questions
    assert len(pool) == 40 and {q.kind for q in pool} == {A.CHOICE, A.YES_NO}
    everything = load_questions("bbh-pool", limit=400, bbh_dir=bbh_dir).questions
    assert [q.id for q in pool] == [q.id for q in everything if q.kind in (A.CHOICE, A.YES_NO)][:40]
    bbh_only = load_questions("bbh:navigate,date_understanding", bbh_dir=bbh_dir, kinds="yes_no").questions
    assert bbh_only and all(q.source == "bbh/navigate" for q in bbh_only)


def test_unknown_answer_kind_is_one_clear_error(tmp_path):
    from reflectevo_gen.config import GenConfig

    with pytest.raises(UserError, match="--answer_kinds: unknown kind\\(s\\) multiple_choice; expected some of choice"):
        load_questions("bbh-pool", kinds="choice,multiple_choice")
    with pytest.raises(UserError, match="--answer_kinds: unknown kind"):
        GenConfig(output=str(tmp_path), answer_kinds="mcq").check()


def test_gen_identity_unchanged_unless_answer_kinds_or_ids_are_set(tmp_path):
    """Runs started before the options existed must still resume: their identity has no such key."""
    from reflectevo_gen.config import GenConfig

    assert "answer_kinds" not in GenConfig().identity() and "question_ids" not in GenConfig().identity()
    assert GenConfig(answer_kinds="choice").identity()["answer_kinds"] == "choice"
    assert GenConfig(answer_kinds="choice").identity_hash() != GenConfig().identity_hash()
    # the ids count, not how they were given: a list file edited between runs changes the identity
    listed = tmp_path / "ids.txt"
    listed.write_text("b/2\na/1\n")
    assert GenConfig(question_ids=f"@{listed}").identity() == GenConfig(question_ids="a/1, b/2").identity()
    before = GenConfig(question_ids=f"@{listed}").identity_hash()
    listed.write_text("a/1\n")
    assert GenConfig(question_ids=f"@{listed}").identity_hash() != before
    # a --limit that keeps every listed question makes the same records as none
    assert GenConfig(question_ids="a/1,b/2", limit=2).identity() == GenConfig(question_ids="a/1,b/2").identity()
    assert GenConfig(question_ids="a/1,b/2", limit=1).identity() != GenConfig(question_ids="a/1,b/2").identity()


def test_question_ids_keep_those_questions_in_source_order(tmp_path, bbh_dir):
    _, spec = _write(tmp_path, [{"q": "2+2?", "a": 4}, {"q": "", "a": 1}, {"q": "3+3?", "a": 6}, {"q": "1+0?", "a": 1}])
    got = load_questions(str(spec), ids="custom/mine/3,custom/mine/0")
    assert [q.index for q in got.questions] == [0, 3] and len(got.rejected) == 1
    assert [q.index for q in load_questions(str(spec), limit=1, ids="custom/mine/3,custom/mine/2").questions] == [2]
    pool = load_questions("bbh-pool", limit=300, bbh_dir=bbh_dir).questions
    listed = tmp_path / "ids.txt"
    listed.write_text(f"# a comment line\n{pool[250].id}\n\n{pool[7].id}\n")
    assert [q.id for q in load_questions("bbh-pool", bbh_dir=bbh_dir, ids=f"@{listed}").questions] == [pool[7].id, pool[250].id]
    # with a kinds filter too, both must hold
    kind = pool[7].kind
    other = next(k for k in A.KINDS if k != kind)
    with pytest.raises(UserError, match=f"--question_ids: 1 id\\(s\\) not in source 'bbh-pool' with answer kinds {other}: {pool[7].id}"):
        load_questions("bbh-pool", bbh_dir=bbh_dir, ids=pool[7].id, kinds=other)


def test_unknown_question_ids_and_unreadable_lists_are_one_clear_error(tmp_path, bbh_dir):
    from reflectevo_gen.config import GenConfig

    _, spec = _write(tmp_path, [{"q": "2+2?", "a": 4}])
    with pytest.raises(UserError, match=r"--question_ids: 2 id\(s\) not in source '.*mine.yaml': custom/mine/7, nope"):
        load_questions(str(spec), ids="custom/mine/0,custom/mine/7,nope")
    with pytest.raises(UserError, match=r"--question_ids: cannot read .*missing.txt"):
        GenConfig(output=str(tmp_path), question_ids=f"@{tmp_path / 'missing.txt'}").check()
    (tmp_path / "empty.txt").write_text("# nothing here\n\n")
    with pytest.raises(UserError, match=r"--question_ids: .*empty.txt lists no question id"):
        load_questions(str(spec), ids=f"@{tmp_path / 'empty.txt'}")
