"""Going on with an interrupted training run (`reflectevo train ... --resume true`).

A run on a CPU, or on a preemptible GPU, can be stopped before it ends. With a `--save_strategy`
that writes checkpoints, `--resume true` picks it up in the same output folder: the stages it
finished are reused (their saved adapter and their recorded metrics), and the stage it was in goes on
from its newest complete checkpoint, so that the result is the one an uninterrupted run gives.

Resuming is refused, with the options that differ, when the folder was begun by another run: other
options, other data or another starting adapter. A fresh run (without --resume) clears the
checkpoints and stage marks an earlier run left in its folder, so that a later resume cannot pick
them up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reflectevo.errors import UserError

IDENTITY_FILE = "run_identity.json"
STAGE_DONE_FILE = "stage_done.json"
# options that say how a run is carried out or published, not what it trains
VOLATILE = {"resume", "resume_from_checkpoint", "output_dir", "push_to_repo", "push_tag", "push_private",
            "hub_endpoint", "logging_steps", "save_strategy", "save_steps", "save_total_limit", "report_to"}


def identity(run, source: dict, init) -> dict:
    """What the run trains: setting, options (those set by a recipe or on the command line), data and
    starting adapter by content, not by where they were read from."""
    return {"setting": run.setting.name,
            "options": {k: v for k, v in sorted(run.recipe.items()) if k not in VOLATILE},
            "data": {k: v for k, v in sorted(source.items()) if k not in ("path", "location")},
            "init_adapter": None if init is None else {"sha": init.sha, "revision": init.revision}}


def begin(out_dir: str, ident: dict, resume: bool, clear: bool, write: bool) -> None:
    """Check a resumed run against the one that began the folder, or (`clear`: a fresh run, not given a
    checkpoint of its own) clear what an earlier run left there; then record this run's identity
    (`write`: this process is the one that writes files)."""
    folder = Path(out_dir)
    path = folder / IDENTITY_FILE
    if resume and path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise UserError(f"{path}: not valid JSON; remove the folder to start afresh") from None
        differ = _differences(before, ident)
        if differ:
            raise UserError(f"--resume: {out_dir} was begun by another run ({'; '.join(differ)}); give the "
                            "options it began with, or another --output_dir")
    elif clear and write:
        for stale in _stage_folders(folder):
            for ckpt in stale.glob("checkpoint-*"):
                shutil.rmtree(ckpt, ignore_errors=True)
            (stale / STAGE_DONE_FILE).unlink(missing_ok=True)
    if write:
        from reflectevo.hub.store import atomic_write

        atomic_write(str(path), json.dumps(ident, indent=1, sort_keys=True).encode("utf-8"))


def _stage_folders(folder: Path) -> list[Path]:
    return [folder, *(p for p in folder.glob("stage*") if p.is_dir())] if folder.is_dir() else []


def _differences(before: dict, now: dict) -> list[str]:
    out = []
    for key in ("setting", "data", "init_adapter"):
        if before.get(key) != now.get(key):
            out.append(f"{key}: {before.get(key)} then, {now.get(key)} now")
    a, b = before.get("options") or {}, now.get("options") or {}
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append(f"--{k}: {a.get(k, '(not set)')} then, {b.get(k, '(not set)')} now")
    return out


def finished_stage(stage_dir: str) -> dict | None:
    """The metrics a finished stage recorded, or None where it did not finish."""
    path = Path(stage_dir) / STAGE_DONE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))["metrics"]
    except (OSError, ValueError, KeyError):
        return None


def mark_finished(stage_dir: str, metrics: dict) -> None:
    """Written after the stage's result is saved: its presence means the stage can be reused."""
    from reflectevo.hub.store import atomic_write

    atomic_write(str(Path(stage_dir) / STAGE_DONE_FILE), json.dumps({"metrics": metrics}).encode("utf-8"))


def last_checkpoint(stage_dir: str) -> str | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last, after the
    weights, optimizer and RNG state), or None."""
    whole = []
    for d in Path(stage_dir).glob("checkpoint-*"):
        try:
            step = int(d.name.split("-", 1)[1])
            json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, IndexError):
            continue
        whole.append((step, str(d)))
    return max(whole)[1] if whole else None
