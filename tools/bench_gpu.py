"""The GPU path against the numpy path in one run, its host-device traffic, and the cost
model that predicts a real GPU's throughput from the passes measured here.

    python tools/bench_gpu.py [--shared ../shared] [--rounds 5] [--json out/bench_gpu.json]

1. **Same run, same texts**: the 2,910 unique STS-B dev sentences (the bundled demo
   sample without ../shared) embedded by ``Engine(backend="cpu")`` and
   ``Engine(backend="gpu")`` (on this machine: Mesa lavapipe, software Vulkan on the same
   cores), alternating, ``--rounds`` times; the median of the per-round ratios, and that
   both give the same embeddings (within 1e-5) and counts.
2. **Traffic per batch** from the backend's counters: submissions, dispatches, readbacks
   and bytes read back per embed batch.
3. **Per-pass costs** (GPU timestamps) of texts of ~16 and ~120 tokens, measured with
   the workgroup a GPU gets (64 threads) so the passes run as a GPU would run them;
   the host's per-batch cost (packing token ids, encoding, reading back) with no device
   work waiting; tokenization per core.
4. **The cost model (a prediction, not a measurement)**: a pass's measured time on this
   CPU is turned into lane-cycles (time x cores x 8 AVX2 lanes x clock) and those are
   assumed to cost a GPU lane no more cycles than they cost a lavapipe lane (lavapipe
   spends several cycles per lane on every memory access, a GPU one instruction per 32
   lanes, so this is pessimistic for the device); a dispatch costs ``--launch-us``; the
   host tokenizes on ``--host-cores`` cores at the rate measured here per core and encodes
   a batch at the measured cost; the embeddings cross PCIe at ``--pcie-gbs``. With two
   batches in flight, throughput is the smallest of the device, host and transfer
   rates. Run it on a machine with a real GPU to replace the prediction by measurements
   (``tools/bench.py`` then times the real path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import dev_sentences, of_length, report_console, texts_name  # noqa: E402  (tools/bench.py, beside this file)

from sae.cli.common import positive_int  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.errors import run_script  # noqa: E402
from sae.layout import EMBEDDING_TOLERANCE  # noqa: E402
from sae.profile import Profiler  # noqa: E402

#: GPUs the model predicts for: (lanes: SMs or compute units x FP32 lanes each, boost clock
#: GHz, memory bandwidth GB/s), from their public specifications.
TARGETS = {
    "NVIDIA H200 SXM": (132 * 128, 1.98, 4800),
    "NVIDIA RTX 4090": (128 * 128, 2.52, 1008),
    "Apple M2 Max (38-core GPU)": (38 * 128, 1.40, 400),
    "Intel Iris Xe (96 EU)": (96 * 8, 1.30, 68),
}
#: AVX2 lanes of one lavapipe thread (32-bit).
CPU_LANES = 8


def cpu_clock_ghz() -> float:
    """This machine's CPU clock (GHz), from /proc/cpuinfo (2.5 if unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 2.5


def same_run(texts: list[str], algorithm, rounds: int) -> dict:
    """numpy and the GPU path alternating on the same texts: rates, median ratio, agreement."""
    cpu = Engine(algorithm, backend="cpu")
    gpu = Engine(cpu.algorithm, backend="gpu")
    c, g = cpu.embed(texts), gpu.embed(texts)  # warm-up; and the results must agree
    diff = float(np.abs(c - g).max()) if len(texts) else 0.0
    cc, gc = cpu.counters_snapshot(), gpu.counters_snapshot()
    rows = []
    for _ in range(rounds):
        t = time.perf_counter()
        cpu.embed(texts)
        tc = time.perf_counter() - t
        t = time.perf_counter()
        gpu.embed(texts)
        tg = time.perf_counter() - t
        rows.append({"cpu_texts_per_s": len(texts) / tc, "gpu_texts_per_s": len(texts) / tg, "ratio": tc / tg})
    return {
        "adapter": gpu.backend.description,
        "rounds": rows,
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "max_abs_diff": diff,
        "equal": diff <= EMBEDDING_TOLERANCE and (cc.committed, cc.reverted) == (gc.committed, gc.reverted),
    }


def traffic(texts: list[str], algorithm, batch_size: int) -> dict:
    """Counters per embed batch of the GPU path."""
    engine = Engine(algorithm, backend="gpu", batch_size=batch_size)
    engine.embed(texts[:batch_size])
    before = engine.backend.counters.as_dict()
    engine.embed(texts)
    after = engine.backend.counters.as_dict()
    delta = {k: after[k] - before[k] for k in after}
    batches = max(delta["batches"], 1)
    return {"batch_size": batch_size, "batches": delta["batches"],
            "per_batch": {k: delta[k] / batches for k in ("submissions", "dispatches", "readbacks", "bytes_read")}}


