"""The benchmark harness (tests/bench, `make bench`) end to end at a small N, so it cannot rot.

Runs tests/bench/run.py as `make bench` does, but on the test suite's cluster
(--reuse-cluster: no restarts, its own namespaces deleted at the end) with N = 20 for our
path and the floor, N = 5 for the kubernetes.core and kubectl loops. Asserts that every
path ran and left the namespaces right, that the request accounting works, and that our
no-op rerun and check mode write nothing. No timing assertions: timing is the
benchmark's business, on its own cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OURS = "ibmcloud.registry"


def test_benchmark_runs_every_path_and_writes_the_report(cluster, tmp_path):
    out = tmp_path / "performance.md"
    results_file = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "bench", "run.py"),
         "--sizes", "20", "--loop-sizes", "5", "--memory-size", "20", "--repeat", "1",
         "--cluster-dir", cluster.state_dir, "--reuse-cluster",
         "--out", str(out), "--json", str(results_file), "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    report = json.loads(results_file.read_text())
    runs = {(r["path"], r["run"], r["size"]): r for r in report["results"]}
    assert {r["path"] for r in report["results"]} == {
        OURS, "kubernetes.core loop", "kubectl loop", "raw client floor", "ansible-playbook start-up"}
    assert all(r["ok"] for r in report["results"]), [r for r in report["results"] if not r["ok"]]

    # The harness counts the client's own requests inside its namespace set.
    assert runs[(OURS, "first run", 20)]["writes_in_set"] == 40  # 20 secrets + 20 service accounts
    assert runs[("raw client floor", "first run", 20)]["writes_in_set"] == 40
    assert runs[("kubernetes.core loop", "first run", 5)]["writes_in_set"] == 10
    assert runs[("kubectl loop", "first run", 5)]["writes_in_set"] == 10
    # Our no-op rerun and check mode write nothing and report no change / the change to come.
    for run in ("no-op rerun", "check mode"):
        assert runs[(OURS, run, 20)]["writes_in_set"] == 0, run
    assert runs[(OURS, "no-op rerun", 20)]["extra"]["recap"]["changed"] == 0
    assert runs[(OURS, "check mode", 20)]["extra"]["recap"]["changed"] == 1
    # 10% lost their secret: exactly those are created again.
    assert runs[(OURS, "rerun after 10% lost their secret", 20)]["writes_in_set"] == 2
    # Memory comes from the wrapper for every path.
    assert all(r["peak_rss_mib"] for r in report["results"])
    assert runs[(OURS, "first run", 20)]["peak_of"] == "icr_pull_secret module"

    assert "| ibmcloud.registry | first run | 20 |" in proc.stdout
    text = out.read_text()
    assert "| ibmcloud.registry | no-op rerun | 20 |" in text and "bench:analysis:start" in text
    assert (tmp_path / "performance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The document can be rewritten from the saved results without running anything.
    again = tmp_path / "again" / "performance.md"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "bench", "run.py"),
                           "--render-from", str(results_file), "--out", str(again)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert again.read_text().split("<!-- bench:generated:start -->")[1] == text.split("<!-- bench:generated:start -->")[1]
