"""reflectevo.portable: no absolute machine path in what we publish."""

from reflectevo.portable import portable_path, portable_paths, portable_text


def test_absolute_paths_become_relative_to_the_root():
    assert portable_path("/home/me/proj/runs/r1", "/home/me/proj") == "runs/r1"
    assert portable_path("/data/bbh", "/home/me/proj") == "../../../data/bbh"
    assert portable_path("runs/r1", "/home/me/proj") == "runs/r1"  # already relative


def test_paths_inside_strings_and_trees():
    root = "/w/main"
    assert portable_text("resume=/w/main/runs/x,chunk_size=64", root) == "resume=runs/x,chunk_size=64"
    assert portable_text("see https://example.org/a/b and 1/2/3", root) == "see https://example.org/a/b and 1/2/3"
    tree = {"adapter": "/w/main/runs/train/one_stage", "n": 3, "list": ["/w/shared/data/bbh", None],
            "/w/main/k": "v", "model": "smollm2-135m-instruct"}
    out = portable_paths(tree, root)
    assert out == {"adapter": "runs/train/one_stage", "n": 3, "list": ["../shared/data/bbh", None],
                   "k": "v", "model": "smollm2-135m-instruct"}
    assert "/w/" not in repr(out)
