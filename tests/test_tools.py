"""Every script in tools/ runs as its docstring says, with the smallest budget it offers, exits 0
and prints the figures it promises (the lines and fields; never the timings' values).

The suite runs no tool otherwise, so they rot unseen as the library changes. To stay cheap,
the tools that take ``--algorithm`` run on the tiny test Algorithm (tests/tiny.py), and those
that read an STS-B split and its teacher file (``--shared``) on a synthetic shared folder built
from the evolve tests' world (tests/evolve/evolve_helpers.py: the tiny vocabulary's pairs, a
teacher of its dimension, negated minimal pairs), so they run without ../shared/data too. One
check runs bench_cpu.py on the real STS-B dev split with the bundled default; it skips (and
says so) without ../shared/data. Tools that need an optional extra skip with its install hint;
those that need a GPU adapter skip without one (fail with ``SAE_REQUIRE_GPU=1``, as tests/gpu).

Not run here, and why: tools/build_default.sh in full (20+ minutes; its argument checks and
``--help`` are), and tools/distill/split_inputs.py (a module of the distill tools, run by them).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_DATA, needs_shared

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS / "evolve"))  # evolve_helpers: the tiny world
sys.path.insert(0, str(TESTS / "gpu"))  # gpu_helpers: the adapter probe

from evolve_helpers import build_world  # noqa: E402
from gpu_helpers import REQUIRE_GPU, gpu_skip_reason  # noqa: E402

from sae.io import write_embeddings  # noqa: E402
from sae.teacher import read_teacher  # noqa: E402

NOWHERE = "nowhere-shared"  # a --shared without data: the tools fall back to the bundled demo pairs


def run_tool(tool: str, *args: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,),
             timeout: float = 180) -> str:
    """Run ``tools/TOOL`` as a user would (its own process, from the checkout); its stdout and
    stderr together. The checkout comes first on the path of the tool and of the processes it
    starts (``sae embed``, ``sae serve``, ``sae evolve``), as in tools/build_default.sh."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / tool), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)
    assert proc.returncode in ok, f"{tool} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def assert_lines(out: str, *expected: str) -> None:
    """Each expected piece appears in the output (a line's label, a field's name)."""
    missing = [piece for piece in expected if piece not in out]
    assert not missing, f"missing {missing} in:\n{out[-4000:]}"


def needs_gpu() -> None:
    reason = gpu_skip_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_GPU, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_GPU} is set but {reason}", pytrace=False)
    pytest.skip(reason)


def needs_module(name: str, hint: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"needs {name}: {hint}")


# -- fixtures: the tiny Algorithm, the synthetic shared folder, a stand-in for Model2Vec


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The evolve tests' world laid out as a shared folder (``data/stsb``, ``data/teacher``):
    its pairs are both splits, its teacher file both teacher files."""
    root = tmp_path_factory.mktemp("tools-world")
    w = build_world(root)
    shared = root / "shared"
    (shared / "data/stsb").mkdir(parents=True)
    (shared / "data/teacher").mkdir(parents=True)
    for split in ("train", "dev"):
        shutil.copy(w["pairs"], shared / f"data/stsb/sts-{split}.csv")
        shutil.copy(w["teacher"], shared / f"data/teacher/teacher-minilm-{split}.parquet")
    return {**w, "shared": shared}


@pytest.fixture(scope="module")
def teacher_cache(world) -> Path:
    """A distillation teacher cache that already holds every minimal-pair variant the tools ask
    for (random unit vectors of the world teacher's dimension): the teacher never runs."""
    from sae.distill.minimal_pairs import minimal_pairs, reported_pairs
    from sae.distill.teacher_cache import TEXTS_FILE
    from sae.evaluate import read_pairs

    sentences = read_pairs(world["pairs"]).unique_texts()
    variants = {v for found in (minimal_pairs(sentences), reported_pairs(sentences))
                for pairs in found.values() for pair in pairs for v in pair}
    assert variants, "the world has minimal pairs (the tools' code for them runs)"
    texts = sorted(variants)
    dim = read_teacher(world["teacher"]).dim
    emb = np.random.default_rng(3).standard_normal((len(texts), dim))
    cache = world["root"] / "teacher-cache"
    cache.mkdir()
    write_embeddings(cache / TEXTS_FILE, texts, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32))
    return cache


