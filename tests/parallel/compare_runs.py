#!/usr/bin/env python3
"""Compares a parallel run with the single-process reference run.

usage: compare_runs.py REF.jsonl REF.logits RUN.jsonl RUN.logits N_VOCAB [--atol X]

*.jsonl are --json outputs (one {"id": ...} per token); *.logits are --dump-logits files (f32,
n_vocab per step). Greedy ids must be identical; logits must agree within atol at every step
(float rounding differs with the split: partial sums are added in another order). If ids ever
differ, it must be at a step where the reference's top two logits are closer than atol (a tie the
rounding may break either way), and only the steps before it are compared.
"""
import array
import json
import sys


def ids(path):
    with open(path) as f:
        return [json.loads(l)["id"] for l in f if l.startswith('{"id"')]


def logits(path, n_vocab):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return [a[i:i + n_vocab] for i in range(0, len(a), n_vocab)]


def main():
    ref_ids, ref_log, run_ids, run_log, n_vocab = sys.argv[1:6]
    n_vocab = int(n_vocab)
    atol = float(sys.argv[sys.argv.index("--atol") + 1]) if "--atol" in sys.argv else 1e-4
    a, b = ids(ref_ids), ids(run_ids)
    la, lb = logits(ref_log, n_vocab), logits(run_log, n_vocab)
    if not a or len(la) != len(a) or len(lb) != len(b):
        print(f"FAIL: bad inputs: {len(a)} ids / {len(la)} logit rows vs {len(b)} / {len(lb)}")
        return 1
    steps = min(len(a), len(b))
    worst = 0.0
    for t in range(steps):
        worst = max(worst, max(abs(x - y) for x, y in zip(la[t], lb[t])))
        if a[t] != b[t]:
            top = sorted(la[t], reverse=True)
            margin = top[0] - top[1]
            if margin < atol:
                print(f"ok: ids agree for {t} steps, then a near-tie (margin {margin:.2e}); max logit diff {worst:.2e}")
                return 0
            print(f"FAIL: step {t}: id {b[t]} instead of {a[t]} (reference margin {margin:.2e})")
            return 1
    if len(a) != len(b):
        print(f"FAIL: {len(b)} tokens instead of {len(a)}")
        return 1
    if worst > atol:
        print(f"FAIL: logits differ by {worst:.2e} > {atol:.0e}")
        return 1
    print(f"ok: {steps} identical ids, max logit diff {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
