#!/usr/bin/python3
"""Serving benchmark: aggregate throughput and latency of a running strata server.

usage: /usr/bin/python3 bench/serve_bench.py --server HOST:PORT [--streams 1,8,32] [--prompt-tokens 32]
                                             [--new-tokens 64] [--prefill-tokens 512]

For each concurrency N, N closed-loop streams each send greedy requests (ignore_eos, fixed
lengths) for --rounds rounds; prints aggregate decode tokens/s, time to first token and
inter-token latency percentiles. Prefill throughput: one request with a --prefill-tokens prompt
and one new token, timed to its first token. Batched decode throughput: N streams started together,
counting only the tokens that arrive while all N are decoding, as a fraction of prefill throughput.
With --ratio-only, each batched run is followed by a prefill window of comparable length, and
each adjacent pair gives two ratios: by window counts (tokens / window time on both sides) and by
medians (N / median decode step against prompt / median time to first token, which one slow spell
of this shared machine inside a window does not move); the median of each over the pairs is
printed, and each pair's decode steps as p10/p50/p90/max (their spread on identical work is the
machine's). Many short pairs (e.g. --decode-reps 6 --decode-tokens 64) beat a few long ones here. Needs Debian's python3-grpcio; the
stubs are generated from proto/ into a temp dir with protoc and grpc_python_plugin.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_stubs():
    out = tempfile.mkdtemp(prefix="strata_stubs_")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={out}", f"--grpc_out={out}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "strata/v1/generation.proto"], check=True)
    for d in ("strata", "strata/v1"):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    from strata.v1 import generation_pb2, generation_pb2_grpc  # noqa: E402
    return generation_pb2, generation_pb2_grpc


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prefill-tokens", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=96, help="new tokens per stream in the decode-only run")
    ap.add_argument("--decode-reps", type=int, default=2, help="decode-only runs per stream count (best is shown)")
    ap.add_argument("--ratio-only", action="store_true",
                    help="skip the latency table: prefill and batched decode only; after each batched run, a "
                         "prefill window of comparable length, and the ratio of each adjacent pair (median shown)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"), help="where strata is (for strata bench)")
    a = ap.parse_args()
    import grpc
    pb, rpc = load_stubs()
    stub = rpc.GenerationStub(grpc.insecure_channel(a.server))
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    vocab = info.vocab_size
    print(f"# {info.model_path}: {info.architecture}, tp={info.tp} pp={info.pp}, context {info.context_length}")

    def prompt(n, salt):
        return pb.TokenIds(ids=[1] + [(7 * i + 13 * salt) % (vocab - 3) + 3 for i in range(n - 1)])

    def one(n_prompt, n_new, salt, ttft, itl, counts, stamps=None):
        req = pb.GenerateRequest(token_ids=prompt(n_prompt, salt), max_new_tokens=n_new, ignore_eos=True,
                                 sampling=pb.SamplingParams(temperature=0))
        t0 = time.perf_counter()
        last = None
        n = 0
        for r in stub.Generate(req):
            now = time.perf_counter()
            for _ in r.tokens:
                if stamps is not None:
                    stamps.append(now)
                if last is None:
                    ttft.append(now - t0)
                else:
                    itl.append(now - last)
                last = now
                n += 1
        counts.append(n)

    # Prefill: one long prompt, one new token; best of 3.
    firsts = []
    for salt in range(3):
        one(a.prefill_tokens, 1, salt, firsts, [], [])
    best = min(firsts)
    print(f"prefill: {a.prefill_tokens} tokens in {best * 1000:.0f} ms = {a.prefill_tokens / best:.1f} tokens/s")
    if not a.ratio_only:
        latency_table(a, one)
    batched_decode(a, one, firsts)


def latency_table(a, one):
    print(f"{'streams':>7} {'tok/s':>9} {'ttft p50':>9} {'ttft p90':>9} {'ttft p99':>9} {'itl p50':>8} {'itl p90':>8} {'itl p99':>8}")
    for n in [int(x) for x in a.streams.split(",")]:
        ttft, itl, counts = [], [], []

        def worker(k):
            for r in range(a.rounds):
                one(a.prompt_tokens, a.new_tokens, 1000 * k + r, ttft, itl, counts)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
        t0 = time.perf_counter()
        [t.start() for t in threads]
        [t.join() for t in threads]
        dt = time.perf_counter() - t0
        ms = lambda x: f"{x * 1000:8.1f}"
        print(f"{n:>7} {sum(counts) / dt:9.1f} {ms(pct(ttft, 50))} {ms(pct(ttft, 90))} {ms(pct(ttft, 99))} "
              f"{ms(pct(itl, 50))} {ms(pct(itl, 90))} {ms(pct(itl, 99))}")


def prefill_window(a, one, seconds, salt, firsts):
    """Consecutive --prefill-tokens prompts (one new token each) for at least `seconds` and at
    least 2 requests; returns (prompt tokens / summed time to first token, the same with the
    median time to first token)."""
    times = []
    t0 = time.perf_counter()
    while len(times) < 2 or time.perf_counter() - t0 < seconds:
        ttft = []
        one(a.prefill_tokens, 1, salt + len(times), ttft, [], [])
        times.extend(ttft)
        firsts.extend(ttft)
    return a.prefill_tokens * len(times) / sum(times), a.prefill_tokens / statistics.median(times)


def batched_decode(a, one, firsts):
    # Batched decode alone: N streams start together; count the tokens that arrive while all N are
    # decoding (after the last one's first token, before the first one's last token).
    # The same with strata bench (C++; the Python client's own CPU use matters on a 2-core machine):
    # N requests started together, N / median inter-token latency. The median is a decode step's
    # time; the mean time per output token would also spread over each request the prefill steps
    # of the others that started with it (~8 s each here), which is not decode speed.
    print(f"{'streams':>7} {'decode tok/s while all decode':>30} {'/ prefill tok/s':>16} "
          f"{'strata bench: N / ITL p50':>26} {'/ prefill tok/s':>16}")
    # The columns: the best of --decode-reps runs against the best prefill of all, which is strict
    # (prefill gets many more short tries at a quiet spell of this shared machine); --ratio-only
    # adds the ratio of each batched run to a prefill window run right after it.
    for n in [int(x) for x in a.streams.split(",")]:
        rate = 0.0
        pairs = []  # --ratio-only: (batched tok/s, prefill tok/s of the window right after)
        for rep in range(a.decode_reps):
            per_stream = [[] for _ in range(n)]
            threads = [threading.Thread(target=one, args=(a.prompt_tokens, a.decode_tokens, 5000 + 100 * rep + k, [],
                                                          [], [], per_stream[k])) for k in range(n)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            start = max(st[0] for st in per_stream)
            end = min(st[-1] for st in per_stream)
            inside = sum(1 for st in per_stream for t in st if start < t <= end)
            # Each decode step inside the window, as the gaps between a stream's consecutive tokens.
            steps = [t1 - t0 for st in per_stream for t0, t1 in zip(st, st[1:]) if start <= t0 and t1 <= end]
            if end > start:
                rate = max(rate, inside / (end - start))
            if a.ratio_only and end > start and steps:
                # Prefill right after, over a window of comparable length (consecutive 512-token
                # prompts for at least half the batched window): on a shared machine whose speed
                # drifts, a pair of adjacent windows compares like with like, where one short
                # prefill against a long decode window would favour whichever caught a quiet spell.
                # Each side is also taken by its median (N / median step, prompt / median time to
                # first token), which a slow spell inside one window does not move.
                pre_mean, pre_median = prefill_window(a, one, 0.5 * (end - start), 100 + 10 * rep, firsts)
                pairs.append((inside / (end - start), pre_mean, n / statistics.median(steps), pre_median,
                              (pct(steps, 10), statistics.median(steps), pct(steps, 90), max(steps))))
        cxx = float("nan")
        cxx_pair = None  # --ratio-only: (strata bench tok/s, prefill tok/s of the window right after)
        strata = os.path.join(a.bin, "strata")
        if os.access(strata, os.X_OK):
            r = subprocess.run([strata, "bench", "--server", a.server, "--concurrency", str(n), "--requests", str(n),
                                "--prompt-tokens", str(a.prompt_tokens), "--output-tokens", str(a.decode_tokens),
                                "--json", "-", "--no-progress"], capture_output=True, text=True)
            if r.returncode == 0:
                import json
                itl = json.loads(r.stdout)["itl_s"]["p50"]
                cxx = n / itl if itl else float("nan")
                if a.ratio_only and itl:
                    cxx_pair = (cxx, prefill_window(a, one, 20.0, 200, firsts)[1])
        prefill_rate = a.prefill_tokens / min(firsts)  # the best prefill so far, windows included
        print(f"{n:>7} {rate:30.1f} {rate / prefill_rate:16.2f} {cxx:26.1f} {cxx / prefill_rate:16.2f}")
        for i, (b, p, bm, pm, st) in enumerate(pairs):
            print(f"  pair {i + 1}: batched {b:.1f} tok/s, prefill window after it {p:.1f} tok/s, ratio {b / p:.2f}; "
                  f"by medians {bm:.1f} / {pm:.1f} = {bm / pm:.2f}; decode steps p10/p50/p90/max "
                  f"{'/'.join(f'{1000 * x:.0f}' for x in st)} ms")
        if cxx_pair:
            print(f"  strata bench: {cxx_pair[0]:.1f} tok/s (N / median step), prefill window after it "
                  f"{cxx_pair[1]:.1f} tok/s (by its median), ratio {cxx_pair[0] / cxx_pair[1]:.2f}")
        if pairs:
            for what, rs in (("window counts", [b / p for b, p, _, _, _ in pairs]),
                             ("medians", [bm / pm for _, _, bm, pm, _ in pairs])):
                rs = sorted(rs)
                print(f"  adjacent pairs, {what}: median ratio {statistics.median(rs):.2f} (of {len(rs)}; "
                      f"range {rs[0]:.2f}-{rs[-1]:.2f})")
    if a.ratio_only:
        print(f"prefill, best of {len(firsts)} (also between the batched runs): "
              f"{a.prefill_tokens / min(firsts):.1f} tokens/s")


if __name__ == "__main__":
    main()