@pytest.fixture(scope="module")
def fake_model2vec(tmp_path_factory) -> tuple[dict[str, str], str]:
    """An environment in which ``import model2vec`` finds a stand-in StaticModel (hashing
    words to vectors), and a model directory: the Model2Vec anchor's code path (its timing in
    its own interpreter, its embeddings scored, the ratios) without installing model2vec."""
    root = tmp_path_factory.mktemp("fake-m2v")
    (root / "model2vec").mkdir()
    (root / "model2vec" / "__init__.py").write_text(
        "import zlib\n"
        "import numpy as np\n\n\n"
        "class StaticModel:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, path):\n"
        "        return cls()\n\n"
        "    def encode(self, texts):\n"
        "        out = np.zeros((len(texts), 16), dtype=np.float32)\n"
        "        for i, text in enumerate(texts):\n"
        "            for word in text.lower().split():\n"
        "                out[i] += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(16)\n"
        "        return out\n"
    )
    (root / "model").mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    return env, str(root / "model")


# -- tools/bench*.py, loadtest.py: the bundled demo pairs (no ../shared), the tiny Algorithm


def test_bench_prints_the_side_by_side_table_and_the_sweeps(tmp_path, tiny_dir, fake_model2vec):
    env, model = fake_model2vec
    out = run_tool("bench.py", "--shared", NOWHERE, "--algorithm", str(tiny_dir), "--batch-sizes", "64",
                   "--lengths", "16", "--json", str(tmp_path / "bench.json"),
                   "--m2v-python", sys.executable, "--m2v-model", model, env=env)
    assert_lines(out, "sae benchmark — 61 bundled demo texts", "vs Model2Vec", "vs tokenize", "model2vec",
                 "tokenizer only", "sae tokenize (word cache, warm)", "cost model: rules and annealing steps",
                 "CPU annealing of 61 docs", "limits here: tokenization", "memory bandwidth", "peak RSS")
    assert "…" not in out  # no figure cut to fit 80 columns
    assert f"wrote {tmp_path / 'bench.json'}" in out
    # The CPU path's dev row has both ratios: to Model2Vec and to the tokenizer.
    assert re.search(r"│\s+cpu\s+│\s+64\s+│\s+dev\s+│[^\n]*│\s+[\d.]+x\s+│\s+[\d.]+x\s+│", out), out


def test_bench_cpu_on_the_world_with_the_model2vec_anchor_and_the_profile(world, fake_model2vec):
    env, model = fake_model2vec
    out = run_tool("bench_cpu.py", "--shared", str(world["shared"]), "--algorithm", str(world["base"]),
                   "--rounds", "1", "--repeats", "1", "--profile", "--profile-passes", "1",
                   "--m2v-python", sys.executable, "--m2v-model", model, env=env)
    assert_lines(out, "1 alternating round(s)", "sae cpu (default, rules)", "sae cpu (same, rules removed)",
                 "model2vec (model, 16-d)", "ratio sae/model2vec (best rounds):", "ratio with rules, round by round:",
                 "where sae's CPU time goes", "  tokenize", "  anneal", "  vm", "same, rules removed:",
                 "each rule's matching", "merge3 ")


