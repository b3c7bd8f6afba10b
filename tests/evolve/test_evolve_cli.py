"""sae evolve and sae lineage end to end: determinism across workers and Ray, kill -9 and
resume, refusals with one line and exit 2, lineage, metrics."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from evolve_helpers import build_world, evolve_args

from sae.algorithm import load_algorithm
from sae.cli import main
from sae.evolve.store import RunStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("evolve-world"))


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def finished(run: Path, out: Path) -> tuple[str, str]:
    store = RunStore(run)
    try:
        return store.digest(), load_algorithm(out).content_hash
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory) -> dict:
    """One uninterrupted run with one worker: what every other way must reproduce."""
    d = tmp_path_factory.mktemp("ref")
    code = main(evolve_args(world, d / "run.sqlite", d / "best", "--workers", "1", "--json"))
    assert code == 0
    digest, alg_hash = finished(d / "run.sqlite", d / "best")
    return {"dir": d, "digest": digest, "algorithm": alg_hash}


def test_two_workers_give_the_same_run(world, reference, tmp_path):
    assert main(evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--workers", "2")) == 0
    assert finished(tmp_path / "run.sqlite", tmp_path / "best") == (reference["digest"], reference["algorithm"])


def test_ray_local_gives_the_same_run(world, reference, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sae[ray]')")
    args = evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--executor", "ray", "--workers", "2")
    assert main(args) == 0
    assert finished(tmp_path / "run.sqlite", tmp_path / "best") == (reference["digest"], reference["algorithm"])


def test_best_is_a_normal_algorithm_and_the_run_is_complete(reference):
    alg = load_algorithm(reference["dir"] / "best")
    store = RunStore(reference["dir"] / "run.sqlite")
    assert store.last_generation() == 3
    final = store.final()
    assert final["algorithm"] == alg.content_hash == reference["algorithm"]
    assert len(final["candidates"]) <= 3 and final["valid"]["quality"] is not None
    births = store.db.execute("SELECT COUNT(*) FROM births").fetchone()[0]
    assert births >= 6 * 4 - 2
    ops = {r[0] for r in store.db.execute("SELECT operator FROM births")}
    assert {"base", "base_without_rules"} <= ops and len(ops) > 4
    store.close()


def test_resume_of_a_finished_run_changes_nothing(world, reference, tmp_path, capsys):
    import shutil

    shutil.copy(reference["dir"] / "run.sqlite", tmp_path / "run.sqlite")
    code, _, _ = run_cli(evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--resume"), capsys)
    assert code == 0
    assert finished(tmp_path / "run.sqlite", tmp_path / "best") == (reference["digest"], reference["algorithm"])


def committed_generation(run: Path) -> int | None:
    """The last generation another process has committed to ``run`` (None: none yet)."""
    try:
        db = sqlite3.connect(f"file:{run}?mode=ro", uri=True, timeout=0.05)
        try:
            return db.execute("SELECT MAX(gen) FROM generations").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None


def test_kill_9_at_random_points_then_resume(world, reference, tmp_path):
    """SIGKILL at random moments — during start-up, right after a random generation's commit
    plus a random delay (inside the next generation, or in the final pick) — and resume each
    time: the same run in the end."""
    run, out = tmp_path / "run.sqlite", tmp_path / "best"
    cmd = [sys.executable, "-m", "sae", *evolve_args(world, run, out, "--resume")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = np.random.default_rng(2024)
    landed = []
    for attempt in range(8):
        done = committed_generation(run)
        if done == 3:
            break
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:
            time.sleep(float(rng.uniform(0.05, 0.5)))  # start-up: nothing committed yet, or gen 0
        else:
            target = min(3, (-1 if done is None else done) + int(rng.integers(1, 3)))
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                g = committed_generation(run)
                if g is not None and g >= target:
                    break
                time.sleep(0.005)
            time.sleep(float(rng.uniform(0.0, 0.05)))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        landed.append((proc.returncode, committed_generation(run)))
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert finished(run, out) == (reference["digest"], reference["algorithm"]), landed
    print("kills (exit code, last committed generation):", landed)
    killed = [g for code, g in landed if code == -signal.SIGKILL]
    assert len(killed) >= 3, f"too few kills landed inside the run: {landed}"


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_refusals(world, reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run.sqlite"
    shutil.copy(reference["dir"] / "run.sqlite", run)
    before = RunStore(run).digest()
    # A run already there, without --resume.
    line = one_line_error(*run_cli(evolve_args(world, run, tmp_path / "b"), capsys)[::2])
    assert "--resume" in line
    # Resuming with another configuration, or another teacher.
    line = one_line_error(*run_cli(evolve_args(world, run, tmp_path / "b", "--resume", "--seed", "5"),
                                   capsys)[::2])
    assert "seed" in line and "cannot resume" in line
    other = tmp_path / "teacher.parquet"
    from sae.io import write_embeddings
    from sae.teacher import read_teacher

    t = read_teacher(world["teacher"])
    write_embeddings(other, list(t.texts), np.asarray(t.embeddings)[::-1].copy())
    args = evolve_args(world, run, tmp_path / "b", "--resume")
    args[args.index("--teacher") + 1] = str(other)
    line = one_line_error(*run_cli(args, capsys)[::2])
    assert "teacher" in line
    assert RunStore(run).digest() == before  # nothing written by a refused command


def test_bad_inputs(world, tmp_path, capsys):
    args = evolve_args(world, tmp_path / "r1.sqlite", tmp_path / "b")
    args[args.index("--teacher") + 1] = str(world["teacher_dim4"])
    assert "dimension" in one_line_error(*run_cli(args, capsys)[::2])
    args = evolve_args(world, tmp_path / "r2.sqlite", tmp_path / "b")
    args[args.index("--teacher") + 1] = str(tmp_path / "missing.parquet")
    one_line_error(*run_cli(args, capsys)[::2])
    (tmp_path / "file").write_text("x")
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "r3.sqlite", tmp_path / "file"), capsys)[::2])
    assert "not a directory" in line
    unrelated = tmp_path / "pairs.csv"
    unrelated.write_text("g\tf\ty\t1\t3.0\tsomething else\tentirely\ng\tf\ty\t2\t1.0\ta\tb\n")
    args = evolve_args(world, tmp_path / "r4.sqlite", tmp_path / "b")
    args[args.index("--pairs") + 1] = str(unrelated)
    assert "teacher file" in one_line_error(*run_cli(args, capsys)[::2])
    line = one_line_error(*run_cli(["lineage", str(tmp_path / "file")], capsys)[::2])
    assert "run database" in line
    args = evolve_args(world, tmp_path / "r5.sqlite", tmp_path / "b", "--w-minimal", "nan")
    assert "--w-minimal must be in 0..1000, got nan" in one_line_error(*run_cli(args, capsys)[::2])
    assert not (tmp_path / "r5.sqlite").exists()
    args = evolve_args(world, tmp_path / "r7.sqlite", tmp_path / "b")
    args[args.index("--fit-pairs") + 1] = "1"
    assert "--fit-pairs must be 0 (all) or at least 10, got 1" in one_line_error(*run_cli(args, capsys)[::2])
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = evolve_args(world, tmp_path / "r6.sqlite", tmp_path / "b", "--executor", "ray",
                       "--ray-address", f"127.0.0.1:{port}")
    assert "cannot reach a Ray cluster there" in one_line_error(*run_cli(args, capsys)[::2])
    assert not (tmp_path / "r6.sqlite").exists()


def test_out_is_checked_before_the_run_and_never_loses_a_file(world, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "r.sqlite", mine), capsys)[::2])
    assert "holds 'notes.txt'" in line and "--out" in line
    assert (mine / "notes.txt").read_text() == "precious" and not (tmp_path / "r.sqlite").exists()
    # The run database inside --out would be deleted with the directory it replaces.
    (tmp_path / "best").mkdir()
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "best" / "run.sqlite", tmp_path / "best"),
                                   capsys)[::2])
    assert "which this command needs" in line


def test_out_may_not_be_an_input(world, tmp_path, capsys):
    """--out naming the base (or "-") used to replace the base with the result."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(world["base"], base)
    before = load_algorithm(base).content_hash
    args = evolve_args(world, tmp_path / "r.sqlite", base)
    args[args.index("--base") + 1] = str(base)
    assert "is also an input of this command" in one_line_error(*run_cli(args, capsys)[::2])
    assert load_algorithm(base).content_hash == before and not (tmp_path / "r.sqlite").exists()
    args[args.index("--out") + 1] = str(base / "sub")  # the base would hold a directory not its own
    assert "lies inside the base Algorithm" in one_line_error(*run_cli(args, capsys)[::2])
    assert not (base / "sub").exists() and not (tmp_path / "r.sqlite").exists()
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "r.sqlite", "-"), capsys)[::2])
    assert "not standard output" in line and not Path("-").exists()


