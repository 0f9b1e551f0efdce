"""Prunes the models of bench/guard/train.py with a build of dotnet-scalpel and scores them on the unseen test set.

    python3 bench/guard/run.py prune VARIANT TOOL.dll [--validation PREFIX] [NAME=VALUE ...] -- MODEL...
        post-training prune of each bench/guard/out/models/MODEL.onnx for host (1000 calibration images, 2000
        labelled validation images (or PREFIX-x.npy, PREFIX-y.npy), budget 0.5 points), NAME=VALUE set in the
        tool's environment; then the original
        and the pruned model scored on the 10,000 test images (paired). One result.json per run under
        bench/guard/out/runs/VARIANT/MODEL (a run with a result.json is skipped).
    python3 bench/guard/run.py table BASE VARIANT -- MODEL...
        the Markdown table of docs/performance.md comparing two variants, and its summary.
    python3 bench/guard/run.py compare BASE VARIANT... -- MODEL...
        one line per variant: runs within budget on test, worst and mean test delta, median and mean size reduction,
        size reduction against BASE.

Scoring uses bench/Scalpel.Benchmarks (built first: dotnet build bench/Scalpel.Benchmarks -c Release).
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
BENCH = os.path.join(HERE, "..", "Scalpel.Benchmarks", "bin", "Release", "net10.0", "Scalpel.Benchmarks.dll")
BUDGET = 0.5
SEEDS = {}  # filled from train.py's table, for the results table
try:
    with open(os.path.join(HERE, "train.py")) as f:
        for m in re.finditer(r'"(\w\d\d)": \(lambda: (.+?\)), (\d+), (\d+)\),', f.read()):
            SEEDS[m.group(1)] = (m.group(2), int(m.group(3)))
except OSError:
    pass


def prune(variant, tool, env, models, validation="val"):
    for name in models:
        run = os.path.join(OUT, "runs", variant, name)
        if os.path.exists(os.path.join(run, "result.json")):
            continue
        os.makedirs(run, exist_ok=True)
        d = lambda f: os.path.join(OUT, f)
        start = time.time()
        log = subprocess.run(["dotnet", tool, "prune", d(f"models/{name}.onnx"), "--target", "host", "--calibration", d("calib-x.npy"),
                              "--validation", d(validation + "-x.npy"), "--labels", d(validation + "-y.npy"), "--measure", "false", "--out", run],
                             env={**os.environ, **env}, capture_output=True, text=True)
        seconds = time.time() - start
        with open(os.path.join(run, "prune.log"), "w") as f:
            f.write(log.stdout + log.stderr)
        if log.returncode != 0:
            sys.exit(f"{variant}/{name}: prune failed, see {run}/prune.log")
        report = json.load(open(os.path.join(run, name.capitalize() + ".report.json")))
        score = subprocess.run(["dotnet", BENCH, "score", d("test-x.npy"), d("test-y.npy"), d(f"models/{name}.onnx"),
                                os.path.join(run, name.capitalize() + ".onnx")], capture_output=True, text=True, check=True).stdout
        m = re.search(r"against the first: ([+-][\d.]+) points, 95 % interval (\S+) to (\S+); (\d+) lost, (\d+) gained", score)
        accuracy = [float(a) for a in re.findall(r": ([\d.]+) % on", score)]
        result = {"model": name, "variant": variant, "env": env, "sizeReduction": report["sizeReduction"],
                  "validationBefore": report["accuracyBefore"], "validationAfter": report["accuracyAfter"],
                  "validationDelta": 100 * (report["accuracyAfter"] - report["accuracyBefore"]),
                  "testBefore": accuracy[0], "testAfter": accuracy[1], "testDelta": float(m.group(1)),
                  "testLost": int(m.group(4)), "testGained": int(m.group(5)), "seconds": seconds}
        json.dump(result, open(os.path.join(run, "result.json"), "w"), indent=1)
        print(f"{variant}/{name}: {100 * result['sizeReduction']:.1f} % smaller, validation {result['validationDelta']:+.2f}, "
              f"test {result['testDelta']:+.2f} points ({seconds:.0f} s)", flush=True)


def load(variant, name):
    return json.load(open(os.path.join(OUT, "runs", variant, name, "result.json")))


def table(base, variant, models):
    print(f"| model | network | seed | size reduction {base} / {variant} | validation delta {base} / {variant} | test delta {base} / {variant} | within budget {base} / {variant} |")
    print("|---|---|---|---|---|---|---|")
    rows = [(load(base, n), load(variant, n)) for n in models]
    ok = lambda r: r["testDelta"] >= -BUDGET
    for a, b in rows:
        net, seed = SEEDS.get(a["model"], ("?", "?"))
        print(f"| {a['model']} | `{net}` | {seed} | {100 * a['sizeReduction']:.1f} % / {100 * b['sizeReduction']:.1f} % | "
              f"{a['validationDelta']:+.2f} / {b['validationDelta']:+.2f} | {a['testDelta']:+.2f} / {b['testDelta']:+.2f} | "
              f"{'yes' if ok(a) else '**no**'} / {'yes' if ok(b) else '**no**'} |")
    for which, i in ((base, 0), (variant, 1)):
        rs = [r[i] for r in rows]
        print(f"\n{which}: {sum(ok(r) for r in rs)}/{len(rs)} within budget on test, worst test delta {min(r['testDelta'] for r in rs):+.2f} points, "
              f"mean test delta {statistics.mean(r['testDelta'] for r in rs):+.2f}, median size reduction {100 * statistics.median(r['sizeReduction'] for r in rs):.1f} %, "
              f"mean {100 * statistics.mean(r['sizeReduction'] for r in rs):.1f} %")
    change = [100 * (b["sizeReduction"] - a["sizeReduction"]) for a, b in rows]
    print(f"\nsize reduction {variant} minus {base}: median {statistics.median(change):+.1f} points, worst {min(change):+.1f}, best {max(change):+.1f}; "
          f"within 5 points of {base} (or above) in {sum(c >= -5 for c in change)}/{len(change)} runs")


def compare(base, variants, models):
    print("| variant | within budget on test | worst test delta | mean test delta | median size reduction | mean size reduction | size reduction minus the base's: mean, worst |")
    print("|---|---|---|---|---|---|---|")
    for v in [base] + variants:
        rs = [load(v, n) for n in models if os.path.exists(os.path.join(OUT, "runs", v, n, "result.json"))]
        bs = [load(base, r["model"]) for r in rs]
        change = [100 * (r["sizeReduction"] - b["sizeReduction"]) for r, b in zip(rs, bs)]
        print(f"| {v} | {sum(r['testDelta'] >= -BUDGET for r in rs)}/{len(rs)} | {min(r['testDelta'] for r in rs):+.2f} | "
              f"{statistics.mean(r['testDelta'] for r in rs):+.2f} | {100 * statistics.median(r['sizeReduction'] for r in rs):.1f} % | "
              f"{100 * statistics.mean(r['sizeReduction'] for r in rs):.1f} % | "
              f"{statistics.mean(change):+.1f}, {min(change):+.1f} |")


def main():
    args = sys.argv[1:]
    models = args[args.index("--") + 1:]
    head = args[:args.index("--")]
    if head[0] == "prune":
        validation = head[head.index("--validation") + 1] if "--validation" in head else "val"
        env = [kv for kv in head[3:] if "=" in kv]
        prune(head[1], head[2], dict(kv.split("=", 1) for kv in env), models, validation)
    elif head[0] == "compare":
        compare(head[1], head[2:], models)
    elif head[0] == "table":
        table(head[1], head[2], models)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