def test_bench_cpu_says_when_model2vec_is_not_run_and_refuses_a_wrong_anchor(world):
    out = run_tool("bench_cpu.py", "--shared", str(world["shared"]), "--algorithm", str(world["base"]),
                   "--rounds", "1", "--repeats", "1", "--no-m2v")  # the defaults may exist on this machine
    assert "model2vec: not run" in out and "ratio" not in out
    out = run_tool("bench_cpu.py", "--shared", str(world["shared"]), "--m2v-python", sys.executable,
                   "--m2v-model", str(world["root"] / "no-model"), ok=(2,))
    assert out.splitlines()[-1] == f"bench_cpu.py: error: --m2v-model {world['root'] / 'no-model'}: no such model directory"


@needs_shared
def test_bench_cpu_on_sts_b_dev_with_the_bundled_default(fake_model2vec):
    env, model = fake_model2vec
    out = run_tool("bench_cpu.py", "--shared", str(SHARED_DATA.parent), "--rounds", "1", "--repeats", "1",
                   "--m2v-python", sys.executable, "--m2v-model", model, env=env)
    assert_lines(out, "STS-B dev: 2910 unique sentences, 1500 pairs", "sae cpu (default, rules)",
                 "ratio sae/model2vec (best rounds):")


def test_bench_gpu_prints_the_same_run_traffic_passes_and_the_prediction(tmp_path, tiny_dir):
    needs_gpu()
    out = run_tool("bench_gpu.py", "--shared", NOWHERE, "--algorithm", str(tiny_dir), "--rounds", "1",
                   "--json", str(tmp_path / "gpu.json"))
    assert_lines(out, "numpy vs the GPU path on", "61 bundled demo texts, same run", "median ratio",
                 "same counts: True", "host-device traffic per embed batch", "passes on this CPU with a GPU's workgroup",
                 "anneal", "dispatches/batch", "host: encoding a batch", "PREDICTION (cost model, not measured)",
                 "NVIDIA H200 SXM", "device alone")
    assert "…" not in out


def test_bench_latency_mixed_and_tokenize(tiny_dir):
    alg = ("--shared", NOWHERE, "--algorithm", str(tiny_dir))
    out = run_tool("bench_latency.py", *alg, "--sizes", "1,16", "--calls", "2")
    assert_lines(out, "Algorithm tiny", "61 texts, numpy, 1 thread", "    1 text(s) per call:", "   16 text(s) per call:",
                 "ms per call", "µs per text")
    # A size past the 61 texts repeats them, rather than timing a 61-text call as one of 100.
    out = run_tool("bench_latency.py", *alg, "--sizes", "100", "--calls", "1")
    assert_lines(out, "61 texts (repeated to fill calls of 100), numpy, 1 thread", "  100 text(s) per call:")
    out = run_tool("bench_mixed.py", *alg, "--batch", "16", "--repeats", "1")
    assert_lines(out, "61 texts, mean", "random batches of 16", "  random ", "  neighbours ", "  corpus ",
                 "random / neighbours", "random / corpus")
    out = run_tool("bench_tokenize.py", *alg, "--rounds", "1")
    assert_lines(out, "61 bundled demo sentences", "the same ids in every row", "tokenizer (encode_batch_fast)",
                 "word cache, cold", "word cache, warm", "word cache, after the train sentences", "x the tokenizer")


def test_bench_stream_compares_streaming_with_in_memory_and_measures_memory(tmp_path):
    out = run_tool("bench_stream.py", "--shared", NOWHERE, "--workdir", str(tmp_path), "--compare", "40",
                   "--texts", "40", "--rounds", "1", "--json", str(tmp_path / "stream.json"))
    assert_lines(out, "distinct sentences", "round 1 streaming", "round 1 in memory",
                 "streaming / in-memory throughput:", "best rounds:", "same rows: True", "streaming (memory)",
                 "peak memory", "this script's own peak")


def needs_serve(tool: str, *more: str) -> None:
    """Skip unless ``sae serve`` can run for ``tool``, and the test extra's ``more`` modules are there."""
    missing = [m for m in ("starlette", "uvicorn", "grpc", "grpc_reflection", "orjson", "prometheus_client", *more)
               if importlib.util.find_spec(m) is None]
    if missing:
        extras = "serve,serve-test" if more else "serve"
        pytest.skip(f"{tool} needs sae serve: pip install -e '.[{extras}]' (missing: {', '.join(missing)})")


