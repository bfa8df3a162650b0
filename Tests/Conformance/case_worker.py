"""Runs node-test cases: in this process (run_case) or in a worker subprocess
that survives library crashes (IsolatedRunner).

Protocol between IsolatedRunner and a worker (`python3 case_worker.py BACKEND`):
one JSON request per line on the worker's stdin, {"case": {Case fields}}, and one
JSON reply per line, {"ok": bool, "reason": str}, on a private pipe (the worker
moves its own stdout to stderr so library prints cannot corrupt replies). A
worker that dies or hangs is replaced, and the case it was running fails.
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile

import onnx

from backends import BACKENDS
from compare import outputs_mismatch
from node_corpus import Case, load_data_sets


def run_case(case: Case, backend: str) -> tuple[bool, str]:
    """(passed, one-line reason). Every exception is the case's failure."""
    if case.non_tensor_values:
        kinds = ", ".join(kind.replace("_type", "") for kind in case.non_tensor_values)
        return False, f"graph inputs/outputs include {kinds} values; Kerf runs tensors only"
    try:
        model_path = os.path.join(case.directory, "model.onnx")
        model = onnx.load(model_path)
        data_sets = load_data_sets(case, model)
        run = BACKENDS[backend](model_path)
        output_names = [v.name for v in model.graph.output]
        for feeds, expected in data_sets:
            problem = outputs_mismatch(expected, run(feeds), output_names, case.rtol, case.atol)
            if problem:
                return False, problem
        return True, ""
    except Exception as error:  # noqa: BLE001 - a failing case, not a failing runner
        return False, f"{type(error).__name__}: {error}"


class IsolatedRunner:
    """Runs each case in a long-lived worker process, restarted after a crash."""

    def __init__(self, backend: str, timeout: float):
        self.backend = backend
        self.timeout = timeout
        self.worker = None
        self.stderr = tempfile.TemporaryFile()
        self.restarts = 0

    def _start(self) -> None:
        reply_read, reply_write = os.pipe()
        env = dict(os.environ, SWIFT_BACKTRACE="enable=no")  # crash fast, no symbolication
        self.worker = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), self.backend, str(reply_write)],
            stdin=subprocess.PIPE, stderr=self.stderr, stdout=self.stderr,
            pass_fds=(reply_write,), env=env, text=True,
        )
        os.close(reply_write)
        self.replies = os.fdopen(reply_read, "r")

    def _stop(self) -> int:
        """Kills the worker if it still runs; returns its exit status."""
        if self.worker.poll() is None:
            self.worker.kill()
        status = self.worker.wait()
        self.replies.close()
        self.worker = None
        return status

    def run(self, case: Case) -> tuple[bool, str]:
        if self.worker is None:
            self._start()
        stderr_start = self.stderr.seek(0, os.SEEK_END)
        try:
            self.worker.stdin.write(json.dumps({"case": dataclasses.asdict(case)}) + "\n")
            self.worker.stdin.flush()
        except BrokenPipeError:
            pass  # reported below as a crash
        ready, _, _ = select.select([self.replies], [], [], self.timeout)
        line = self.replies.readline() if ready else None
        if line:
            reply = json.loads(line)
            return reply["ok"], reply["reason"]
        # The worker died (EOF) or hung (timeout): replace it, blame this case.
        status = self._stop()
        self.restarts += 1
        if line is None:
            return False, f"timed out after {self.timeout:g} s"
        how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
        return False, f"crashed ({how}): {self._crash_description(stderr_start)}"

    def _crash_description(self, stderr_start: int) -> str:
        self.stderr.seek(stderr_start)
        lines = [l.strip() for l in self.stderr.read().decode("utf-8", "replace").splitlines() if l.strip()]
        # Swift runtime traps print "Fatal error: ..." (or "...: Fatal error: ...").
        fatal = [l for l in lines if "Fatal error" in l or "fatal error" in l]
        return (fatal or lines or ["no message"])[-1]

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stdin.close()
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.worker.kill()
            self.replies.close()
            self.worker = None


def worker_main(backend: str, reply_fd: int) -> None:
    replies = os.fdopen(reply_fd, "w")
    os.dup2(2, 1)  # library output goes to stderr, never into the reply pipe
    for line in sys.stdin:
        case = Case(**json.loads(line)["case"])
        ok, reason = run_case(case, backend)
        replies.write(json.dumps({"ok": ok, "reason": reason}) + "\n")
        replies.flush()


if __name__ == "__main__":
    worker_main(sys.argv[1], int(sys.argv[2]))
