#!/usr/bin/python3
"""Soak test: many concurrent clients against `strata serve` for a long time, with random
cancellations, deadlines and invalid requests mixed in.

usage: /usr/bin/python3 bench/soak.py [--model M] [--tp 2] [--pp 2] [--clients 64] [--duration 600]
                                      [--bin build/bin] [--json FILE] [--max-rss-growth 0.05]

Without --model it makes the llama `tiny` preset with `strata make-model`. Each client loops:
  15% cancel their stream after a few tokens        -> CANCELLED
  15% send a deadline of 5-200 ms                   -> OK or DEADLINE_EXCEEDED
   5% send an invalid request (max_new_tokens 0)    -> INVALID_ARGUMENT
  65% generate normally from one of 16 fixed prompts, greedy or seeded sampling; every completed
      answer to the same prompt must be the same tokens (batching and load must not change them).
A full queue may answer RESOURCE_EXHAUSTED. Any other code is an error. At the end it checks that
no request is left running or waiting and every KV block is free, and compares the resident memory
of the coordinator and workers late in the run with early in the run (after warm-up): growth above
--max-rss-growth fails the run when it lasted at least 120 s (shorter runs only report it).
Exit status 0 when everything holds. Needs Debian's python3-grpcio and protobuf tools.
"""
import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_bench import load_stubs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = {"OK", "CANCELLED", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = open(f"/proc/{p}/task/{p}/children").read().split()
        except OSError:
            kids = []
        for k in kids:
            out.append(int(k))
            todo.append(int(k))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--pp", type=int, default=2)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--json")
    ap.add_argument("--max-rss-growth", type=float, default=0.05)
    a = ap.parse_args()
    import grpc
    pb, rpc = load_stubs()
    strata = os.path.join(a.bin, "strata")
    tmp = tempfile.mkdtemp(prefix="strata_soak.")
    model = a.model
    if model is None:
        model = os.path.join(tmp, "tiny.gguf")
        subprocess.run([strata, "make-model", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--out", model],
                       check=True, capture_output=True)
    serve_out = os.path.join(tmp, "serve.out")
    serve = subprocess.Popen([strata, "serve", "--model", model, "--tp", str(a.tp), "--pp", str(a.pp), "--listen",
                              "127.0.0.1:0", "--max-running", "32", "--max-waiting", "64", "--startup-timeout", "600"],
                             stdout=open(serve_out, "w"), stderr=open(os.path.join(tmp, "serve.err"), "w"),
                             stdin=subprocess.DEVNULL)
    failures = []
    try:
        addr = None
        deadline = time.time() + 660
        while addr is None and time.time() < deadline and serve.poll() is None:
            m = re.search(r"^strata serve: serving .* on (\S+)$", open(serve_out).read(), re.M)
            addr = m.group(1) if m else None
            time.sleep(0.1)
        if addr is None:
            sys.exit("soak: strata serve did not start:\n" + open(os.path.join(tmp, "serve.err")).read())
        channel = grpc.insecure_channel(addr)
        stub = rpc.GenerationStub(channel)
        info = stub.GetModelInfo(pb.GetModelInfoRequest())
        vocab = info.vocab_size
        rng0 = random.Random(7)
        prompts = []
        for i in range(16):
            n = rng0.randint(4, 48)
            prompts.append(([1] + [rng0.randint(3, vocab - 2) for _ in range(n - 1)], rng0.randint(4, 32),
                            0.0 if i % 2 == 0 else 0.8))
        first_answer = {}  # prompt index -> token ids
        lock = threading.Lock()
        codes = {}
        mismatches = []
        stop_at = time.time() + a.duration

        def count(code):
            with lock:
                codes[code] = codes.get(code, 0) + 1

        def client(k):
            rng = random.Random(1000 + k)
            while time.time() < stop_at:
                kind = rng.random()
                i = rng.randrange(len(prompts))
                ids, max_new, temp = prompts[i]
                req = pb.GenerateRequest(token_ids=pb.TokenIds(ids=ids), max_new_tokens=max_new, ignore_eos=True,
                                         sampling=pb.SamplingParams(temperature=temp, seed=1234 + i))
                timeout = None
                if 0.30 <= kind < 0.35:
                    req.max_new_tokens = 0
                elif 0.15 <= kind < 0.30:
                    timeout = rng.uniform(0.005, 0.2)
                try:
                    call = stub.Generate(req, timeout=timeout)
                    got = []
                    cancel_after = rng.randint(1, 3) if kind < 0.15 else None
                    for r in call:
                        got.extend(t.id for t in r.tokens)
                        if cancel_after is not None and len(got) >= cancel_after:
                            call.cancel()
                    count("OK")
                    if timeout is None and kind >= 0.35:
                        with lock:
                            ref = first_answer.setdefault(i, got)
                            if ref != got:
                                mismatches.append((i, ref, got))
                except grpc.RpcError as e:
                    count(e.code().name)

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(a.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        samples = []  # (seconds since start, coordinator + workers RSS)
        while any(t.is_alive() for t in threads):
            pids = descendants(serve.pid)
            samples.append((time.time() - t0, sum(rss_bytes(p) for p in pids)))
            time.sleep(min(5.0, max(0.5, a.duration / 40)))
        for t in threads:
            t.join()
        elapsed = time.time() - t0

        # Afterwards: nothing running or waiting, every block free.
        status = None
        for _ in range(50):
            status = stub.GetClusterStatus(pb.GetClusterStatusRequest())
            if status.requests_running == 0 and status.requests_waiting == 0 and \
                    status.kv_blocks_free == status.kv_blocks_total:
                break
            time.sleep(0.1)
        total = sum(codes.values())
        unexpected = {c: n for c, n in codes.items() if c not in EXPECTED}
        early = [r for s, r in samples if 0.15 * elapsed <= s <= 0.3 * elapsed]
        late = [r for s, r in samples if s >= 0.85 * elapsed]
        rss_early = statistics.median(early) if early else 0
        rss_late = statistics.median(late) if late else 0
        growth = rss_late / rss_early - 1 if rss_early else 0.0
        report = {
            "clients": a.clients, "duration_s": round(elapsed, 1), "layout": f"tp={a.tp} pp={a.pp}",
            "requests": total, "requests_per_s": round(total / elapsed, 2), "by_code": codes,
            "unexpected_codes": unexpected, "answer_mismatches": len(mismatches),
            "kv_blocks_free": status.kv_blocks_free, "kv_blocks_total": status.kv_blocks_total,
            "requests_running_after": status.requests_running, "requests_waiting_after": status.requests_waiting,
            "rss_early_mib": round(rss_early / 2**20, 1), "rss_late_mib": round(rss_late / 2**20, 1),
            "rss_growth": round(growth, 4),
        }
        print(json.dumps(report, indent=2))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=2)
        if total == 0:
            failures.append("no request completed")
        if unexpected:
            failures.append(f"unexpected status codes {unexpected}")
        if mismatches:
            i, ref, got = mismatches[0]
            failures.append(f"{len(mismatches)} answers differ from the first answer to the same prompt "
                            f"(prompt {i}: {ref} vs {got})")
        if status.requests_running or status.requests_waiting or status.kv_blocks_free != status.kv_blocks_total:
            failures.append(f"not idle afterwards: {status}")
        if codes.get("OK", 0) == 0:
            failures.append("no request succeeded")
        if elapsed >= 120 and growth > a.max_rss_growth:
            failures.append(f"resident memory grew {100 * growth:.1f}% (limit {100 * a.max_rss_growth:.0f}%)")
        if serve.poll() is not None:
            failures.append(f"strata serve exited during the soak ({serve.returncode})")
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(60)
            except subprocess.TimeoutExpired:
                serve.kill()
        subprocess.run(["rm", "-rf", tmp])
    for f in failures:
        print(f"soak: FAIL: {f}", file=sys.stderr)
    print("soak: " + ("FAILED" if failures else "passed"), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
