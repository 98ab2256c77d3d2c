"""`python -m bench --smoke` on a test stack: every measurement of `make bench` runs end
to end with small counts and writes its table, JSON and plot. No thresholds: the speed
figures are `make bench`'s, on the full load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, Stack


def test_the_benchmark_runs_every_measurement(stack: Stack, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [report] = tmp_path.glob("bench-*.json")
    data = json.loads(report.read_text())
    numbers = {row["metric"].split()[0] for row in data["rows"]}
    assert numbers == {"1", "2", "3", "4", "5", "6", "8"}  # 7 restarts the stack: full run only
    assert all(row["ours"] > 0 for row in data["rows"] if not row["metric"].startswith("3 "))
    assert [level["offered"] > 0 and level["sent"] > 0 for level in data["paced"]] == [True] * 4
    assert report.with_suffix(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "metric" in result.stdout.splitlines()[0]