def test_loadtest_runs_a_level_against_sae_serve(tiny_dir, tmp_path):
    needs_serve("loadtest.py")
    out = run_tool("loadtest.py", "--shared", NOWHERE, "--algorithm", str(tiny_dir), "--levels", "2",
                   "--seconds", "1", "--requests", "4", "--json", str(tmp_path / "load.json"))
    assert_lines(out, "corpus: 61 texts from bundled demo pairs", "round 1: in-process Engine.embed",
                 "vs in-process", "p99 ms", "mismatches", "server µs CPU/text", "worker busy",
                 "one engine thread alone", "server exit code after SIGTERM: 0")
    assert re.search(r"^\s+2\s+\d+\s+[\d,]+\s+\d+%\s+[\d.]+\s+[\d.]+\s+0\s+0\s", out, re.M), out  # no error, mismatch


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_loadtest_runs_over_tls(tiny_dir, protocol):
    needs_serve("loadtest.py", "trustme")
    out = run_tool("loadtest.py", "--shared", NOWHERE, "--algorithm", str(tiny_dir), "--levels", "2",
                   "--seconds", "1", "--requests", "4", "--protocol", protocol, "--tls")
    assert_lines(out, f"{protocol} over TLS (base64)", "server exit code after SIGTERM: 0")
    assert re.search(r"^\s+2\s+\d+\s+[\d,]+\s+\d+%\s+[\d.]+\s+[\d.]+\s+0\s+0\s", out, re.M), out


def test_serve_restart_kills_an_engine_process_under_load(tiny_dir):
    needs_serve("serve_restart.py", "httpx")
    out = run_tool("serve_restart.py", "--algorithm", str(tiny_dir), "--workers", "2", "--clients", "1",
                   "--seconds", "2.5")
    assert_lines(out, "workers 2, clients 1:", "after the kill:", "median", "p99", "server exit code after SIGTERM: 0")
    # The other worker serves through the restart: health never fails.
    assert "/health not 200 in 0 looks" in out, out


@pytest.mark.parametrize("connections", [[], ["--keep-alive"], ["--grpc"]])
def test_serve_shutdown_counts_what_clients_saw_after_sigterm(tiny_dir, connections):
    needs_serve("serve_shutdown.py", "httpx")
    out = run_tool("serve_shutdown.py", "--algorithm", str(tiny_dir), "--clients", "2", "--rounds", "1", *connections)
    assert_lines(out, "round 1: after SIGTERM", "refused", "exit code 0", "sent and never answered, per round:")


def test_serve_reload_counts_what_clients_saw_while_credentials_reload(tiny_dir):
    needs_serve("serve_reload.py", "httpx", "trustme")
    out = run_tool("serve_reload.py", "--algorithm", str(tiny_dir), "--clients", "1", "--reloads", "4")
    assert_lines(out, "4 SIGHUPs, 0.15 s apart; the server counted reloaded 4, refused 0",
                 "HTTPS, a new connection a request: 200", "HTTPS, one connection kept: 200",
                 "gRPC, a new channel a call: OK", "requests not answered 200 / OK: 0",
                 "server exit code after SIGTERM: 0")


# -- the viewer's tools