def test_settings_are_checked_before_the_run_file_is_made(world, tmp_path, capsys):
    """A usage error found after the run file was created left a file the corrected command
    refused; settings that would fail later (after the whole run) are refused at once."""
    run = tmp_path / "r.sqlite"
    cases = [(["--ray-address", "127.0.0.1:1"], "--ray-address needs --executor ray"),
             (["--name", ""], "--name must be a non-empty string"),
             (["--max-cost", "inf"], "--max-cost must be a finite number"),
             (["--w-minimal", "1e308"], "--w-minimal must be in 0..1000")]
    for extra, message in cases:
        line = one_line_error(*run_cli(evolve_args(world, run, tmp_path / "b", *extra), capsys)[::2])
        assert message in line, line
        assert not run.exists(), extra
    # Sizes set up before the first generation (a generations x pairs table): argparse's refusal.
    for extra, message in ((["--generations", "100000000000"], "--generations: must be in 1..10,000"),
                           (["--population", "20000"], "--population: must be in 1..10,000")):
        with pytest.raises(SystemExit) as exit_:
            main(evolve_args(world, run, tmp_path / "b", *extra))
        assert exit_.value.code == 2 and message in capsys.readouterr().err
        assert not run.exists(), extra


def test_run_files_of_others_are_refused_untouched(world, tmp_path, capsys):
    import sqlite3

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    wrong = tmp_path / "wrong.sqlite"
    with sqlite3.connect(wrong) as db:
        db.execute("CREATE TABLE meta (k INTEGER)")
    for path, message in ((foreign, "it holds table 'users'"), (wrong, "table 'meta' has other columns")):
        before = path.read_bytes()
        for resume in ((), ("--resume",)):
            line = one_line_error(*run_cli(evolve_args(world, path, tmp_path / "b", *resume), capsys)[::2])
            assert "not a sae evolve run database" in line and message in line, line
        assert path.read_bytes() == before