def pass_costs(texts: list[str], algorithm, workgroup: int, repeats: int = 3) -> dict:
    """µs per text of each pass (best of ``repeats``, GPU timestamps) and dispatches per batch."""
    engine = Engine(algorithm, backend="gpu")
    backend = engine.backend
    if workgroup != backend.workgroup:
        from sae.gpu import GpuBackend

        engine.backend = backend = GpuBackend(engine.algorithm, engine.caps, workgroup=workgroup)
    engine.embed(texts[:64])
    best: dict[str, float] = {}
    dispatches = 0
    for _ in range(repeats):
        profiler = Profiler()
        engine.profiler = profiler
        engine.embed(texts)
        engine.profiler = None
        for row in profiler.summary("gpu"):
            best[row["name"]] = min(best.get(row["name"], float("inf")), row["total_ms"] * 1e3 / len(texts))
        dispatches = profiler.batch_counters()["per_batch"]["dispatches"]
    tokens = sum(len(t) for t in engine.tokenize(texts)) / max(len(texts), 1)
    return {"workgroup": backend.workgroup, "tokens_per_text": tokens, "us_per_text": best,
            "dispatches_per_batch": dispatches}


def host_costs(texts: list[str], algorithm) -> dict:
    """Host work the GPU path does per batch besides the device's (packing token ids,
    encoding the submission, copying the embeddings out), split into a cost per batch and
    a cost per text from batches of 64 and of the chunk; and tokenization per core."""
    from sae.gpu.tables import pack_tokens

    engine = Engine(algorithm, backend="gpu")
    backend = engine.backend
    ids_all = engine.tokenize(texts[: backend.chunk])

    def encode_seconds(n: int) -> float:
        ids = ids_all[:n]
        lengths = np.fromiter(map(len, ids), dtype=np.uint32, count=n)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            pack_tokens(ids, lengths)
            enc = backend.device.create_command_encoder()
            backend._encode_anneal(enc, n, int(lengths.max()), 1)
            backend._encode_vm(enc, n)
            backend._dispatch(enc, "stats", 1)
            backend._end_pass()
            enc.finish()  # encoded, not submitted
            np.zeros((n, 4 * ((algorithm.dim + 3) // 4)), dtype=np.float32)[:, : algorithm.dim].copy()
            best = min(best, time.perf_counter() - t)
        return best

    # Batches of 64 and of the chunk; fewer texts (the bundled sample, without ../shared) halve them.
    large = len(ids_all)
    small = min(64, max(large // 2, 1))
    t_small, t_large = encode_seconds(small), encode_seconds(large)
    per_text = max((t_large - t_small) / (large - small), 0.0) if large > small else 0.0
    # The predicted host has many cores, where a large batch goes to the tokenizer's own
    # thread pool (sae.word_cache): its rate per core here is what scales to that host.
    t = time.perf_counter()
    engine.algorithm.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    tokenize = len(texts) / (time.perf_counter() - t)
    cores = os.cpu_count() or 1
    return {"encode_seconds_per_batch": t_small - small * per_text, "encode_seconds_per_text": per_text,
            "tokenize_texts_per_s": tokenize, "tokenize_texts_per_s_per_core": tokenize / cores, "cores": cores}


def predict(costs: dict, host: dict, batch: int, clock_ghz: float, cores: int, target: tuple,
            host_cores: int, launch_us: float, pcie_gbs: float, dim: int) -> dict:
    """Texts/s a target GPU would reach (a prediction; see the module docstring)."""
    lanes, gpu_ghz, _bandwidth = target
    lane_cycles = sum(costs["us_per_text"].values()) * 1e-6 * cores * CPU_LANES * clock_ghz * 1e9
    device = lane_cycles / (lanes * gpu_ghz * 1e9) + costs["dispatches_per_batch"] * launch_us * 1e-6 / batch
    encode = host["encode_seconds_per_batch"] / batch + host["encode_seconds_per_text"]
    tokenize = host["tokenize_texts_per_s_per_core"] * host_cores
    transfer = pcie_gbs * 1e9 / (dim * 4)
    rates = {"device": 1 / device, "host encode": 1 / encode, "tokenize": tokenize, "readback": transfer}
    bound = min(rates, key=rates.get)
    return {"texts_per_s": rates[bound], "bound": bound, "rates": rates}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--algorithm", help="Algorithm directory (default: bundled)")
    ap.add_argument("--rounds", type=positive_int, default=5)
    ap.add_argument("--json", type=Path, default=ROOT / "out" / "bench_gpu.json")
    ap.add_argument("--host-cores", type=positive_int, default=32, help="cores that tokenize on the predicted host")
    ap.add_argument("--launch-us", type=float, default=5.0, help="a dispatch's launch cost on the predicted GPU")
    ap.add_argument("--pcie-gbs", type=float, default=25.0, help="readback bandwidth on the predicted host")
    args = ap.parse_args()

    texts = dev_sentences(args.shared)
    cpu = Engine(args.algorithm, backend="cpu")
    alg = cpu.algorithm
    results: dict = {"texts": len(texts), "texts_name": texts_name(args.shared), "cpu_clock_ghz": cpu_clock_ghz(),
                     "cores": os.cpu_count()}
    results["same_run"] = same_run(texts, alg, args.rounds)
    results["traffic"] = [traffic(texts, alg, b) for b in (256, 1024)]
    lengths = {"dev": texts, "16": of_length(texts, cpu, 16), "120": of_length(texts, cpu, 120)}
    results["passes"] = {name: pass_costs(t[:1024], alg, 64) for name, t in lengths.items()}
    results["host"] = host_costs(texts, alg)
    results["prediction"] = {
        gpu: {length: {batch: predict(results["passes"][length], results["host"], batch, results["cpu_clock_ghz"],
                                      results["cores"], spec, args.host_cores, args.launch_us, args.pcie_gbs, alg.dim)
                       for batch in (1024, 16384, 65536)}
              for length in ("16", "120")}
        for gpu, spec in TARGETS.items()}
    results["assumptions"] = {"host_cores": args.host_cores, "launch_us": args.launch_us, "pcie_gbs": args.pcie_gbs}
    report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")
    return 0


def report(r: dict) -> None:
    from rich.table import Table

    console = report_console()
    s = r["same_run"]
    table = Table(title=f"numpy vs the GPU path on {s['adapter']}, {r['texts']} {r['texts_name']} texts, same run")
    for col in ("round", "numpy texts/s", "GPU texts/s", "GPU / numpy"):
        table.add_column(col, justify="right")
    for i, row in enumerate(s["rounds"]):
        table.add_row(str(i), f"{row['cpu_texts_per_s']:,.0f}", f"{row['gpu_texts_per_s']:,.0f}", f"{row['ratio']:.2f}x")
    console.print(table)
    console.print(f"median ratio {s['median_ratio']:.2f}x; largest embedding difference {s['max_abs_diff']:.1e}; "
                  f"same counts: {s['equal']}")
    table = Table(title="host-device traffic per embed batch")
    for col in ("batch", "batches", "submissions", "dispatches", "readbacks", "bytes read"):
        table.add_column(col, justify="right")
    for t in r["traffic"]:
        p = t["per_batch"]
        table.add_row(str(t["batch_size"]), str(t["batches"]), f"{p['submissions']:.1f}", f"{p['dispatches']:.1f}",
                      f"{p['readbacks']:.1f}", f"{p['bytes_read']:,.0f}")
    console.print(table)
    table = Table(title=f"passes on this CPU with a GPU's workgroup (µs per text, {r['cores']} cores "
                        f"at {r['cpu_clock_ghz']:.2f} GHz)")
    names = sorted({n for c in r["passes"].values() for n in c["us_per_text"]})
    for col in ("texts", "tokens", *names, "dispatches/batch"):
        table.add_column(col, justify="right")
    for name, c in r["passes"].items():
        table.add_row(name, f"{c['tokens_per_text']:.0f}", *(f"{c['us_per_text'].get(n, 0):.1f}" for n in names),
                      f"{c['dispatches_per_batch']:.0f}")
    console.print(table)
    h = r["host"]
    console.print(f"host: encoding a batch {h['encode_seconds_per_batch'] * 1e3:.2f} ms + "
                  f"{h['encode_seconds_per_text'] * 1e6:.2f} µs per text; tokenizing "
                  f"{h['tokenize_texts_per_s']:,.0f} texts/s on {h['cores']} cores "
                  f"({h['tokenize_texts_per_s_per_core']:,.0f} per core)")
    table = Table(title="PREDICTION (cost model, not measured): texts/s end to end, tokenizing on "
                        f"{r['assumptions']['host_cores']} host cores")
    for col in ("GPU", "text tokens", "batch 1,024", "batch 16,384", "batch 65,536", "bound at 65,536",
                "device alone"):
        table.add_column(col, justify="right")
    for gpu, by_length in r["prediction"].items():
        for length, by_batch in by_length.items():
            cells = [f"{by_batch[b]['texts_per_s']:,.0f}" for b in (1024, 16384, 65536)]
            table.add_row(gpu, f"~{length}", *cells, by_batch[65536]["bound"],
                          f"{by_batch[65536]['rates']['device']:,.0f}")
    console.print(table)


if __name__ == "__main__":
    sys.exit(run_script(main))
