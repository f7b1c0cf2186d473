#!/usr/bin/env python3
"""Prints the comparison table of benchmarks/compare_comm.sh from its JSON-lines results.

Each (ranks, op, size, tool) was measured REPEATS times; the table shows the run with the median time.
"""
import json
import sys
from collections import defaultdict


def size_label(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def main(path):
    runs = defaultdict(lambda: defaultdict(list))
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        # Tandem rounds counts to the world size the same way the others do, so bytes match.
        runs[(record["ranks"], record["op"], record["bytes"])][record["tool"]].append(record)
    rows = {}
    for key, tools in runs.items():
        rows[key] = {}
        for tool, records in tools.items():
            records.sort(key=lambda r: r["time_us"])
            median = dict(records[len(records) // 2])
            if tool == "tandem":
                median["wrong"] = sum(r["wrong"] for r in records)
            rows[key][tool] = median
    print("| ranks | op | size | Tandem µs | OpenMPI µs | Gloo µs | Tandem busbw GB/s | OpenMPI busbw | Gloo busbw "
          "| busbw ÷ OpenMPI | busbw ÷ Gloo | Tandem wrong |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (ranks, op, size), tools in sorted(rows.items()):
        t, m, g = tools.get("tandem"), tools.get("openmpi"), tools.get("gloo")
        def cell(r, key, fmt):
            return format(r[key], fmt) if r else "–"
        def ratio(r):
            return f"{t['busbw_gbps'] / r['busbw_gbps']:.2f}×" if t and r and r["busbw_gbps"] > 0 else "–"
        print(f"| {ranks} | {op} | {size_label(size)} | {cell(t, 'time_us', '.1f')} | {cell(m, 'time_us', '.1f')} "
              f"| {cell(g, 'time_us', '.1f')} | {cell(t, 'busbw_gbps', '.3f')} | {cell(m, 'busbw_gbps', '.3f')} "
              f"| {cell(g, 'busbw_gbps', '.3f')} | {ratio(m)} | {ratio(g)} | {t['wrong'] if t else '–'} |")


if __name__ == "__main__":
    main(sys.argv[1])
