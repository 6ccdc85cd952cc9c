"""Reading load test results (JSON lines) for scripts/plots.sh."""
import json


def read_rows(path):
    return [json.loads(line) for line in open(path) if line.startswith("{")]


def median_runs(rows, key):
    """Repeated runs of one point (same key(row)): the run with the median
    p99, with best_p99_us (the best run's p99) and runs (how many)."""
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    out = []
    for g in groups.values():
        med = dict(sorted(g, key=lambda r: r["p99_us"])[(len(g) - 1) // 2])
        med["best_p99_us"], med["runs"] = min(r["p99_us"] for r in g), len(g)
        out.append(med)
    return out


def ms(us):
    return "%.2f" % (us / 1e3) if us < 1e5 else "%.0f" % (us / 1e3)
