"""A folder built with replaced_on_success appears whole or not at all."""

import pytest

from reflectevo.atomic_folder import replaced_on_success


def test_success_replaces_the_target_and_failure_leaves_it_alone(tmp_path):
    target = tmp_path / "out"
    with replaced_on_success(target) as work:
        (work / "a.txt").write_text("one")
        assert not target.exists()  # nothing visible until the block ends
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with replaced_on_success(target) as work:
            (work / "a.txt").write_text("half")
            raise RuntimeError("killed half-way")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no scratch folder left behind
    with replaced_on_success(target) as work:
        (work / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
