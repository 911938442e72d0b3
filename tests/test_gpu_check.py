"""The prepared GPU check runs end to end at its smoke size on the CPU."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_smoke_run_reports_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    finished = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=SCRIPT.parents[1],
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["graph"]["edges"] == 5000 * 100 and report["graph"]["no_in_edge_share"] < 0.01
    assert [run["sampler"] for run in report["simclr"]] == ["uniform", "batchsampler"]
    assert all(run["steps"] >= 6 and run["cost_t_ms"] > 0 for run in report["simclr"])
    assert report["simclr"][0]["sampler_share"] < report["simclr"][1]["sampler_share"]
