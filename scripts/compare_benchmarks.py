"""Compares the latency tables of two BENCHMARKS.md files written by `make bench` on the same
machine (before and after a change): per row, Kerf's time after/before and ONNX Runtime's
after/before. ONNX Runtime's code is the same in both runs, so its ratios measure the machine's
drift between them: a Kerf ratio inside their spread is noise.

    python3 scripts/compare_benchmarks.py before/BENCHMARKS.md BENCHMARKS.md
"""

import statistics
import sys


def latency_rows(path):
    """{(table, row label): (Kerf ms, ORT ms)} of every table under a "Latency" heading."""
    rows, table, header = {}, None, None
    for line in open(path, encoding="utf-8"):
        if line.startswith("#"):
            table = line.strip("# \n") if "Latency" in line else None
            header = None
            continue
        if table is None or not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= set("-:") or "Kerf ms" not in header:
            continue
        k, o = header.index("Kerf ms"), header.index("ORT ms")
        rows[(table, " | ".join(cells[:k]))] = (float(cells[k]), float(cells[o]))
    return rows


def main(before_path, after_path):
    before, after = latency_rows(before_path), latency_rows(after_path)
    keys = [key for key in before if key in after]
    print("| table | model | batch | threads | Kerf before ms | Kerf after ms | Kerf after/before | ORT after/before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    kerf, ort = [], []
    for key in keys:
        (kb, ob), (ka, oa) = before[key], after[key]
        kerf.append(ka / kb)
        ort.append(oa / ob)
        print(f"| {key[0]} | {key[1]} | {kb:.3f} | {ka:.3f} | {ka / kb:.2f} | {oa / ob:.2f} |")
    geo = statistics.geometric_mean
    print(f"\n{len(keys)} rows. Kerf after/before: geometric mean {geo(kerf):.3f}, "
          f"{min(kerf):.2f} to {max(kerf):.2f}. ONNX Runtime (unchanged) after/before: geometric mean "
          f"{geo(ort):.3f}, {min(ort):.2f} to {max(ort):.2f}. Rows where Kerf's ratio exceeds ORT's by "
          f"more than 10%: {sum(1 for a, b in zip(kerf, ort) if a > b * 1.10)}.")


if __name__ == "__main__":
    main(*sys.argv[1:3])
