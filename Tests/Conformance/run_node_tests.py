#!/usr/bin/env python3
"""Runs the ONNX backend node tests of every claimed operator through Kerf.

    python3 Tests/Conformance/run_node_tests.py --cases OUTDIR \\
        --ops Tests/Conformance/claimed_ops.txt \\
        --expected-failures Tests/Conformance/expected_failures.txt \\
        [--min-cases N] [--filter SUBSTR] [--isolate] [--backend kerf|onnxruntime]

OUTDIR comes from materialize_node_tests.py. A case is selected when the op it
tests is claimed (an `_expanded` case also needs every op of its function body
claimed). Exits non-zero when a selected case fails outside the manifest, when a
manifest entry passes or names no case, or when fewer than N cases are selected.
The last line is always `N passed, M failed` (M counts failures outside the manifest).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import BACKENDS, describe  # noqa: E402
from case_worker import IsolatedRunner, run_case  # noqa: E402
from node_corpus import is_selected, load_corpus, read_claimed_ops, read_expected_failures  # noqa: E402

REASON_WIDTH = 240


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", required=True, help="directory written by materialize_node_tests.py")
    parser.add_argument("--ops", required=True, help="claimed ops, one per line")
    parser.add_argument("--expected-failures", required=True, help="`case_name  # reason` per line")
    parser.add_argument("--min-cases", type=int, default=0, help="fail if fewer cases are selected")
    parser.add_argument("--filter", default="", help="only cases whose name contains SUBSTR")
    parser.add_argument("--isolate", action="store_true", help="run cases in a worker process that may crash")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per case with --isolate")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="kerf",
                        help="onnxruntime checks the harness itself")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print passes and expected failures")
    return parser.parse_args()


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 3] + "..."


def main() -> int:
    args = parse_args()
    corpus = load_corpus(args.cases)
    claimed = read_claimed_ops(args.ops)
    expected = read_expected_failures(args.expected_failures)
    selected = [case for name, case in sorted(corpus.items())
                if is_selected(case, claimed) and args.filter in name]
    problems = []  # reasons to exit non-zero besides unexpected failures

    unknown_ops = sorted(claimed - {case.op for case in corpus.values()})
    if unknown_ops:
        print(f"note: no node tests for claimed ops: {' '.join(unknown_ops)}")
    for name in sorted(set(expected) - set(corpus)):
        problems.append(f"manifest names {name}, which is not a case in {args.cases}")
    unselected = sorted(name for name in set(expected) & set(corpus)
                        if not is_selected(corpus[name], claimed))
    if unselected:
        print(f"note: manifest entries of unclaimed ops are ignored: {' '.join(unselected)}")
    print(f"{describe(args.backend)}: {len(selected)} cases of {len(claimed)} claimed ops "
          f"(corpus: {len(corpus)} cases)")

    runner = IsolatedRunner(args.backend, args.timeout) if args.isolate else None
    results = {}
    start = time.monotonic()
    try:
        for case in selected:
            results[case.name] = runner.run(case) if runner else run_case(case, args.backend)
    finally:
        if runner:
            runner.close()
    elapsed = time.monotonic() - start

    failing_ops = collections.Counter()
    passed = failed = expected_failing = 0
    stale = []
    for case in selected:
        ok, reason = results[case.name]
        if ok:
            passed += 1
            if case.name in expected:
                stale.append(case.name)
            elif args.verbose:
                print(f"ok   {case.name}")
        elif case.name in expected:
            expected_failing += 1
            if args.verbose:
                print(f"xfail {case.name}: {one_line(reason)}")
        else:
            failed += 1
            failing_ops[case.op] += 1
            print(f"FAIL {case.name}: {one_line(reason)}")

    for name in stale:
        problems.append(f"{name} now passes: remove it from {args.expected_failures}")
    if len(selected) < args.min_cases:
        problems.append(f"only {len(selected)} cases selected, fewer than --min-cases {args.min_cases}")
    for problem in problems:
        print(f"error: {problem}")
    if failing_ops:
        print("failures by op: " + ", ".join(f"{op} {n}" for op, n in failing_ops.most_common()))
    if runner and runner.restarts:
        print(f"{runner.restarts} worker restarts after crashes or timeouts")
    print(f"{expected_failing} expected failures, {len(stale)} stale manifest entries "
          f"({elapsed:.1f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
