"""What the launch scripts share: the repository root on `sys.path`, one thread per process, the interpreter to run
sub-runs with, and mean ± *sample* standard deviation formatting (so every benchmark's ± means the same thing).

    import common  # first, from a script in launch/ (puts src/ on sys.path)
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "open_r1_ext" / "grpo.py"  # the single launch script every training run goes through
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def python() -> str:
    """The interpreter for sub-runs: `$PYTHON`, else the repository's `.venv`, else this one."""
    venv = ROOT / ".venv" / "bin" / "python"
    return os.environ.get("PYTHON") or (str(venv) if venv.exists() else sys.executable)


def mean_sd(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the values that are not None; sd 0 for a single value."""
    xs = [float(x) for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt_ms(xs, fmt: str = ".3f") -> str:
    """`"mean ± sd"` of `xs` (sample standard deviation), each formatted with `fmt`."""
    m, s = mean_sd(xs)
    return f"{m:{fmt}} ± {s:{fmt}}"
