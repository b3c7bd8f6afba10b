"""The profiler's summary and its Chrome trace (Trace Event Format, JSON object form)."""

from __future__ import annotations

import json
import time

from sae.cli import main
from sae.profile import GPU_TIMESTAMPS, Profiler


def check_trace_event_format(doc: dict) -> list[dict]:
    """Validate what Perfetto and chrome://tracing need; return the complete events."""
    assert isinstance(doc["traceEvents"], list)
    assert doc.get("displayTimeUnit", "ms") in ("ms", "ns")
    complete = []
    for e in doc["traceEvents"]:
        assert isinstance(e["name"], str) and e["ph"] in ("X", "M")
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str)
        else:
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
            assert isinstance(e.get("args", {}), dict)
            complete.append(e)
    json.dumps(doc)  # serializable as is
    return complete


def test_scopes_nest_and_gpu_batches_align():
    p = Profiler()
    p.gpu_clock = GPU_TIMESTAMPS
    with p.scope("outer"):
        with p.scope("inner", k=1):
            time.sleep(0.002)
        submitted = time.perf_counter_ns()
    p.gpu_passes([("bids", {"step": 0}), ("vm", {})], [(5_000, 6_000), (7_000, 10_000)], submitted)
    events = check_trace_event_format(p.chrome_trace())
    by = {e["name"]: e for e in events}
    outer, inner = by["outer"], by["inner"]
    assert outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"]
    assert by["bids"]["tid"] == by["vm"]["tid"] != outer["tid"]
    assert by["vm"]["ts"] - by["bids"]["ts"] == 2.0  # µs, GPU spacing kept
    gpu = {r["name"]: r for r in p.summary("gpu")}
    assert gpu["vm"]["calls"] == 1 and abs(gpu["vm"]["share"] - 0.75) < 1e-9
    cpu = {r["name"]: r for r in p.summary("cpu")}
    assert abs(cpu["outer"]["share"] - 1.0) < 1e-9 and cpu["inner"]["share"] < 1.0


def test_sae_profile_writes_a_loadable_trace(tiny_dir, tmp_path, capsys):
    trace = tmp_path / "trace.json"
    assert main(["profile", "--trace", str(trace), "--algorithm", str(tiny_dir), "--backend", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == "cpu" and summary["gpu"] == []
    names = {e["name"] for e in check_trace_event_format(json.loads(trace.read_text()))}
    assert {"embed", "tokenize", "anneal", "execute"} <= names


def test_profile_refuses_an_unwritable_trace(tiny_dir, tmp_path, capsys):
    assert main(["profile", "--trace", str(tmp_path / "no" / "t.json"), "--algorithm", str(tiny_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err
    # A Chrome trace named .txt was written as asked, and opened as text by what reads it next.
    assert main(["profile", "--trace", str(tmp_path / "out.txt"), "--algorithm", str(tiny_dir)]) == 2
    assert "--trace writes a Chrome trace (JSON); name the file .json" in capsys.readouterr().err
    assert not (tmp_path / "out.txt").exists()


def test_the_numpy_path_times_each_rules_matching_and_footprints_inside_the_anneal_and_changes_no_result():
    from sae.engine import Engine

    engine = Engine(backend="cpu", threads=1)  # the bundled default: rules with runs and without
    texts = ["A man is not playing the guitar.", "A dog is biting a man.", "There are 3 cats on the mat."] * 40
    plain = engine.embed(texts)
    p = Profiler()
    engine.profiler = p
    timed = engine.embed(texts)
    engine.profiler = None
    assert timed.tobytes() == plain.tobytes()
    rules = [r.name for r in engine.algorithm.rules]
    cpu = {r["name"]: r for r in p.summary("cpu")}
    assert {f"match {name}" for name in rules} <= set(cpu)  # every rule, matched at least once
    runs = [r.name for r in engine.algorithm.rules if any(e.gap or e.run for e in r.pattern)]
    assert runs and any(f"footprint {name}" in cpu for name in runs)
    assert not any(name.startswith("footprint") and name[len("footprint "):] not in runs for name in cpu)
    anneal = [e for e in p.events if e.name == "anneal"]
    for e in p.events:
        if e.name.startswith(("match ", "footprint ")):
            assert any(a.start_ns <= e.start_ns and e.start_ns + e.dur_ns <= a.start_ns + a.dur_ns for a in anneal)
    # Unprofiled again: nothing more is recorded.
    count = len(p.events)
    engine.embed(texts)
    assert len(p.events) == count


def test_the_vector_rows_a_batch_first_needs_are_timed_apart_from_the_vm():
    """A fresh engine computes transformed vector rows in its first batches' execute: 90 %
    of a first `sae profile` run read as the VM's cost. They are a scope of their own, inside
    execute; once computed (warm_up) the scope is nearly free."""
    from sae.engine import Engine

    texts = ["A man is not playing the guitar.", "A dog is biting a man.", "There are 3 cats on the mat."] * 40
    plain = Engine(backend="cpu", threads=1).embed(texts)
    engine = Engine(backend="cpu", threads=1)
    p = Profiler()
    engine.profiler = p
    assert engine.embed(texts).tobytes() == plain.tobytes()
    rows = [e for e in p.events if e.name == "vector rows"]
    execute = [e for e in p.events if e.name == "execute"]
    assert len(rows) == len(execute) >= 1
    for r in rows:
        assert any(x.start_ns <= r.start_ns and r.start_ns + r.dur_ns <= x.start_ns + x.dur_ns for x in execute)
