#!/usr/bin/env python3
"""Scores Kerf next to ONNX Runtime on every case of the ONNX backend node-test corpus.

    KERF_LIBRARY=.build/release/libKerf.so python3 Tests/Conformance/score_corpus.py --cases OUTDIR \\
        [--filter SUBSTR] [--timeout SECONDS] [--markdown FILE] [--verbose]

OUTDIR comes from materialize_node_tests.py. Unlike run_node_tests.py, no claim selects the cases
and no manifest excuses a failure: every case runs on both backends, each backend in its own
worker process (case_worker.IsolatedRunner: a crash or a timeout fails that case, and the worker
is replaced), judged by case_worker.run_case, i.e. by the comparison rules of compare.py.

Cases whose graph inputs or outputs are sequences, optionals or maps are counted apart and run
on neither backend: the harness feeds tensors only. (onnx itself marks no node-test case as
not runnable: every case ships its inputs and reference outputs.)

Prints the summary (cases passed by Kerf, by ONNX Runtime, by both, by one only) and the ops
with the most cases Kerf fails and ONNX Runtime passes. A case counts under the op it tests
(an `_expanded` case under the op whose function body it is). With --markdown, writes the
section SECTION_HEADING into FILE, replacing it if present, else appending it. Exits 0 whatever
the score: this is a measurement, not a gate (`make test-conformance` is the gate).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import REPO, describe  # noqa: E402
from case_worker import IsolatedRunner  # noqa: E402
from node_corpus import Case, load_corpus  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from bench import cpu_name, replace_section  # noqa: E402  (cpu_name: /proc/cpuinfo's "model name")

SECTION_HEADING = "## Conformance: the whole ONNX node-test corpus"
TOP_OPS = 30
REASON_WIDTH = 110
PROGRESS_EVERY = 100

# Kinds of failure, told apart by the one-line reason run_case or IsolatedRunner gives (Kerf's and
# ONNX Runtime's messages alike); the first match wins.
FAILURE_KINDS = (
    ("unsupported op", re.compile(r"^KerfError: UNSUPPORTED: .*operator '[^']+' is not supported")),
    ("unsupported attribute or type", re.compile(r"^KerfError: UNSUPPORTED: ")),
    ("crash", re.compile(r"^crashed ")),
    ("timeout", re.compile(r"^timed out ")),
    ("wrong output count", re.compile(r"^\d+ outputs, expected \d+")),
    ("wrong shape", re.compile(r"^output \d+ '.*?': shape ")),
    ("wrong dtype", re.compile(r"^output \d+ '.*?': dtype ")),
    ("numeric mismatch", re.compile(r"^output \d+ '.*?': (\d+ of \d+ elements differ|strings differ)")),
    ("rejected by Kerf", re.compile(r"^KerfError: ")),
    ("not implemented by ONNX Runtime", re.compile(r"\[ONNXRuntimeError\] : \d+ : NOT_IMPLEMENTED")),
    ("dtype ONNX Runtime's Python binding cannot convert",
     re.compile(r"can't be converted to MLDataType|No corresponding Numpy type")),
    ("rejected by ONNX Runtime", re.compile(r"\[ONNXRuntimeError\]")),
)
OTHER_KIND = "other error"

Result = tuple[bool, str]  # (passed, one-line reason), as run_case returns it


# MARK: - Running

def runs_as_tensors(case: Case) -> bool:
    """True when every graph input and output is a tensor, i.e. the harness can feed the case."""
    return not case.non_tensor_values


def run_all(cases: list[Case], backend: str, timeout: float) -> dict[str, Result]:
    """{case name: (passed, reason)} for `cases` run one after the other in an isolated worker of
    `backend`; prints progress to stderr."""
    runner = IsolatedRunner(backend, timeout)
    results = {}
    start = time.monotonic()
    try:
        for number, case in enumerate(cases, 1):
            results[case.name] = runner.run(case)
            if number % PROGRESS_EVERY == 0 or number == len(cases):
                print(f"{backend}: {number}/{len(cases)} cases ({time.monotonic() - start:.0f} s)",
                      file=sys.stderr, flush=True)
    finally:
        runner.close()
    if runner.restarts:
        print(f"{backend}: {runner.restarts} worker restarts after crashes or timeouts", file=sys.stderr)
    return results


# MARK: - Scoring

def failure_kind(reason: str) -> str:
    """The FAILURE_KINDS name matching a failed case's reason, else OTHER_KIND."""
    return next((kind for kind, pattern in FAILURE_KINDS if pattern.search(reason)), OTHER_KIND)


def short(reason: str, width: int = REASON_WIDTH) -> str:
    """`reason` on one line, without the `KerfError: ` prefix, cut to `width` characters."""
    reason = " ".join(reason.removeprefix("KerfError: ").split())
    return reason if len(reason) <= width else reason[: width - 3] + "..."


