#!/usr/bin/python3
"""Scaling sweep: `strata serve` over (tp, pp) layouts, `strata bench` over concurrency levels.

usage: /usr/bin/python3 bench/sweep.py --model MODEL.gguf [--layouts 1x1,2x1,1x2,2x2]
           [--concurrency 1,4,16,32] [--prompt-tokens 64] [--output-tokens 32]
           [--requests-per-stream 2] [--out DIR] [--bin build/bin] [--no-plots]
       /usr/bin/python3 bench/sweep.py --replot DIR      # redraw DIR's plots from its sweep.csv

For each layout it starts one `strata serve` (with --metrics-listen), and for each concurrency N
runs `strata bench --concurrency N` (closed loop, greedy, fixed lengths, N warm-up requests not
counted) and scrapes the coordinator's /metrics before and after, for the share of the ranks' step
time spent communicating. Everything lands in DIR: one bench JSON per point, sweep.csv (one row
per point), and, with gnuplot (apt-get install gnuplot-nox), throughput.png (output tokens/s
against concurrency, one line per layout) and latency.png (time per output token p50 against
output tokens/s). The README of DIR records the machine and the command.
"""
import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COLUMNS = ["layout", "tp", "pp", "concurrency", "requests", "succeeded", "failed", "duration_s", "requests_per_s",
           "output_tokens_per_s", "total_tokens_per_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_s",
           "itl_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "comm_share", "peak_rank_rss_mib"]


def scrape(url):
    """{(name, labels-string): value} from the Prometheus text (plain lines only; enough here)."""
    out = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([^{ ]+)(\{[^}]*\})? (\S+)$", line)
            if m:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def rank_sum(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


def start_serve(args, tp, pp, log_dir):
    out = open(os.path.join(log_dir, f"serve_{tp}x{pp}.out"), "w")
    err = open(os.path.join(log_dir, f"serve_{tp}x{pp}.err"), "w")
    cmd = [os.path.join(args.bin, "strata"), "serve", "--model", args.model, "--tp", str(tp), "--pp", str(pp),
           "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
           "--max-running", str(max(args.concurrency)), "--startup-timeout", "600"]
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.time() + 660
    while time.time() < deadline and proc.poll() is None:
        text = open(out.name).read()
        a = re.search(r"^strata serve: serving .* on (\S+)$", text, re.M)
        m = re.search(r"^strata serve: metrics on (\S+)$", text, re.M)
        if a and m:
            return proc, a.group(1), m.group(1)
        time.sleep(0.2)
    stop(proc)
    sys.exit(f"sweep: strata serve --tp {tp} --pp {pp} did not start; see {err.name}")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plot(out_dir, rows, layouts):
    if shutil.which("gnuplot") is None:
        print("sweep: gnuplot not found (apt-get install gnuplot-nox); skipping the plots", file=sys.stderr)
        return
    for layout in layouts:
        with open(os.path.join(out_dir, f"points_{layout}.dat"), "w") as f:
            for r in rows:
                if r["layout"] == layout:
                    f.write(f"{r['concurrency']:g} {r['output_tokens_per_s']} {r['tpot_p50_s'] * 1000} "
                            f"{r['ttft_p50_s'] * 1000}\n")
    lines = ", ".join(f"'points_{l}.dat' using 1:2 with linespoints lw 2 pt 7 title 'tp x pp = {l}'" for l in layouts)
    lat = ", ".join(f"'points_{l}.dat' using 2:3 with linespoints lw 2 pt 7 title 'tp x pp = {l}'" for l in layouts)
    script = f"""
set terminal pngcairo size 900,600 font ',11'
set grid
set key bottom right
set output 'throughput.png'
set title 'Output tokens/s vs concurrent streams'
set xlabel 'concurrent streams (closed loop)'
set ylabel 'output tokens/s'
set logscale x 2
set yrange [0:*]
plot {lines}
unset logscale x
set output 'latency.png'
set title 'Time per output token (p50) vs throughput'
set xlabel 'output tokens/s'
set ylabel 'time per output token p50 (ms)'
set key top left
set xrange [0:*]
set yrange [0:*]
plot {lat}
"""
    subprocess.run(["gnuplot"], input=script, text=True, cwd=out_dir, check=True)
    for layout in layouts:
        os.remove(os.path.join(out_dir, f"points_{layout}.dat"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--layouts", default="1x1,2x1,1x2,2x2", help="TPxPP,... (default 1x1,2x1,1x2,2x2)")
    p.add_argument("--concurrency", default="1,4,16,32")
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--requests-per-stream", type=int, default=2)
    p.add_argument("--out", default="sweep-results")
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--replot", metavar="DIR", help="only redraw the plots of DIR/sweep.csv")
    if "--replot" in sys.argv:  # --model is not needed to redraw
        for a in p._actions:
            a.required = False
    args = p.parse_args()
    if args.replot:
        rows = []
        with open(os.path.join(args.replot, "sweep.csv")) as f:
            for r in csv.DictReader(f):
                rows.append({k: (v if k == "layout" else float(v)) for k, v in r.items()})
        plot(args.replot, rows, list(dict.fromkeys(r["layout"] for r in rows)))
        return
    try:
        layouts = [tuple(int(x) for x in l.lower().split("x")) for l in args.layouts.split(",")]
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        sys.exit("sweep: --layouts is TPxPP,... and --concurrency N,...")
    if any(len(l) != 2 or min(l) < 1 for l in layouts) or min(args.concurrency) < 1:
        sys.exit("sweep: layouts and concurrency levels must be positive")
    if not os.path.isfile(args.model):
        sys.exit(f"sweep: no model file {args.model}")
    args.model = os.path.abspath(args.model)
    os.makedirs(args.out, exist_ok=True)
    strata = os.path.join(args.bin, "strata")
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for tp, pp in layouts:
        name = f"{tp}x{pp}"
        print(f"sweep: layout tp={tp} pp={pp}: starting strata serve", file=sys.stderr)
        proc, addr, metrics_url = start_serve(args, tp, pp, args.out)
        try:
            for c in args.concurrency:
                before = scrape(metrics_url)
                out_json = os.path.join(args.out, f"bench_{name}_c{c}.json")
                n = max(c * args.requests_per_stream, 4)
                cmd = [strata, "bench", "--server", addr, "--concurrency", str(c), "--requests", str(n),
                       "--warmup", str(c), "--prompt-tokens", str(args.prompt_tokens), "--output-tokens",
                       str(args.output_tokens), "--json", out_json, "--no-progress", "--timeout", "1200"]
                print(f"sweep:   concurrency {c}: {n} requests", file=sys.stderr)
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    print(r.stdout + r.stderr, file=sys.stderr)
                    sys.exit(f"sweep: strata bench failed for {name} at concurrency {c}")
                after = scrape(metrics_url)
                step = rank_sum(after, "strata:worker_step_compute_seconds_total") - rank_sum(
                    before, "strata:worker_step_compute_seconds_total")
                comm = rank_sum(after, "strata:worker_step_communication_seconds_total") - rank_sum(
                    before, "strata:worker_step_communication_seconds_total")
                rss = max((v for (k, _), v in after.items() if k == "strata:worker_resident_memory_bytes"), default=0)
                j = json.load(open(out_json))
                rows.append({
                    "layout": name, "tp": tp, "pp": pp, "concurrency": c, "requests": j["counts"]["sent"],
                    "succeeded": j["counts"]["succeeded"], "failed": j["counts"]["failed"],
                    "duration_s": j["duration_s"], "requests_per_s": j["requests_per_s"],
                    "output_tokens_per_s": j["output_tokens_per_s"], "total_tokens_per_s": j["total_tokens_per_s"],
                    "ttft_p50_s": j["ttft_s"]["p50"], "ttft_p90_s": j["ttft_s"]["p90"], "ttft_p99_s": j["ttft_s"]["p99"],
                    "itl_p50_s": j["itl_s"]["p50"], "itl_p99_s": j["itl_s"]["p99"],
                    "tpot_p50_s": j["tpot_s"]["p50"], "tpot_p99_s": j["tpot_s"]["p99"],
                    "e2e_p50_s": j["e2e_s"]["p50"], "e2e_p99_s": j["e2e_s"]["p99"],
                    "comm_share": comm / (step + comm) if step + comm > 0 else 0.0,
                    "peak_rank_rss_mib": rss / 2**20,
                })
                row = rows[-1]
                print(f"sweep:   {name} c={c}: {row['output_tokens_per_s']:.1f} out tok/s, "
                      f"TTFT p50 {row['ttft_p50_s'] * 1000:.0f} ms, TPOT p50 {row['tpot_p50_s'] * 1000:.0f} ms, "
                      f"comm {100 * row['comm_share']:.0f}% of rank time", file=sys.stderr)
        finally:
            stop(proc)
    with open(os.path.join(args.out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    names = [f"{tp}x{pp}" for tp, pp in layouts]
    if not args.no_plots:
        plot(args.out, rows, names)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(f"# strata scaling sweep\n\n- Date: {started}\n- Machine: {platform.node()}, {os.cpu_count()} "
                f"cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB\n"
                f"- Model: {os.path.basename(args.model)}\n- Command: `/usr/bin/python3 bench/sweep.py "
                f"{' '.join(sys.argv[1:])}`\n- Each point: `strata bench --concurrency N --requests "
                f"{args.requests_per_stream}N --warmup N --prompt-tokens {args.prompt_tokens} --output-tokens "
                f"{args.output_tokens}` (greedy, closed loop) against `strata serve --tp T --pp P "
                f"--max-running {max(args.concurrency)}`.\n\n| layout | streams | output tok/s | TTFT p50 (ms) | "
                f"TPOT p50 (ms) | E2E p50 (s) | comm share |\n|---|---|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['layout']} | {r['concurrency']} | {r['output_tokens_per_s']:.1f} | "
                    f"{r['ttft_p50_s'] * 1000:.0f} | {r['tpot_p50_s'] * 1000:.0f} | {r['e2e_p50_s']:.2f} | "
                    f"{100 * r['comm_share']:.0f}% |\n")
    print(f"sweep: wrote {args.out}/sweep.csv" + ("" if args.no_plots else ", throughput.png, latency.png"),
          file=sys.stderr)


if __name__ == "__main__":
    main()
