"""Replies that ran into their token cap, per turn, for results files written before the plugin counted
them in its pass records (`cap_hits`, harness_plugins/reflect_model.py).

    REFLECTEVO_BBH_DIR=../shared/data/bbh .venv/bin/python scripts/cap_hits.py            # the committed rows
    .venv/bin/python scripts/cap_hits.py leaderboards/measured/one_stage.json --out FILE   # some files

Each results file's resume folder (`config.reflectevo.chunking.resume`, committed for the measured rows)
holds every item's trajectory with each turn's sampling and raw output. For every turn the run generated
(the turns of its `generation` block: a trial 1 taken from another run by trial1_from is that run's), the
text after the reply prefix is retokenised with the model's own tokenizer, as the plugin's
engine.count_tokens does, and a reply of at least max_new_tokens - CAP_SLACK tokens counts as cut off,
by the plugin's own rule (harness_plugins/reflect_model.py, reaches_cap, says why the slack).

The output (default leaderboards/measured/cap_hits.json) is keyed by results file name; each entry holds
the results file's sha256, so leaderboards/build.py uses it only for that very file, and the tokenizer
it was counted with. The counts are checked against the file: the resume folder must hold exactly its
items, and each turn as many replies as its passes made, in the sampling its generation block records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # leaderboards/ is a folder of the checkout, not an installed package

from harness_plugins.reflect_model import CAP_SLACK, reaches_cap  # noqa: E402
from leaderboards.build import generated_text, read_results, resume_folder, stored_trajectories  # noqa: E402
from reflectevo.errors import UserError  # noqa: E402

MEASURED = ROOT / "leaderboards" / "measured"
OUT = MEASURED / "cap_hits.json"


def tokenizer_for(prov: dict, where: str):
    """(count_tokens, identity) for the row's base model; the adapters of the measured rows are served
    merged into a copy of that model, whose folder holds the same tokenizer (merged_adapter.py)."""
    from transformers import AutoTokenizer

    from reflectevo.embedded_model import EMBEDDED_SHORT_NAME, embedded_model_dir, file_sha256, model_revision

    base = prov.get("base") or {}
    if base.get("model") != EMBEDDED_SHORT_NAME:
        raise UserError(f"{where}: base model {base.get('model')!r}; only the embedded model's tokenizer is "
                        "available offline here")
    folder = embedded_model_dir(convert=False)
    revision = model_revision(EMBEDDED_SHORT_NAME)
    if revision != base.get("model_revision"):
        raise UserError(f"{where}: made with model revision {base.get('model_revision')}, this machine converted "
                        f"{revision}")
    tok = AutoTokenizer.from_pretrained(str(folder))
    identity = {"model": EMBEDDED_SHORT_NAME, "model_revision": revision,
                "tokenizer_json_sha256": "sha256:" + file_sha256(folder / "tokenizer.json"),
                "tokenizer_class": type(tok).__name__,
                "count": "len(tokenizer(text, add_special_tokens=False)['input_ids']) of the reply after its "
                         "prefix, 0 for a blank reply (the plugin's engine.count_tokens)"}

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text.strip() else 0

    return count, identity


def entry_for(path: Path, tokenizers: dict) -> dict:
    raw = path.read_bytes()
    data = read_results(path)
    prov = data["config"]["reflectevo"]
    where = str(path)
    generation = prov.get("generation") or {}
    if not generation:
        raise UserError(f"{where}: no generation block: which turns it generated, with which caps, is unknown")
    folder = resume_folder((prov.get("chunking") or {}).get("resume"))
    if folder is None:
        raise UserError(f"{where}: its resume folder ({(prov.get('chunking') or {}).get('resume')}) is not in "
                        "this checkout")
    trajectories = stored_trajectories(folder)
    items = {(task, doc) for task, docs in (prov.get("outcomes") or {}).items() for doc in docs}
    if set(trajectories) != items:
        raise UserError(f"{where}: {folder} holds {len(trajectories)} trajectories, not the file's {len(items)} items")
    key = json.dumps(prov.get("base") or {}, sort_keys=True)
    if key not in tokenizers:
        tokenizers[key] = tokenizer_for(prov, where)
    count, identity = tokenizers[key]
    turns = {}
    for name, samplings in generation.items():
        made = [t for traj in trajectories.values() for t in traj["turns"] if t["turn"] == name]
        requests = sum(p.get("requests", 0) for p in prov.get("passes") or () if p.get("turn") == name)
        if len(made) != requests:
            raise UserError(f"{where}: {folder} holds {len(made)} {name} replies, its passes made {requests}")
        strange = [t["sampling"] for t in made if t["sampling"] not in samplings]
        if strange:
            raise UserError(f"{where}: a stored {name} reply was generated with {strange[0]}, not a sampling "
                            "of the file's generation block")
        tokens = [(count(generated_text(t)), int(t["sampling"]["max_new_tokens"])) for t in made]
        turns[name] = {
            "max_new_tokens": sorted({s["max_new_tokens"] for s in samplings}),
            "stop": [list(s.get("stop") or ()) for s in samplings],
            "replies": len(made),
            "cap_hits": sum(reaches_cap(n, cap) for n, cap in tokens),
            # replies by retokenised tokens minus cap, from 10 below: what CAP_SLACK rests on (cut-off replies
            # cluster at the cap, stopped ones spread below it)
            "near_cap": {str(d): k for d, k in sorted(Counter(n - cap for n, cap in tokens if n >= cap - 10).items())},
        }
    return {"sha256": "sha256:" + hashlib.sha256(raw).hexdigest(), "cap_slack": CAP_SLACK, "resume": str(folder.relative_to(ROOT))
            if folder.is_relative_to(ROOT) else folder.name, "tokenizer": identity, "turns": turns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", help="lm-eval results files (default: the committed rows)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.results] or sorted(p for p in MEASURED.glob("*.json") if p.resolve() != OUT.resolve())
    out_path = Path(args.out)
    # entries of files not named this time are kept: the file covers every row it was ever run for
    saved = json.loads(out_path.read_text()) if out_path.is_file() else {}
    tokenizers: dict = {}
    try:
        for path in files:
            saved[path.name] = entry_for(path, tokenizers)
            shares = ", ".join(f"{t} {v['cap_hits']}/{v['replies']}" for t, v in saved[path.name]["turns"].items())
            print(f"{path.name}: {shares}")
    except UserError as exc:
        print(f"cap_hits: {exc}", file=sys.stderr)
        return 1
    out_path.write_text(json.dumps(dict(sorted(saved.items())), indent=1) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
