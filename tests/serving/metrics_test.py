#!/usr/bin/python3
"""The coordinator's Prometheus endpoint under `strata serve --tp 2 --pp 2 --metrics-listen`.

The text must parse with the reference parser (Debian's python3-prometheus-client), every named
metric must be there with its type, and after a known set of requests (made with `strata generate
--json`, whose usage lines give the exact token counts) the counters and histogram counts must have
grown by exactly the right amounts. Every worker rank reports its own figures, labelled with
stage, tp_rank and host.

usage: metrics_test.py BIN_DIR
Exits 77 (skip) without the parser.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed (apt-get install python3-prometheus-client)")
    sys.exit(77)

BIN = sys.argv[1]
STRATA = os.path.join(BIN, "strata")
failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        check(r.headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
              "Content-Type is the Prometheus text format 0.0.4")
        return r.read().decode("utf-8")


def parse(text):
    """{(name, labels tuple): value} and {family name: type}, via the reference parser."""
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def generate(addr, prompt, max_tokens, expect_ok=True):
    p = subprocess.run([STRATA, "generate", "--server", addr, "--prompt", prompt, "--max-tokens", str(max_tokens),
                        "--temperature", "0", "--ignore-eos", "--json", "--timeout", "60"],
                       capture_output=True, text=True, timeout=120)
    if expect_ok:
        check(p.returncode == 0, f"generate '{prompt}' ({max_tokens} tokens) succeeded: {p.stderr.strip()}")
        last = json.loads(p.stdout.strip().splitlines()[-1])
        return last["usage"]
    check(p.returncode != 0, f"generate '{prompt}' ({max_tokens} tokens) failed as intended: {p.stderr.strip()}")
    return p.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="strata_metrics.")
    serve = None
    try:
        model = os.path.join(tmp, "m.gguf")
        subprocess.run([STRATA, "make-model", "--arch", "llama", "--preset", "tiny", "--dtype", "f32", "--out", model],
                       check=True, capture_output=True)
        out = open(os.path.join(tmp, "serve.out"), "w")
        err = open(os.path.join(tmp, "serve.err"), "w")
        serve = subprocess.Popen([STRATA, "serve", "--model", model, "--tp", "2", "--pp", "2", "--listen",
                                  "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--threads", "1",
                                  "--max-new-tokens", "16"], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        addr = url = None
        deadline = time.time() + 180
        while time.time() < deadline and serve.poll() is None and addr is None:
            text = open(os.path.join(tmp, "serve.out")).read()
            m = re.search(r"^strata serve: metrics on (\S+)$", text, re.M)
            a = re.search(r"^strata serve: serving .* on (\S+)$", text, re.M)
            if m and a:
                url, addr = m.group(1), a.group(1)
            time.sleep(0.1)
        if addr is None:
            print("FAIL: strata serve did not start:\n" + open(os.path.join(tmp, "serve.err")).read())
            return 1
        check(url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), f"metrics URL {url}")

        before_text = scrape(url)
        before, types = parse(before_text)
        expected_types = {
            "strata:time_to_first_token_seconds": "histogram",
            "strata:inter_token_latency_seconds": "histogram",
            "strata:e2e_request_latency_seconds": "histogram",
            "strata:request_queue_time_seconds": "histogram",
            "strata:num_requests_running": "gauge",
            "strata:num_requests_waiting": "gauge",
            "strata:kv_cache_usage_ratio": "gauge",
            # The parser names counter families without the _total suffix.
            "strata:prompt_tokens": "counter",
            "strata:generation_tokens": "counter",
            "strata:num_preemptions": "counter",
            "strata:request_failures": "counter",
            "strata:worker_step_compute_seconds": "counter",
            "strata:worker_step_communication_seconds": "counter",
            "strata:worker_resident_memory_bytes": "gauge",
        }
        for name, t in expected_types.items():
            check(types.get(name) == t, f"{name} is a {t} (found {types.get(name)})")

        # Known work: three greedy requests, two invalid ones.
        usages = [generate(addr, "Once upon a time", 4), generate(addr, "The cat sat", 5),
                  generate(addr, "Hello", 6)]
        bad_empty = generate(addr, "", 4, expect_ok=False)
        bad_long = generate(addr, "Hello", 100, expect_ok=False)
        check("INVALID_ARGUMENT" in bad_empty and "INVALID_ARGUMENT" in bad_long, "both bad requests got INVALID_ARGUMENT")
        n_ok = len(usages)
        completion = sum(u["completion_tokens"] for u in usages)
        prompt = sum(u["prompt_tokens"] for u in usages)
        check(completion == 15, f"the requests generated 4 + 5 + 6 tokens (got {completion})")

        after, _ = parse(scrape(url))

        def delta(name, **labels):
            return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

        check(delta("strata:generation_tokens_total") == completion,
              f"generation_tokens_total grew by {completion} (got {delta('strata:generation_tokens_total')})")
        check(delta("strata:prompt_tokens_total") == prompt,
              f"prompt_tokens_total grew by {prompt} (got {delta('strata:prompt_tokens_total')})")
        check(delta("strata:request_success_total") == n_ok, f"request_success_total grew by {n_ok}")
        check(delta("strata:request_failures_total", code="INVALID_ARGUMENT") == 2,
              "request_failures_total{code=INVALID_ARGUMENT} grew by 2")
        check(delta("strata:request_failures_total", code="UNAVAILABLE") == 0, "no UNAVAILABLE failures")
        for h, n in [("strata:time_to_first_token_seconds", n_ok), ("strata:e2e_request_latency_seconds", n_ok),
                     ("strata:request_queue_time_seconds", n_ok),
                     ("strata:inter_token_latency_seconds", completion - n_ok)]:
            check(delta(h + "_count") == n, f"{h}_count grew by {n} (got {delta(h + '_count')})")
            check(delta(h + "_sum") > 0, f"{h}_sum grew")
            buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in after.items() if k[0] == h + "_bucket"))
            counts = [v for _, v in buckets]
            check(counts == sorted(counts) and buckets[-1][0] == float("inf") and counts[-1] == value(after, h + "_count"),
                  f"{h} buckets are cumulative and end with +Inf = count")
        check(value(after, "strata:num_requests_running") == 0 and value(after, "strata:num_requests_waiting") == 0,
              "nothing running or waiting afterwards")
        check(value(after, "strata:kv_cache_usage_ratio") == 0, "every KV block free afterwards")
        check(delta("strata:num_steps_total") >= completion, "steps counted")

        # Every rank, labelled, with its own figures.
        ranks = sorted(dict(k[1]).get("rank") for k in after if k[0] == "strata:worker_step_compute_seconds_total")
        check(ranks == ["0", "1", "2", "3"], f"all four ranks report (got {ranks})")
        for k, v in after.items():
            if k[0] != "strata:worker_step_compute_seconds_total":
                continue
            labels = dict(k[1])
            r = int(labels["rank"])
            check(labels["stage"] == str(r // 2) and labels["tp_rank"] == str(r % 2) and labels["host"] != "",
                  f"rank {r} labels {labels}")
            check(v > 0, f"rank {r} compute seconds {v} > 0")
            check(value(after, "strata:worker_step_communication_seconds_total", **labels) > 0,
                  f"rank {r} communication seconds > 0")
            check(value(after, "strata:worker_resident_memory_bytes", **labels) > 1e6, f"rank {r} resident memory")
            # A rank's figures travel on its own stream and may trail the tokens by one step.
            check(delta("strata:worker_steps_total", **labels) >= completion - 1, f"rank {r} steps grew")

        # Not a metrics path: 404; the endpoint survives a bad request.
        base = url[: -len("/metrics")]
        try:
            urllib.request.urlopen(base + "/nope", timeout=5)
            check(False, "/nope answers 404")
        except urllib.error.HTTPError as e:
            check(e.code == 404, f"/nope answers 404 (got {e.code})")
        import socket
        host, port = base[len("http://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"garbage\r\n\r\n")
            check(s.recv(100).startswith(b"HTTP/1.1 400"), "a malformed request gets 400")
        check(len(scrape(url)) > 0, "still answering afterwards")
    finally:
        if serve is not None and serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
        subprocess.run(["pkill", "-KILL", "-f", tmp])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
