"""Folders that appear whole or not at all (the converted model, the extracted BIG-bench tasks)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replaced_on_success(target: Path, prefix: str = ".build-") -> Iterator[Path]:
    """A scratch folder beside `target` to build into. When the block ends normally, the scratch
    folder becomes `target` by one rename on the same filesystem, so a reader (or a later run) never
    sees half of it; when the block raises, or the process is killed, `target` is left as it was and
    the scratch folder is removed (or, after a kill, ignored: it has a dot name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield work
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