@dataclass
class Score:
    """Both backends' results on `cases`. `not_run` holds the cases neither backend ran."""
    scope: str  # what `cases` are: "cases in the corpus", or those --filter kept
    cases: list[Case]
    not_run: list[Case]
    results: dict[str, dict[str, Result]]  # {backend: {case name: result}} of the cases run
    seconds: dict[str, float]  # {backend: wall-clock seconds}

    def passed(self, backend: str) -> set[str]:
        return {name for name, (ok, _) in self.results[backend].items() if ok}

    def reason(self, backend: str, case: Case) -> str:
        return self.results[backend][case.name][1]

    def counts(self) -> list[tuple[str, int]]:
        """The summary rows: (label, number of cases)."""
        kerf, ort = self.passed("kerf"), self.passed("onnxruntime")
        run = len(self.cases) - len(self.not_run)
        return [
            (self.scope, len(self.cases)),
            ("not run: sequence or optional graph inputs/outputs", len(self.not_run)),
            ("run on both backends", run),
            ("passed by Kerf", len(kerf)),
            ("passed by ONNX Runtime", len(ort)),
            ("passed by both", len(kerf & ort)),
            ("passed by Kerf only", len(kerf - ort)),
            ("passed by ONNX Runtime only", len(ort - kerf)),
            ("failed by both", run - len(kerf | ort)),
        ]

    def failed(self, backend: str) -> list[Case]:
        """The cases run that `backend` fails, in corpus order."""
        return [case for case in self.cases if case.name in self.results[backend]
                and not self.results[backend][case.name][0]]

    def failed_alone(self, backend: str) -> list[Case]:
        """The cases `backend` fails and the other backend passes, in corpus order."""
        other = self.passed("onnxruntime" if backend == "kerf" else "kerf")
        return [case for case in self.failed(backend) if case.name in other]


@dataclass
class OpFailures:
    """One op's failing cases of one backend."""
    op: str
    failing: list[Case]
    cases_of_op: int
    kinds: collections.Counter
    sample: str  # "case: reason" of the first failing case of the most common kind

    def kinds_text(self) -> str:
        return ", ".join(f"{kind} {count}" for kind, count in self.kinds.most_common())


def failures_by_op(score: Score, backend: str, failing: list[Case]) -> list[OpFailures]:
    """`failing` (cases `backend` fails) grouped by tested op, most first, ties by op name."""
    by_op = collections.defaultdict(list)
    for case in failing:
        by_op[case.op].append(case)
    cases_of_op = collections.Counter(case.op for case in score.cases)
    groups = []
    for op, cases in by_op.items():
        kinds = collections.Counter(failure_kind(score.reason(backend, case)) for case in cases)
        top_kind = kinds.most_common(1)[0][0]
        first = next(case for case in cases if failure_kind(score.reason(backend, case)) == top_kind)
        groups.append(OpFailures(op, cases, cases_of_op[op], kinds,
                                 f"{first.name}: {short(score.reason(backend, first))}"))
    return sorted(groups, key=lambda group: (-len(group.failing), group.op))


def kinds_text(score: Score, backend: str, cases: list[Case]) -> str:
    """"kind count, ..." of `backend`'s failure reasons for `cases`, most first; "none" for no cases."""
    kinds = collections.Counter(failure_kind(score.reason(backend, case)) for case in cases)
    return ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()) or "none"


# MARK: - Report

def print_summary(score: Score, verbose: bool) -> None:
    """The summary on stdout; with `verbose`, every case Kerf alone fails."""
    width = max(len(label) for label, _ in score.counts())
    for label, count in score.counts():
        print(f"{label:<{width}}  {count:5d}")
    print(f"run time: Kerf {score.seconds['kerf']:.0f} s, ONNX Runtime {score.seconds['onnxruntime']:.0f} s")
    kerf_failed = score.failed("kerf")
    print(f"\nKerf fails {len(kerf_failed)} cases run, by kind: {kinds_text(score, 'kerf', kerf_failed)}")
    kerf_alone = score.failed_alone("kerf")
    print(f"\nKerf fails, ONNX Runtime passes: {len(kerf_alone)} cases, by kind: "
          f"{kinds_text(score, 'kerf', kerf_alone)}; by op (top {TOP_OPS}):")
    for group in failures_by_op(score, "kerf", kerf_alone)[:TOP_OPS]:
        print(f"  {group.op:<28} {len(group.failing):3d} of {group.cases_of_op:3d}  [{group.kinds_text()}]  "
              f"{group.sample}")
    ort_alone = score.failed_alone("onnxruntime")
    print(f"\nONNX Runtime fails, Kerf passes: {len(ort_alone)} cases, by kind: "
          f"{kinds_text(score, 'onnxruntime', ort_alone)}; by op:")
    for group in failures_by_op(score, "onnxruntime", ort_alone):
        print(f"  {group.op:<28} {len(group.failing):3d} of {group.cases_of_op:3d}  [{group.kinds_text()}]  "
              f"{group.sample}")
    if verbose:
        print("\nKerf fails, ONNX Runtime passes, every case:")
        for case in kerf_alone:
            print(f"  {case.name}: {short(score.reason('kerf', case), 240)}")


