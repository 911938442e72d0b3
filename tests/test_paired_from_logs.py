"""benchmarks/paired_from_logs.py recomputes paired differences from run logs."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_from_logs.py"

TU_LOG = """# command: python examples/graph_tu.py --dataset MUTAG --seeds 0 1
MUTAG graphcl infonce uniform seed 0: accuracy 80.00 ± 1.00 (1.0 s, sampler 0.01% of the training step)
MUTAG graphcl infonce uniform seed 1: accuracy 82.00 ± 1.00 (1.0 s, sampler 0.01% of the training step)
"""
TU_LOG_2 = """MUTAG graphcl infonce batchsampler seed 0: accuracy 81.00 ± 1.00 (1.0 s, sampler 3.00% of the training step)
MUTAG graphcl infonce batchsampler seed 1: accuracy 84.00 ± 1.00 (1.0 s, sampler 3.00% of the training step)
"""
MOLHIV_LOG = """infonce uniform seed 3: ROC-AUC valid 80.00 test 70.00 (probe C 0.1) | train 1 s
infonce batchsampler seed 3: ROC-AUC valid 81.00 test 72.50 (probe C 0.1) | train 1 s
"""


def run_script(*paths):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_pairs_seeds_across_logs(tmp_path):
    (tmp_path / "a.txt").write_text(TU_LOG)
    (tmp_path / "b.txt").write_text(TU_LOG_2)
    (tmp_path / "m.txt").write_text(MOLHIV_LOG)
    finished = run_script(tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "m.txt")
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    assert "MUTAG graphcl infonce uniform: 81.00 ± 1.00 over 2 seeds" in out
    assert "batchsampler - uniform: +1.50 ± 0.71 over 2 paired seeds" in out
    valid, test = out.split("test ROC-AUC:")
    assert "ogbg-molhiv graphcl infonce batchsampler - uniform: +1.00 ± 0.00 over 1 paired seed (p -)" in valid
    assert "ogbg-molhiv graphcl infonce batchsampler - uniform: +2.50 ± 0.00 over 1 paired seed (p -)" in test


def test_missing_or_empty_logs_fail_naming_them(tmp_path):
    finished = run_script(tmp_path / "absent.txt")
    assert finished.returncode == 2 and "no such log" in finished.stderr and "absent.txt" in finished.stderr
    (tmp_path / "empty.txt").write_text("# nothing ran\n")
    finished = run_script(tmp_path / "empty.txt")
    assert finished.returncode == 2 and "no per-seed run lines in" in finished.stderr