def test_bench_view_times_frames_in_a_window(tmp_path):
    needs_module("PIL", "pip install 'sae[view]'")
    needs_gpu()
    if shutil.which("xvfb-run") is None:
        pytest.skip("bench_view.py runs under a display: apt-get install xvfb (xvfb-run)")
    # The tool's own exit status, written from inside the display: xvfb-run exits 5 when it
    # cannot remove its temporary directory afterwards ("problem while cleaning up"), which
    # failed a CI run whose tool had run to its end.
    status = tmp_path / "status"
    proc = subprocess.run(["xvfb-run", "-a", "sh", "-c", f'"$0" "$@"; echo $? > {shlex.quote(str(status))}',
                           sys.executable, str(ROOT / "tools/bench_view.py"), "--frames", "3", "--seed", "190",
                           "--backend", "cpu"], capture_output=True, text=True, cwd=ROOT,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout + proc.stderr
    assert status.exists(), f"xvfb-run exited {proc.returncode} before the tool ran: {out[-3000:]}"
    code = int(status.read_text())
    # Exit 1 is its verdict that the window ran below 30 frames/s (a busy machine): still a run.
    assert code in (0, 1) and ("NOT met" in out) == (code == 1), out[-3000:]
    assert re.search(r"text \(seed \d+\): 128 tokens, 16 steps", out), out
    assert_lines(out, "layout only (build_scene)",
                 "offscreen: layout + draw + read back", "anchor: clear-only frames",
                 "window, scrubbing steps, 64 px cells", "the clear-only anchor", "slowest window case:")


def test_view_screenshots_writes_the_pictures(tmp_path):
    """The pictures with the CPU's timelines alone (an adapter name that matches none): the GPU
    column costs ~15 s more here, rebuilding the default's transformed rows for every step's
    engine; tests/viewer checks the two side by side."""
    needs_module("PIL", "pip install 'sae[view]'")
    needs_gpu()  # the pictures are drawn with wgpu
    out = run_tool("view_screenshots.py", "--out", str(tmp_path), env={**os.environ, "SAE_ADAPTER": "no-such-adapter"})
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["default_algorithm.png", "final_vm_pair.png", "merge_step.png"], out
    assert all(f"{tmp_path / n}: " in out for n in names)


# -- tools/distill: the world as the shared folder


def test_ablate_prints_the_variants_and_each_rules_cost(world):
    out = run_tool("distill/ablate.py", "--shared", str(world["shared"]), "--algorithm", str(world["base"]),
                   "--passes", "1")
    assert_lines(out, "dev: 90 pairs; Algorithm tiny", "Spearman", "cos->teacher", "all rules", "no rules",
                 "merges only", "without merge3", "each rule: what it adds", "match ms", "footprints ms", "anneal")


def test_ceiling_prints_the_teacher_and_the_oracles(world):
    needs_module("scipy", "the oracle ceiling needs scipy (pip install 'sae[analysis]')")
    out = run_tool("distill/ceiling.py", "--shared", str(world["shared"]), "--algorithm", str(world["base"]))
    assert_lines(out, "dev: 90 pairs", "Algorithm tiny", "vs no rules", "cos->teacher", "teacher ", "all rules",
                 "no rules", "oracle weights (no rules)", "oracle weights and transforms (no rules)")


def test_speed_variants_prints_each_subset_of_rules(world):
    out = run_tool("distill/speed_variants.py", "--shared", str(world["shared"]), "--algorithm",
                   str(world["base"]), "--repeats", "1")
    assert_lines(out, "rules kept", "sentences/s", "dev Spearman", "all rules", "no rules", "merges only",
                 "all but negate", "negate only")


# -- tools/evolve: the world's teacher, pairs and base


def test_bench_executors_runs_one_generation(world):
    out = run_tool("evolve/bench_executors.py", "--teacher", str(world["teacher"]), "--pairs", str(world["pairs"]),
                   "--base", str(world["base"]), "--generations", "1", "--population", "2", "--fit-pairs", "0",
                   "--minimal-pairs", "0", "--configs", "local:1")
    assert_lines(out, "cpu local workers 1: 2 evaluations", "after generation 0 n/a (one generation)", "digest",
                 "same run in every configuration: True", '"evaluations_per_second"')


def test_cost_of_prints_the_objectives(world):
    out = run_tool("evolve/cost_of.py", "--algorithm", str(world["base"]), "--base", str(world["base"]),
                   "--teacher", str(world["teacher"]), "--pairs", str(world["pairs"]), "--fit-pairs", "0",
                   "--minimal-pairs", "0")
    assert_lines(out, '"fit": {', '"spearman"', '"teacher"', '"cost"', '"rules"', '"steps"')


def test_dev_report_and_train_teacher_read_the_teacher_cache(world, teacher_cache, tmp_path):
    out = run_tool("evolve/dev_report.py", "--shared", str(world["shared"]), "--cache", str(teacher_cache),
                   "--algorithm", f"tiny={world['base']}")
    assert_lines(out, "dev Spearman", "rules add", "teacher cos", "minimal pairs |Δcos| negation",
                 '"without_rules_spearman"', '"negation_abs_error"', '"negation_bias"', '"rules_add"')
    assert "teacher:" not in out  # every teacher embedding came from the cache
    teacher_file = tmp_path / "teacher-train.parquet"
    out = run_tool("evolve/train_teacher.py", "--shared", str(world["shared"]), "--cache", str(teacher_cache),
                   "--out", str(teacher_file))
    base = read_teacher(world["teacher"])
    table = read_teacher(teacher_file)
    added = len(table.texts) - len(base.texts)
    assert added > 0 and table.texts[: len(base.texts)] == base.texts
    assert f"{teacher_file}: {len(base.texts)} train sentences + {added} minimal-pair variants" in out


# -- tools/build_default.sh: only its help and argument checks (the build takes 20+ minutes)


def test_build_default_prints_its_usage_and_checks_its_arguments(tmp_path):
    script = str(ROOT / "tools/build_default.sh")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", script, *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)

    usage = run("--help")
    assert usage.returncode == 0 and "Usage: tools/build_default.sh [SHARED] [OUT]" in usage.stdout
    assert "Rebuilds the bundled default Algorithm" in usage.stdout and not usage.stdout.startswith("#")
    cases = {("-x",): "unknown option -x", ("a", "b", "c"): "at most two arguments, SHARED and OUT; got 3",
             (str(tmp_path / "none"),): f"{tmp_path / 'none'}/data/stsb/sts-train.csv: no such file"}
    for args, message in cases.items():
        proc = run(*args)
        assert proc.returncode == 2 and proc.stderr.startswith(f"build_default.sh: error: {message}"), proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written (no out/default-build)


# -- tools/long_texts.py: windows against truncation, on the world's train pairs


def test_long_texts_compares_windows_with_truncation(world, tmp_path):
    from sae import Engine
    from sae.distill.teacher_cache import TEXTS_FILE
    from sae.evaluate import read_pairs

    spec = importlib.util.spec_from_file_location("long_texts", ROOT / "tools" / "long_texts.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    engine = Engine(world["base"], backend="cpu")
    pairs = read_pairs(world["shared"] / "data/stsb/sts-train.csv")
    singles, left, right, gold = tool.build(pairs, 2, lambda t: len(engine.tokenize([t])[0]))
    assert len(singles) == 2 and len(gold) == 2
    texts = sorted(set(singles + left + right))  # the teacher never runs: its cache holds them all
    emb = np.random.default_rng(5).standard_normal((len(texts), engine.dim))
    cache = tmp_path / "cache"
    cache.mkdir()
    write_embeddings(cache / TEXTS_FILE, texts, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32))
    out = run_tool("long_texts.py", "--shared", str(world["shared"]), "--cache", str(cache), "--count", "2",
                   "--algorithm", str(world["base"]))
    assert_lines(out, "2 long texts (", "2 long pairs of 12 train pairs", "cosine to teacher", "pairs vs gold",
                 "first 128 tokens (truncate)", "windows (the default)", "one document of 256 tokens")
    assert "teacher:" not in out.replace("teacher: long pairs", "")  # every teacher embedding came from the cache
