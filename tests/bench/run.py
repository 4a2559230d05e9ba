"""Benchmark: N namespaces get an ICR pull secret referenced from `default`, side by side
with what users run today (kubernetes.core loops, a kubectl shell loop) and a floor (the
raw kubernetes client), on the local control plane. Issues 8 and 16; see docs/performance.md.

    python tests/bench/run.py [--sizes 100,1000,5000] [--loop-sizes 100] [--memory-size 5000]
                              [--crowded 5000] [--repeat 3] [--out docs/performance.md] [--keep-cluster]
    python tests/bench/run.py --memory-only --memory-sizes 5000,20000 --crowded 5000
                              # peak memory rows only (issue 16), with verdicts; no document
    python tests/bench/run.py --fleet-only [--fleet 8 --fleet-namespaces 200]
                              # site.yml over 8 local clusters at once and one at a time
    python tests/bench/run.py --modules-only [--modules-size 1000]
                              # iam_pull_secret and ocp_internal_pull_secret against their floors
    python tests/bench/run.py --render-from .tmp/bench/results.json   # rewrite the doc only

Uses its own local cluster (default <repo>/.cluster-bench, restarted empty for every
path) and stops it at the end unless --keep-cluster; the fleet rows start their own
clusters under the workdir and always stop them. Prints the markdown table, writes the
document and its PNG chart, and the raw numbers as JSON. Exits 1 when any run failed or
left the namespaces in the wrong state; missed performance targets are reported, not fatal.
`make bench` (--crowded 5000 and the default module rows and fleet) took 23 minutes on an idle 2-core
machine (2026-12-04): about 12 the N=5000 rounds and the kubernetes.core loop, 4 the other modules' rows,
7 the fleet (8 clusters start in about a minute). The N=20000 memory rows (--memory-sizes 5000,20000)
are not in it by default: they add the set-up of 20000 namespaces and two more module runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import fleet  # noqa: E402
import harness  # noqa: E402
import localcluster  # noqa: E402
import paths  # noqa: E402
import report  # noqa: E402

# The target set of the crowded row: a namespace selector that matches 20 namespaces.
CROWDED_TARGETS = 20


def ours_runs(bench: harness.Bench, size: int) -> list:
    """check mode, first run, no-op rerun, and a rerun after 10% lost their secret."""
    bench.reset()
    ns_set = bench.fresh_set("ours", size)
    results = [paths.ours(bench, ns_set, "check mode", check=True, expect_changed=1),
               paths.ours(bench, ns_set, "first run", expect_changed=1),
               paths.ours(bench, ns_set, "no-op rerun", expect_changed=0)]
    lost = bench.drop_secrets(ns_set, 0.1)
    healed = paths.ours(bench, ns_set, "rerun after 10% lost their secret", expect_changed=1)
    healed.note = f"{len(lost)} secrets deleted before the run"
    return results + [healed]


def memory_runs(bench: harness.Bench, size: int) -> list:
    """Our first run and no-op rerun at a large N, for the module's peak memory."""
    bench.reset()
    ns_set = bench.fresh_set("memory", size)
    return [paths.ours(bench, ns_set, "first run", expect_changed=1),
            paths.ours(bench, ns_set, "no-op rerun", expect_changed=0)]


def crowded_runs(bench: harness.Bench, crowd: int, size: int = CROWDED_TARGETS) -> list:
    """A selector run over `size` namespaces, alone in the cluster and then next to `crowd`
    other namespaces that hold a secret of the same name: reads must cost what the target
    set costs, not what the cluster holds (issue 16)."""
    results = []
    for label, others in (("empty cluster", 0), (f"{crowd} other namespaces hold the secret", crowd)):
        bench.reset()
        if others:
            bench.add_same_name_secrets(bench.fresh_set("crowd", others))
        ns_set = bench.fresh_set("crowded", size)
        for run, changed in (("first run", 1), ("no-op rerun", 0)):
            measured = paths.ours(bench, ns_set, f"{run}, {label}", expect_changed=changed)
            measured.extra["crowd"] = others
            results.append(measured)
    return results