def test_lineage(reference, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="--plot needs pip install 'sae[evolve]'")
    run = reference["dir"] / "run.sqlite"
    code, out, _ = run_cli(["lineage", str(run), "--json", "--plot", str(tmp_path / "fit.png")], capsys)
    assert code == 0
    rep = json.loads(out)
    assert rep["digest"] == reference["digest"] and rep["finished"]
    assert [g["gen"] for g in rep["generations"]] == [0, 1, 2, 3]
    steps = rep["lineage"]
    assert steps[-1]["genome"] == rep["final"]["genome"] and steps[0]["parents"] == []
    for prev, step in itertools.pairwise(steps):
        assert step["main_parent"] == prev["genome"]
        assert step["gain"] == pytest.approx(step["quality"] - prev["quality"])
    assert rep["front"] and all(f["quality"] <= rep["front"][0]["quality"] for f in rep["front"])
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run_cli(["lineage", str(run)], capsys)
    assert code == 0 and "Pareto front" in out and "lineage" in out
    before = run.read_bytes()
    line = one_line_error(*run_cli(["lineage", str(run), "--plot", str(run)], capsys)[::2])
    assert "is also an input" in line and run.read_bytes() == before
    line = one_line_error(*run_cli(["lineage", str(run), "--plot", str(tmp_path)], capsys)[::2])
    assert "is a directory" in line and not list(tmp_path.glob(".*"))
    line = one_line_error(*run_cli(["lineage", str(run), "--plot", str(tmp_path / "fit.txt")], capsys)[::2])
    assert "--plot writes a PNG image" in line and not (tmp_path / "fit.txt").exists()
    # The plot's range holds the front (its cost-0 member was cut off) and the final pick.
    from sae.evolve.lineage import quality_range

    low, high = quality_range(rep, [])
    assert all(low <= f["quality"] <= high for f in rep["front"])
    assert low <= rep["best"]["objectives"]["quality"] <= high
    # Read-only: lineage writes nothing to the run; a path with brackets is shown as it is.
    assert run.read_bytes() == before
    odd = tmp_path / "br[/]" / "[bold]run.sqlite"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(before)
    code, out, _ = run_cli(["lineage", str(odd)], capsys)
    assert code == 0 and f"{odd}:" in out.replace("\n", "")
    # '#' and '?' ended the path of SQLite's URI: "not a run database", and a stray file made.
    for name in ("run#2.sqlite", "run?x.sqlite", "run%41.sqlite"):
        (tmp_path / name).write_bytes(before)
        code, out, _ = run_cli(["lineage", str(tmp_path / name), "--json"], capsys)
        assert code == 0 and json.loads(out)["digest"] == reference["digest"]
    assert not (tmp_path / "run").exists()
    # A value damaged outside sae was a JSONDecodeError's traceback.
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(before)
    with contextlib.closing(sqlite3.connect(damaged)) as db:
        db.execute("UPDATE evaluations SET record='x'")
        db.commit()
    line = one_line_error(*run_cli(["lineage", str(damaged)], capsys)[::2])
    assert "evaluations[" in line and "not valid JSON" in line
    # SQLite's own refusals past the first read, and JSON of another shape, were tracebacks
    # (an adversarial pass): a value that is not UTF-8, a record that is not an object.
    with contextlib.closing(sqlite3.connect(damaged)) as db:
        db.execute("UPDATE evaluations SET record=CAST(X'7B22FF7D' AS TEXT)")
        db.commit()
    line = one_line_error(*run_cli(["lineage", str(damaged)], capsys)[::2])
    assert f"{damaged}: not a usable run database (Could not decode to UTF-8" in line
    with contextlib.closing(sqlite3.connect(damaged)) as db:
        db.execute("UPDATE evaluations SET record='[1, 2]'")
        db.commit()
    line = one_line_error(*run_cli(["lineage", str(damaged)], capsys)[::2])
    assert "evaluations[" in line and "not a JSON object" in line


