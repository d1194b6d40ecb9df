"""The JSON token store written by another process, to show what locking and atomic renames keep."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sfdcflex.store import JsonFileTokenStore
    store = JsonFileTokenStore(Path(sys.argv[1]))
    prefix, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        store.put(f"{prefix}-{i}@example.com", f"access-{prefix}-{i}", f"refresh-{prefix}-{i}")
        print(i, flush=True)
""")


def start_writer(path: Path, prefix: str, count: int) -> subprocess.Popen:
    """A process that saves `count` agents named `prefix-N@example.com`, printing N after each."""
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(count)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def writing_now(folder: Path, path: Path, seeded_size: int) -> bool:
    """A write is under way: a temp file exists, or the file shrank (a non-atomic rewrite)."""
    return any(p.name.endswith(".tmp") for p in folder.iterdir()) or path.stat().st_size < seeded_size