def module_runs(bench: harness.Bench, size: int) -> list:
    """iam_pull_secret and ocp_internal_pull_secret: first run and no-op rerun, then their
    floor, each on a fresh cluster and namespace set."""
    results = []
    for prepare, module, floor in ((paths.iam_prepare, paths.iam_module, paths.iam_floor),
                                   (paths.ocp_prepare, paths.ocp_module, paths.ocp_floor)):
        ns_set = prepare(bench, size)
        results += [module(bench, ns_set, "first run", expect_changed=1),
                    module(bench, ns_set, "no-op rerun", expect_changed=0)]
        results.append(floor(bench, prepare(bench, size)))
    return results


def on_fresh_set(bench: harness.Bench, key: str, size: int, path) -> harness.Measurement:
    bench.reset()
    return path(bench, bench.fresh_set(key, size))


def sizes(text: str) -> list:
    values = [int(part) for part in text.split(",") if part.strip()]
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return values


def parse_args(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=sizes, default=[100, 1000, 5000],
                        help="N for our path and the raw-client floor (default 100,1000,5000)")
    parser.add_argument("--loop-sizes", type=sizes, default=[100],
                        help="N for the kubernetes.core and kubectl loops, about 1 s per namespace (default 100)")
    parser.add_argument("--memory-size", type=int, default=5000,
                        help="N for the peak-memory runs of our path; 0 skips them (default 5000)")
    parser.add_argument("--memory-sizes", type=sizes, default=None,
                        help="several N for the peak-memory runs (e.g. 5000,20000); replaces --memory-size")
    parser.add_argument("--crowded", type=int, default=0, metavar="OTHERS",
                        help=f"also measure a {CROWDED_TARGETS}-namespace selector run alone and next to OTHERS "
                             "namespaces holding a secret of the same name (e.g. 5000; default 0: skip)")
    parser.add_argument("--memory-only", action="store_true",
                        help="run only the memory rows (and --crowded): no timings, no start-up runs, --sizes and "
                             "--loop-sizes ignored, the document not written; prints the verdicts and the table")
    parser.add_argument("--modules-size", type=int, default=report.MODULE_SIZE,
                        help="N for the iam_pull_secret and ocp_internal_pull_secret rows and their floors; "
                             f"0 skips them (default {report.MODULE_SIZE})")
    parser.add_argument("--modules-only", action="store_true",
                        help="run only Ansible's start-up and the iam_pull_secret / ocp_internal_pull_secret rows; "
                             "the document is written only with an explicit --out")
    parser.add_argument("--fleet", type=int, default=8, metavar="CLUSTERS",
                        help="site.yml over this many local clusters at once and one at a time; 0 skips it (default 8)")
    parser.add_argument("--fleet-namespaces", type=int, default=200,
                        help="namespaces per fleet cluster (default 200)")
    parser.add_argument("--fleet-only", action="store_true",
                        help="run only the fleet rows: no benchmark cluster, no document; prints the verdict and tables")
    parser.add_argument("--parallelism", type=int, default=8,
                        help="parallel writes for our module and the floor (default 8, the module's default)")
    parser.add_argument("--out", default=None,
                        help="document to write; its chart goes next to it as .png (default docs/performance.md)")
    parser.add_argument("--json", default=None, help="also write the measurements here (default <workdir>/results.json)")
    parser.add_argument("--workdir", default=os.path.join(harness.REPO, ".tmp", "bench"),
                        help="scratch directory, emptied first (default .tmp/bench)")
    parser.add_argument("--cluster-dir", default=os.path.join(harness.REPO, ".cluster-bench"),
                        help="state directory of the benchmark's own local cluster (default .cluster-bench)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the benchmark cluster running")
    parser.add_argument("--reuse-cluster", action="store_true",
                        help="share an already running cluster: no restarts, never stopped, own namespaces "
                             "deleted at the end; request counts may include other clients (smoke test)")
    parser.add_argument("--collections-path", default=None,
                        help="run the modules from another copy (a directory holding ansible_collections/"
                             "ibmcloud/registry), for A/B comparisons; default this checkout")
    parser.add_argument("--render-from", default=None, metavar="RESULTS_JSON",
                        help="run nothing: rewrite --out and its chart from a results file of an earlier run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of our path, the floor and Ansible's start-up per size; the table shows the "
                             "best and the median wall time (default 3; the loops and memory runs run once)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not 1 <= args.parallelism <= 64:
        parser.error("--parallelism must be between 1 and 64")
    if args.memory_sizes is None:
        args.memory_sizes = [args.memory_size] if args.memory_size else []
    if args.crowded < 0:
        parser.error("--crowded must be 0 or a positive number of namespaces")
    if args.modules_size < 0 or args.fleet < 0 or args.fleet_namespaces < 1:
        parser.error("--modules-size and --fleet must be 0 or more, --fleet-namespaces at least 1")
    if args.fleet > 26:
        parser.error("--fleet takes at most 26 clusters")
    if sum((args.memory_only, args.modules_only, args.fleet_only)) > 1:
        parser.error("--memory-only, --modules-only and --fleet-only exclude each other")
    if args.fleet_only and not args.fleet:
        parser.error("--fleet-only needs --fleet CLUSTERS > 0")
    if args.memory_only or args.modules_only or args.fleet_only:
        args.sizes, args.loop_sizes = [], []
        args.fleet = args.fleet if args.fleet_only else 0
    if args.modules_only or args.fleet_only:
        args.memory_sizes, args.crowded = [], 0
    if args.memory_only or args.fleet_only:
        args.modules_size = 0
    args.write_document = args.out is not None or not (args.memory_only or args.modules_only or args.fleet_only)
    if args.out is None:
        args.out = os.path.join("docs", "performance.md")
    return args


def render_from(args: argparse.Namespace) -> int:
    """Rewrite the document and chart from an earlier run's results file."""
    with open(args.render_from, encoding="utf-8") as handle:
        saved = json.load(handle)

    def measurements(rows):
        fields = {f.name for f in dataclasses.fields(harness.Measurement)}
        return [harness.Measurement(**{k: v for k, v in row.items() if k in fields}) for row in rows]

    results, every_run = measurements(saved["results"]), measurements(saved["every_run"])
    report.write(args.out, results, every_run, saved["environment"], saved["command"], saved["seconds"],
                 saved["parallelism"], saved["memwrap_overhead"], reused=saved.get("reused", False),
                 when=saved.get("when"))
    print(report.targets_table(report.targets(results, saved["memwrap_overhead"])))
    return 0


def exit_status(results: list) -> int:
    """1, naming each on stderr, when a run failed or left the namespaces wrong; else 0."""
    failed = [m for m in results if not m.ok]
    for m in failed:
        print(f"FAILED: {m.path} / {m.run} / N={m.size}: {m.problem}", file=sys.stderr)
    return 1 if failed else 0


def report_partial(args: argparse.Namespace, results: list, seconds: float, targets: list, tables: list,
                   shown: list | None = None, **saved) -> int:
    """A run that writes no document (--memory-only, --fleet-only, --modules-only, or a
    partial selection without --out): verdicts (``shown``, default all ``targets``) and
    tables on stdout, the measurements and every target as JSON."""
    json_path = args.json or os.path.join(args.workdir, "results.json")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(dict(saved, seconds=seconds, targets=targets,
                       results=[dict(dataclasses.asdict(m), total_requests=m.total_requests) for m in results]),
                  handle, indent=2)
    print(report.targets_table(targets if shown is None else shown))
    for text in tables:
        print()
        print(text)
    print(f"\nwrote {json_path}; {seconds / 60:.1f} minutes")
    return exit_status(results)


def stop_leftover_fleet(workdir: str) -> None:
    """Clusters of an earlier, interrupted fleet run in this workdir, before it is emptied."""
    base = os.path.join(workdir, "fleet")
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            if name.startswith("cluster-"):
                localcluster.stop(os.path.join(base, name))


def report_fleet_only(args: argparse.Namespace, results: list, seconds: float) -> int:
    """--fleet-only: verdict and tables on stdout, measurements as JSON; no document."""
    return report_partial(args, results, seconds, report.fleet_targets(results),
                          [report.table(results), report.fleet_table(results)])


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    if args.render_from:
        return render_from(args)
    stop_leftover_fleet(args.workdir)
    shutil.rmtree(args.workdir, ignore_errors=True)
    bench = harness.Bench(args.cluster_dir, args.workdir, reuse=args.reuse_cluster, parallelism=args.parallelism,
                          collections_dir=args.collections_path)
    started = time.monotonic()
    results = []
    if args.fleet_only:
        results = fleet.fleet_runs(args.workdir, args.fleet, args.fleet_namespaces, bench.log)
        return report_fleet_only(args, report.aggregate(results), time.monotonic() - started)
    try:
        bench.start()
        env = report.environment(bench)
        overhead = bench.wrapper_overhead()
        bench.log(f"memwrap adds {overhead * 1000:.0f} ms per wrapped process")
        if not args.memory_only:
            paths.ansible_startup(bench)  # warms caches; not counted
            results += [paths.ansible_startup(bench) for _round in range(max(3, args.repeat))]
        for size in args.sizes:
            for _round in range(args.repeat):
                results += ours_runs(bench, size)
                results.append(on_fresh_set(bench, "floor", size, paths.raw_floor))
        for size in args.loop_sizes:
            results.append(on_fresh_set(bench, "core", size, paths.kubernetes_core_loop))
            results.append(on_fresh_set(bench, "kubectl", size, paths.kubectl_loop))
        for size in args.memory_sizes:
            # A size of --sizes has its first run and no-op rerun measured already.
            if size not in args.sizes:
                results += memory_runs(bench, size)
        if args.crowded:
            results += crowded_runs(bench, args.crowded)
        if args.modules_size:
            for _round in range(args.repeat):
                results += module_runs(bench, args.modules_size)
    finally:
        bench.close(keep_cluster=args.keep_cluster)
    if args.fleet:
        # After the benchmark cluster stopped: the fleet's clusters have the machine to themselves.
        results += fleet.fleet_runs(args.workdir, args.fleet, args.fleet_namespaces, bench.log)
    seconds, when = time.monotonic() - started, report.now()
    every_run, results = results, report.aggregate(results)

    if args.memory_only:
        return report_partial(args, results, seconds, report.memory_targets(results), [report.memory_table(results)],
                              memwrap_overhead=overhead, parallelism=args.parallelism)
    if not args.write_document:
        targets = report.targets(results, overhead)
        return report_partial(args, results, seconds, targets, [report.table(results), report.module_table(results)],
                              shown=[row for row in targets if row[1] != "not measured"])
    command = " ".join(["python", os.path.relpath(os.path.abspath(__file__), harness.REPO)]
                       + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    chart = report.write(args.out, results, every_run, env, command, seconds, args.parallelism, overhead,
                         reused=args.reuse_cluster, when=when)
    json_path = args.json or os.path.join(args.workdir, "results.json")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({"seconds": seconds, "environment": env, "command": command, "memwrap_overhead": overhead,
                   "parallelism": args.parallelism, "reused": args.reuse_cluster, "when": when,
                   "targets": report.targets(results, overhead),
                   "results": [dict(dataclasses.asdict(m), total_requests=m.total_requests, writes=m.writes)
                               for m in results],
                   "every_run": [dataclasses.asdict(m) for m in every_run]}, handle, indent=2)

    print(report.targets_table(report.targets(results, overhead)))
    print()
    print(report.table(results))
    for section in (report.module_table(results), report.fleet_table(results)):
        if section:
            print()
            print(section)
    print(f"\nwrote {args.out}, {chart} and {json_path}; {seconds / 60:.1f} minutes")
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
