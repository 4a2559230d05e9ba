"""The benchmark harness (tests/bench, `make bench`) end to end at a small N, so it cannot rot.

Runs tests/bench/run.py as `make bench` does, but on the test suite's cluster
(--reuse-cluster: no restarts, its own namespaces deleted at the end) with N = 20 for our
path and the floor, N = 5 for the kubernetes.core and kubectl loops and for the
iam_pull_secret (LOCAL IAM STAND-IN) and ocp_internal_pull_secret (OpenShift stand-in
objects) rows and their floors; the fleet rows with 2 clusters of their own and 3
namespaces each. Asserts that every
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
MODULES = {"iam_pull_secret": "iam_pull_secret raw floor",
           "ocp_internal_pull_secret": "ocp_internal_pull_secret raw floor"}


def test_benchmark_runs_every_path_and_writes_the_report(cluster, tmp_path):
    out = tmp_path / "performance.md"
    results_file = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "bench", "run.py"),
         "--sizes", "20", "--loop-sizes", "5", "--memory-size", "20", "--repeat", "1",
         "--modules-size", "5", "--fleet", "0",
         "--cluster-dir", cluster.state_dir, "--reuse-cluster",
         "--out", str(out), "--json", str(results_file), "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    report = json.loads(results_file.read_text())
    runs = {(r["path"], r["run"], r["size"]): r for r in report["results"]}
    assert {r["path"] for r in report["results"]} == {
        OURS, "kubernetes.core loop", "kubectl loop", "raw client floor", "ansible-playbook start-up",
        *MODULES, *MODULES.values()}
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

    # The other modules and their floors make the same writes; the reruns write nothing.
    for module, floor in MODULES.items():
        assert runs[(module, "first run", 5)]["writes_in_set"] == 10, module
        assert runs[(floor, "first run", 5)]["writes_in_set"] == 10, floor
        assert runs[(module, "no-op rerun", 5)]["writes_in_set"] == 0, module
        assert runs[(module, "no-op rerun", 5)]["extra"]["recap"]["changed"] == 0, module
    # iam_pull_secret mints one key on its first run and none on its rerun; so does its floor.
    iam = {key: runs[key]["extra"]["iam_requests"] for key in
           (("iam_pull_secret", "first run", 5), ("iam_pull_secret", "no-op rerun", 5),
            ("iam_pull_secret raw floor", "first run", 5))}
    assert [calls.get("POST /v1/apikeys") for calls in iam.values()] == [1, None, 1], iam
    # The floor makes the module's first-run IAM calls, no fewer.
    assert iam[("iam_pull_secret raw floor", "first run", 5)] == iam[("iam_pull_secret", "first run", 5)], iam
    assert "| iam_pull_secret | 5 |" in proc.stdout

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


def test_fleet_rows_run_site_yml_over_clusters_of_their_own(tmp_path):
    """--fleet-only with 2 clusters x 3 namespaces: both phases run and verify, verdict printed."""
    results_file = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "bench", "run.py"), "--fleet-only", "--fleet", "2",
         "--fleet-namespaces", "3", "--json", str(results_file), "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(results_file.read_text())
    rows = {r["path"]: r for r in report["results"]}
    assert set(rows) == {"site.yml fleet", "site.yml one cluster at a time", "site.yml one cluster"}
    assert all(r["ok"] for r in rows.values()), rows
    fleet = rows["site.yml fleet"]
    assert fleet["extra"]["hosts"] == ["site-a", "site-b"]
    assert all(changed for changed in fleet["extra"]["changed"].values())
    # Both clusters' API servers and etcds were found and measured.
    assert all(rss for procs in fleet["extra"]["memory"].values() for rss, _peak in procs.values())
    [(target, _measured, verdict)] = report["targets"]
    assert target.startswith("site.yml over 2 clusters x 3 namespaces") and verdict != "-"
    assert "| **all 2** |" in proc.stdout
    # The clusters are stopped.
    assert not any((tmp_path / "work" / "fleet" / f"cluster-{h}" / "cluster.json").exists() for h in ("site-a", "site-b"))