def test_metrics_are_served(caplog):
    pytest.importorskip("prometheus_client", reason="pip install 'sae[evolve]'")
    from sae.evolve.fitness import Evaluation
    from sae.evolve.observe import Metrics

    with caplog.at_level(logging.INFO, logger="sae.evolve.observe"):
        m = Metrics(0)
    assert f"http://127.0.0.1:{m.port}/metrics" in caplog.text  # port 0: which one it chose
    try:
        m.evaluated(Evaluation("g", "a", {}, seconds=0.3))
        m.generation(4, {"best_quality": 0.81, "median_quality": 0.8, "diversity": 0.5}, {})
        text = urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=10).read().decode()
    finally:
        m.stop()
    assert "sae_evolve_generation 4.0" in text and "sae_evolve_best_fitness 0.81" in text
    assert "sae_evolve_evaluations_total 1.0" in text and "sae_evolve_evaluation_seconds_count 1.0" in text


def test_teacher_only_and_fitted_transforms(world, tmp_path, capsys):
    """Without --pairs fitness comes from the teacher alone; --transforms fit refits the
    transforms per genome, and the final Algorithm carries the refit (same content hash)."""
    args = evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--transforms", "fit", "--workers", "2",
                       generations=2, population=4)
    i = args.index("--pairs")
    del args[i : i + 2]
    code, out, err = run_cli(args + ["--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["fit"]["spearman"] is None and res["fit"]["teacher"] is not None
    assert load_algorithm(tmp_path / "best").content_hash == res["algorithm"]


def test_max_cost_bounds_the_final_pick(world, tmp_path, capsys):
    """--max-cost 0 leaves only rule-free genomes to the final pick (the search is unchanged)."""
    code, out, err = run_cli(evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--max-cost", "0",
                                         "--json", generations=2, population=4), capsys)
    assert code == 0, err
    assert json.loads(out)["fit"]["cost"] == 0
    assert load_algorithm(tmp_path / "best").rules == ()
    store = RunStore(tmp_path / "run.sqlite")
    assert "cost at most 0.0" in store.final()["rule"] and store.config()["config"]["max_cost"] == 0.0
    store.close()
    code, _, err = run_cli(evolve_args(world, tmp_path / "r2.sqlite", tmp_path / "b2", "--max-cost", "-1"), capsys)
    assert code == 2 and "--max-cost" in err


def test_resampled_runs_select_on_their_subsets_whatever_the_workers(world, reference, tmp_path, capsys):
    """--resample 0.5: survivors are sorted by each generation's subset quality; 1 and 2
    workers give the same run; resuming with another fraction is refused."""
    from sae.evolve.select import Scored, survivors

    runs = []
    for workers in ("1", "2"):
        d = tmp_path / workers
        d.mkdir()
        assert main(evolve_args(world, d / "run.sqlite", d / "best", "--resample", "0.5", "--workers", workers)) == 0
        runs.append(finished(d / "run.sqlite", d / "best"))
    assert runs[0] == runs[1] and runs[0][0] != reference["digest"]
    store = RunStore(tmp_path / "1" / "run.sqlite")
    try:
        records = store.evaluations("fit")
        assert all(len(r["subset_quality"]) == 4 for r in records.values())
        for gen in (1, 2, 3):
            children = [k for (k,) in store.db.execute("SELECT child FROM births WHERE gen=? ORDER BY slot", (gen,))]
            pool = [k for k, _, _ in store.population(gen - 1)] + children
            scored = [Scored(k, records[k]["subset_quality"][gen], records[k]["objectives"]["cost"]) for k in pool]
            kept = survivors(scored, 6)
            assert [(r.key, r.front) for r in kept] == [(k, f) for k, f, _ in store.population(gen)]
    finally:
        store.close()
    capsys.readouterr()
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "1" / "run.sqlite", tmp_path / "b", "--resume",
                                               "--resample", "0.25"), capsys)[::2])
    assert "resample" in line and "cannot resume" in line
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "r.sqlite", tmp_path / "b", "--resample", "1"),
                                   capsys)[::2])
    assert "--resample" in line