def cell(text: str) -> str:
    """`text` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def markdown_section(score: Score, cases_dir: str, command: str, stamp: str) -> list[str]:
    """The BENCHMARKS.md section, starting with SECTION_HEADING; `command` is this run's, after
    materialize_node_tests.py's into `cases_dir`."""
    import onnx

    corpus_size = len(score.cases)
    ops = len({case.op for case in score.cases})
    kerf_failed = score.failed("kerf")
    kerf_alone = score.failed_alone("kerf")
    ort_alone = score.failed_alone("onnxruntime")
    top = failures_by_op(score, "kerf", kerf_alone)[:TOP_OPS]
    seconds = sum(score.seconds.values())
    lines = [
        SECTION_HEADING,
        "",
        f"On this project's {os.cpu_count()}-core \"{cpu_name()}\" (/proc/cpuinfo's model name), measured on "
        f"{time.strftime('%Y-%m-%d')} with",
        "",
        "```sh",
        f"python3 Tests/Conformance/materialize_node_tests.py {cases_dir}",
        command,
        "```",
        "",
        f"(the runs took {seconds:.0f} s: Kerf {score.seconds['kerf']:.0f} s, ONNX Runtime "
        f"{score.seconds['onnxruntime']:.0f} s); {describe('kerf')}; {describe('onnxruntime')} (CPU provider); "
        f"onnx {onnx.__version__}, whose node-test "
        f"generators `materialize_node_tests.py` wrote the corpus (STAMP `{stamp}`); {score.scope}: {corpus_size} "
        f"over {ops} ops. Every case runs on both backends, with no claimed-op list and no expected-failure manifest, each backend "
        "in an isolated worker process (a crash or a timeout fails the case), judged by `run_node_tests.py`'s "
        "comparison (`compare.py`: exact shape and dtype, the case's rtol/atol, NaN matches NaN). Cases with sequence "
        "or optional graph inputs/outputs are not run: the harness feeds tensors only, to either backend (onnx marks "
        "no node-test case as not runnable).",
        "",
        "| | cases | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {count} | {100 * count / corpus_size:.1f}% |" for label, count in score.counts()]
    lines += [
        "",
        f"Kerf's {len(kerf_failed)} failures among the cases run, by kind: {kinds_text(score, 'kerf', kerf_failed)}. "
        f"The {len(kerf_alone)} of them that ONNX Runtime passes: {kinds_text(score, 'kerf', kerf_alone)}.",
        "",
        f"The {len(top)} ops with the most cases Kerf fails and ONNX Runtime passes (a case counts under the op it "
        "tests; an `_expanded` case is that op's function body, so its failure may be another op's):",
        "",
        "| op | Kerf fails, ORT passes | cases of the op | kinds | sample |",
        "|---|---:|---:|---|---|",
    ]
    lines += [f"| {group.op} | {len(group.failing)} | {group.cases_of_op} | {group.kinds_text()} | "
              f"{cell(group.sample)} |" for group in top]
    ort_groups = failures_by_op(score, "onnxruntime", ort_alone)
    lines += [
        "",
        f"The {len(ort_alone)} cases ONNX Runtime fails and Kerf passes, by kind: "
        f"{kinds_text(score, 'onnxruntime', ort_alone)}"
        + "".join(f"{'; by op: ' if i == 0 else ', '}{group.op} {len(group.failing)}"
                  for i, group in enumerate(ort_groups)) + ".",
        "",
    ]
    return lines


def command_line(argv: list[str]) -> str:
    """This run's command, with KERF_LIBRARY when set."""
    library = os.environ.get("KERF_LIBRARY")
    prefix = [f"KERF_LIBRARY={library}"] if library else []
    return " ".join(prefix + ["python3 Tests/Conformance/score_corpus.py"] + argv)


# MARK: - Main

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", required=True, help="directory written by materialize_node_tests.py")
    parser.add_argument("--filter", default="", help="only cases whose name contains SUBSTR")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per case before it fails")
    parser.add_argument("--markdown", type=Path, help=f"write the section '{SECTION_HEADING}' into this file")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print every case Kerf alone fails")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    corpus = load_corpus(args.cases)
    cases = [case for name, case in sorted(corpus.items()) if args.filter in name]
    runnable = [case for case in cases if runs_as_tensors(case)]
    print(f"{describe('kerf')}; {describe('onnxruntime')}: {len(cases)} cases "
          f"({len(runnable)} tensor-only; corpus: {len(corpus)} cases)", file=sys.stderr)

    results, seconds = {}, {}
    for backend in ("kerf", "onnxruntime"):
        start = time.monotonic()
        results[backend] = run_all(runnable, backend, args.timeout)
        seconds[backend] = time.monotonic() - start
    scope = f"cases whose name contains {args.filter!r}" if args.filter else "cases in the corpus"
    score = Score(scope, cases, [case for case in cases if not runs_as_tensors(case)], results, seconds)
    print_summary(score, args.verbose)

    if args.markdown:
        stamp = (Path(args.cases) / "STAMP").read_text().strip()
        section = markdown_section(score, args.cases, command_line(sys.argv[1:]), stamp)
        replace_section(args.markdown, SECTION_HEADING, section)
        print(f"\nwrote '{SECTION_HEADING}' into {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