def test_distinct_runs_give_each_behaviour_one_place(world, tmp_path):
    """--distinct: a generation's survivors repeat objectives only when the pool holds too
    few distinct ones, and the final candidates never do."""
    assert main(evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--distinct")) == 0
    store = RunStore(tmp_path / "run.sqlite")
    try:
        records = store.evaluations("fit")

        def behaviour(key: str) -> tuple[float, float]:
            return records[key]["objectives"]["quality"], records[key]["objectives"]["cost"]

        for gen in (1, 2, 3):
            children = [k for (k,) in store.db.execute("SELECT child FROM births WHERE gen=? ORDER BY slot", (gen,))]
            pool = {k for k, _, _ in store.population(gen - 1)} | set(children)
            kept = [k for k, _, _ in store.population(gen)]
            assert len({behaviour(k) for k in kept}) == min(len(kept), len({behaviour(k) for k in pool}))
        candidates = [c["genome"] for c in store.final()["candidates"]]
        assert len({behaviour(k) for k in candidates}) == len(candidates)
    finally:
        store.close()


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _run_with_workers(world, tmp_path, stderr) -> tuple[subprocess.Popen, Path, set[int]]:
    """``sae evolve --workers 2`` in a subprocess, once it has stored a generation: the
    process, its run file and its child processes."""
    run = tmp_path / "run.sqlite"
    cmd = [sys.executable, "-m", "sae", *evolve_args(world, run, tmp_path / "best", "--workers", "2",
                                                     generations=200)]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True)
    deadline = time.monotonic() + 120
    while committed_generation(run) is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    if proc.poll() is not None or len(workers) < 2:
        proc.kill()
        proc.wait()
        pytest.fail("the run ended or never started its workers")
    return proc, run, workers


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_end_with_a_killed_run(world, tmp_path):
    """kill -9 of sae evolve --workers 2 leaves no worker behind (each would hold the data)."""
    proc, _, workers = _run_with_workers(world, tmp_path, subprocess.DEVNULL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"workers {alive} outlived the killed run"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_killed_worker_ends_the_run_with_one_line(world, tmp_path):
    """A worker killed from outside (by hand, or for memory): one line that says to resume,
    not a BrokenProcessPool traceback; the finished generations stay in the store."""
    proc, run, workers = _run_with_workers(world, tmp_path, subprocess.PIPE)
    try:
        # the pool's workers, not multiprocessing's resource tracker (also a child)
        pool = [w for w in workers if b"resource_tracker" not in Path(f"/proc/{w}/cmdline").read_bytes()]
        os.kill(min(pool), signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "worker process ended abruptly" in lines[0] and "--resume" in lines[0], err
    assert committed_generation(run) is not None


def test_linear_refuses_a_base_that_multiplies(world, tmp_path, capsys):
    """--linear promises a pick that takes an output map; a base whose own rules push and
    multiply cannot keep it: one line, exit 2, nothing written."""
    line = one_line_error(*run_cli(evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--linear"),
                                   capsys)[::2])
    assert "--linear" in line and "MUL" in line
    assert not (tmp_path / "run.sqlite").exists() and not (tmp_path / "best").exists()


def test_a_linear_run_picks_an_algorithm_that_takes_the_map(world, tmp_path, capsys):
    from dataclasses import replace

    from sae.algorithm import save_algorithm
    from sae.distill.output_map import check_linear
    from sae.layout import Op

    tiny = load_algorithm(world["base"])
    save_algorithm(replace(tiny, rules=tuple(r for r in tiny.rules
                                             if all(up.opcode != int(Op.MUL) for up in r.updates))), tmp_path / "base")
    args = evolve_args(world, tmp_path / "run.sqlite", tmp_path / "best", "--linear", generations=3, population=4)
    args[args.index("--base") + 1] = str(tmp_path / "base")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    check_linear(load_algorithm(tmp_path / "best"))
    store = RunStore(tmp_path / "run.sqlite")
    try:
        assert store.config()["config"]["linear"] is True
        assert all('"MUL"' not in store.genome_json(k) for k in store.evaluations("fit"))
    finally:
        store.close()


def test_the_final_pick_drops_settings_that_change_nothing_and_rules_that_add_nothing(world, tmp_path):
    """A tolerance without a guard and an opcode on a rule that never fires are dropped, then
    that rule and every rule without which the pick is no worse and cheaper; no rule kept
    passes that test."""
    from dataclasses import replace

    from tiny import parse

    from sae.evolve.executors import Payload, make_executor
    from sae.evolve.genome import Genome, genome_of, normalized, rule_key, rule_removals
    from sae.evolve.run import Evolution, EvolveConfig, Inputs, _no_worse_and_cheaper, load_inputs

    config = EvolveConfig(generations=1, population=4, fit_pairs=0, minimal_pairs=0)
    base, data, _ = load_inputs(Inputs(teacher=world["teacher"], pairs=world["pairs"], base=world["base"]), config)
    padded = normalized(Genome(genome_of(base).rules + parse("rule p score 10: [neg] [neg] => set 0 op=PUSH"),
                               replace(base.params, tolerance=777), 0))
    store = RunStore(tmp_path / "run.sqlite")
    executor = make_executor(Payload.of(base, data, config.fitness), "local", 1, None)
    try:
        evo = Evolution(config, base, data, store, executor)
        evo.genomes[padded.key] = padded
        (fit,), _ = evo._evaluate([padded.key], "fit")
        (val,), _ = evo._evaluate([padded.key], "valid")
        evo.records[padded.key] = fit.record()
        pick = (fit.record(), val.record())
        chosen, steps, records = evo._simplify(padded.key, val.record())
        simpler = evo.genome(chosen)
        kept = []  # whether the chosen genome without each rule it kept would dominate the pick
        for _, without in rule_removals(simpler):
            evo.genomes[without.key] = without
            (f,), _ = evo._evaluate([without.key], "fit")
            (v,), _ = evo._evaluate([without.key], "valid")
            kept.append(_no_worse_and_cheaper(pick[0], f.record()) and _no_worse_and_cheaper(pick[1], v.record()))
    finally:
        executor.close()
        store.close()
    whats = [what.split(": ")[-1] for what, _ in steps]
    assert whats[:2] == ["set 0 op=PUSH", "tolerance 777 (the base's 0)"]
    assert len(whats) > 2 and all(what.startswith("rule ") for what in whats[2:])
    assert simpler.params == base.params and len(simpler.rules) == len(padded.rules) - (len(whats) - 2)
    assert {rule_key(r) for r in simpler.rules} <= {rule_key(r) for r in genome_of(base).rules}  # the padding went
    assert simpler.rules and not any(kept)
    for _, key in steps:
        for split in (0, 1):
            before, after = pick[split]["objectives"], records[key][split]["objectives"]
            assert round(after["quality"], 6) >= round(before["quality"], 6) and after["cost"] <= before["cost"]


def test_out_may_not_take_the_name_of_the_run_files_journal(world, tmp_path, capsys):
    """``--out RUN.sqlite-journal`` was taken, and every later write of the run failed
    (an adversarial pass)."""
    run = tmp_path / "run.sqlite"
    code, _, err = run_cli(evolve_args(world, run, tmp_path / "run.sqlite-journal"), capsys)
    assert code == 2 and "SQLite writes the run file" in err and "journal by that name" in err
    assert not (tmp_path / "run.sqlite-journal").exists()
