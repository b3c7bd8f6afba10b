"""``sae distill`` names a wrong ``--shared`` before it reads the teacher cache."""

from __future__ import annotations

import shutil

import pytest

from sae.cli import main

SHARED_FILES = ("data/stsb/sts-train.csv", "data/teacher/teacher-minilm-train.parquet",
                "data/teacher/teacher-minilm-dev.parquet")


def fake_shared(tmp_path):
    """A --shared folder with every file distill looks for: three train pairs, empty teacher files."""
    shared = tmp_path / "shared"
    for name in SHARED_FILES:
        (shared / name).parent.mkdir(parents=True, exist_ok=True)
        (shared / name).write_bytes(b"")
    pairs = "".join(f"main-captions\tf\t2012\t{i}\t{i}.0\tA cat {i}.\tA dog {i}.\n" for i in range(3))
    (shared / "data/stsb/sts-train.csv").write_text(pairs)
    return shared


@pytest.mark.parametrize("missing", SHARED_FILES)
def test_a_missing_shared_file_is_named_before_the_empty_cache(tmp_path, capsys, missing):
    shared = fake_shared(tmp_path)
    (shared / missing).unlink()
    if missing.endswith("sts-train.csv"):
        shutil.rmtree(shared / "data/stsb")
    if missing.endswith("dev.parquet"):  # read only to report on dev
        (shared / "data/stsb/sts-dev.csv").write_text((shared / "data/stsb/sts-train.csv").read_text())
    code = main(["distill", "--shared", str(shared), "--cache", str(tmp_path / "empty-cache"),
                 "--out", str(tmp_path / "out"), *(["--dev"] if missing.endswith("dev.parquet") else [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].endswith(f"{shared / missing}: no such file"), err
    assert not (tmp_path / "out").exists()


def test_contractions_on_a_tokenizer_without_a_bert_normalizer_name_the_file(tmp_path):
    from types import SimpleNamespace

    from sae.distill.recipe import Config, Recipe
    from sae.errors import InputError

    recipe = Recipe.__new__(Recipe)  # the fields _tokenizer_json reads, without a teacher
    recipe.tokenizer_json = '{"normalizer": null}'
    recipe.cache = SimpleNamespace(dir=tmp_path)
    with pytest.raises(InputError, match=r"tokenizer\.json: contractions need a lowercasing BERT normalizer"):
        recipe._tokenizer_json(Config())
    assert recipe._tokenizer_json(Config(contractions=False)) == recipe.tokenizer_json


@pytest.mark.parametrize("setting, message", [
    ("foo=1", "--set 'foo=1': expected KEY=VALUE with KEY one of"),
    ("tune", "--set 'tune': expected KEY=VALUE"),
    ("not_scale=abc", "--set 'not_scale=abc': not_scale takes float values, got 'abc'"),
    ("windows=2.5", "--set 'windows=2.5': windows takes int values, got '2.5'"),
    ("not_scale=0", "--set 'not_scale=0': not_scale is a weight scale, above 0 and at most 64"),
    ("num_scale=1e9", "--set 'num_scale=1e9': num_scale is a weight scale, above 0 and at most 64"),
    ("stop_scale=-0.25", "--set 'stop_scale=-0.25': stop_scale is a weight scale"),
    # Each of these was taken as given and failed after the whole fit (naming a temporary
    # file, or in a traceback), or wrote an Algorithm fitted with it (lam_token=-1, windows=-1).
    ("lam_token=nan", "--set 'lam_token=nan': lam_token must be above 0 (a finite number)"),
    ("lam_token=-1", "--set 'lam_token=-1': lam_token must be above 0"),
    ("lam_transform=0", "--set 'lam_transform=0': lam_transform must be above 0"),
    ("window_weight=inf", "--set 'window_weight=inf': window_weight must be at least 0 (a finite number)"),
    ("pair_weight=-1", "--set 'pair_weight=-1': pair_weight must be at least 0"),
    ("windows=-1", "--set 'windows=-1': windows must be at least 0"),
    ("min_word_freq=0", "--set 'min_word_freq=0': min_word_freq must be at least 1"),
    ("max_bytes=0", "--set 'max_bytes=0': max_bytes must be at least 1"),
    ("max_steps=65", "--set 'max_steps=65': max_steps must be at least 0 and at most 64"),
    ("inhibit_steps=-1", "--set 'inhibit_steps=-1': inhibit_steps must be at least 0 and at most 64"),
    ("tolerance=-1", "--set 'tolerance=-1': tolerance must be at least 0 and at most 1.07374e+09"),
    ("negation_span=1000", "--set 'negation_span=1000': negation_span must be at least 0 and at most 8"),
    ("refine_steps=-1", "--set 'refine_steps=-1': refine_steps must be at least 0"),
    ("map_steps=-5", "--set 'map_steps=-5': map_steps must be at least 0"),
    ("refine_pair_weight=nan", "--set 'refine_pair_weight=nan': refine_pair_weight must be at least 0"),
    ("rules=ture", "--set 'rules=ture': rules is on or off: 1, true, yes, on or 0, false, no, off"),
])
def test_a_bad_setting_is_named_in_one_line_before_anything_is_read(tmp_path, capsys, setting, message):
    """Before the shared data (missing here) is read: a value out of range is refused up front."""
    code = main(["distill", "--shared", str(tmp_path / "no-shared"), "--out", str(tmp_path / "out"),
                 "--set", setting])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_out_and_cache_are_checked_before_anything_is_read(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    code = main(["distill", "--shared", str(tmp_path / "no-shared"), "--out", str(mine)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds 'notes.txt'" in err[0], err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    shared = fake_shared(tmp_path)
    (tmp_path / "cache").write_text("not a directory")
    code = main(["distill", "--shared", str(shared), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].endswith("is a file; the teacher cache is a directory"), err


def test_out_may_not_be_the_algorithm_it_finishes(tmp_path, capsys, tiny_dir):
    """--output-map-of DIR --out DIR replaced the Algorithm it read."""
    import shutil

    from sae.algorithm import load_algorithm

    alg = tmp_path / "alg"
    shutil.copytree(tiny_dir, alg)
    before = load_algorithm(alg).content_hash
    code = main(["distill", "--shared", str(tmp_path / "no-shared"), "--output-map-of", str(alg), "--out", str(alg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is also an input of this command" in err[0], err
    assert load_algorithm(alg).content_hash == before


@pytest.mark.parametrize("lines, message", [
    (["A cat {i}.\tA dog {i}."] * 9, "9 pair(s); --tune holds out every 5th pair and scores a correlation on them: "
                                     "it needs at least 10 pairs"),
    (["A cat.\tA dog."] * 10, "every sentence of the pairs --tune fits on is also in a held-out pair"),
])
def test_tune_on_too_few_train_pairs_is_one_line_before_the_teacher(tmp_path, capsys, lines, message):
    """Fewer than 5 train pairs held out none and failed in a traceback (ValueError: Pairs: no
    pairs), after the teacher files and the cache were read."""
    shared = fake_shared(tmp_path)
    pairs = "".join(f"main-captions\tf\t2012\t{i}\t{i % 5}.0\t{line.format(i=i)}\n" for i, line in enumerate(lines))
    (shared / "data/stsb/sts-train.csv").write_text(pairs)
    code = main(["distill", "--shared", str(shared), "--cache", str(tmp_path / "cache"), "--tune"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"sae distill: error: {shared / 'data/stsb/sts-train.csv'}: {message}"), err
    assert not (tmp_path / "cache").exists()


def test_every_default_is_within_its_range_and_the_words_for_on_and_off():
    from dataclasses import fields

    from sae.distill.recipe import CONFIG_RANGES, Config

    cfg = Config()
    numbers = [f.name for f in fields(cfg) if not isinstance(getattr(cfg, f.name), bool)]
    assert set(CONFIG_RANGES) == {n for n in numbers if not n.endswith("_scale")}
    assert cfg.with_overrides([f"{name}={getattr(cfg, name)}" for name in numbers]) == cfg
    assert cfg.with_overrides(["rules=off", "merges=Yes", "subject=0"]).rules is False
    assert cfg.with_overrides(["merges=Yes"]).merges is True


def test_one_set_takes_several_settings_as_the_docs_write_them(monkeypatch):
    """docs/DISTILLATION.md: '--set subject=0 preposition=0 clause=0 gives the previous recipe';
    argparse refused it (unrecognized arguments: preposition=0 clause=0)."""
    import sae.distill.recipe as recipe

    seen = {}

    def fake_run(args):
        seen["cfg"] = recipe.Config().with_overrides(args.set)
        return 0

    monkeypatch.setattr(recipe, "run", fake_run)
    assert main(["distill", "--set", "subject=0", "preposition=0", "clause=0", "--set", "windows=2", "--tune"]) == 0
    cfg = seen["cfg"]
    assert (cfg.subject, cfg.preposition, cfg.clause, cfg.windows) == (False, False, False, 2)


def test_dev_is_read_before_the_fit(tmp_path, capsys):
    """--dev read sts-dev.csv only after the build: a missing or bad one failed once --out was
    written, after the whole fit."""
    shared = fake_shared(tmp_path)  # no sts-dev.csv
    code = main(["distill", "--shared", str(shared), "--cache", str(tmp_path / "cache"), "--out",
                 str(tmp_path / "out"), "--dev"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"sae distill: error: {shared / 'data/stsb/sts-dev.csv'}: no such file"], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_tune_and_dev_together_are_refused(tmp_path, capsys):
    """--tune --dev printed the holdout and silently no dev figures."""
    code = main(["distill", "--shared", str(tmp_path / "no-shared"), "--tune", "--dev"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["sae distill: error: --dev measures the Algorithm written to --out, and --tune "
                                 "writes none; drop one of them"], err


@pytest.mark.parametrize("cache", ["out", "out/cache"])
def test_a_cache_inside_out_is_refused_before_it_is_created(tmp_path, capsys, cache):
    """--cache OUT/cache with a new OUT: the cache was created (and, with the teacher, filled
    for minutes) inside the directory --out replaces, and the run was refused at the end, or
    replaced the cache by the Algorithm."""
    shared = fake_shared(tmp_path)
    out = tmp_path / "out"
    code = main(["distill", "--shared", str(shared), "--cache", str(tmp_path / cache), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    expected = "is also an input of this command" if cache == "out" else "which this command needs; name another --out"
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not out.exists()


def test_a_size_budget_too_small_for_the_data_is_refused_before_the_teacher(tmp_path, capsys):
    """--set max_bytes (or gpu_binding_bytes) below what the data needs was ignored: the
    Algorithm was written larger than the budget, exit 0."""
    import numpy as np

    from sae.distill.teacher_cache import TOKENS_FILE
    from sae.teacher import write_teacher
    from tests.conftest import teacher_tokenizer_json

    shared = fake_shared(tmp_path)
    for split in ("train", "dev"):
        write_teacher(shared / f"data/teacher/teacher-minilm-{split}.parquet", ["A cat 0."], np.eye(1, 384), {})
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tokenizer.json").write_text(teacher_tokenizer_json(), encoding="utf-8")
    np.save(cache / TOKENS_FILE, np.full((30522, 384), 384**-0.5, dtype=np.float32))
    for setting, rows in (("max_bytes=1000", 0), ("gpu_binding_bytes=1000", 0)):
        code = main(["distill", "--shared", str(shared), "--cache", str(cache), "--out", str(tmp_path / "out"),
                     "--set", setting])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert f"room for {rows} vector rows beside the other files, and the Algorithm needs at least" in err[0]
        assert not (tmp_path / "out").exists()


def test_no_shared_folder_names_the_option_and_its_default(tmp_path, monkeypatch, capsys):
    """Run from a directory without ../shared, 'sae distill --tune' said
    '../shared/data/stsb/sts-train.csv: no such file', a path the user never gave, and --help
    did not say that --shared defaults to ../shared."""
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["distill", "--tune"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sae distill: error: ../shared: no shared data here (data/stsb, data/teacher); name the shared "
                   "folder with --shared (default: ../shared, from the current directory)"], err
    assert not (work / "out").exists()
    assert main(["distill", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: ../shared, from the current directory)" in text and "(default: out/base;" in text
    assert "(default: out/distill)" in text


def test_the_fit_never_reads_the_dev_teacher_file(tmp_path):
    """A window or minimal-pair variant that is also a dev sentence took dev's teacher row
    (the last file read won): the fit's targets come from the train file and the cache only;
    the dev file is read for a report on dev, after the fit."""
    import numpy as np

    from sae.distill.recipe import Recipe
    from sae.distill.teacher_cache import TEXTS_FILE, TOKENS_FILE
    from sae.teacher import write_teacher
    from tests.conftest import teacher_tokenizer_json

    shared = fake_shared(tmp_path)
    rows = np.eye(384)
    (shared / "data/teacher/teacher-minilm-train.parquet").unlink()
    write_teacher(shared / "data/teacher/teacher-minilm-train.parquet", ["A cat 0."], rows[[0]], {})
    (shared / "data/teacher/teacher-minilm-dev.parquet").unlink()
    write_teacher(shared / "data/teacher/teacher-minilm-dev.parquet", ["A cat 0.", "A cat sleeps."], rows[[1, 2]], {})
    (shared / "data/stsb/sts-dev.csv").write_text(
        "".join(f"main-captions\tf\t2012\t{i}\t{i}.0\tA cat sleeps.\tA dog {i}.\n" for i in range(2)))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tokenizer.json").write_text(teacher_tokenizer_json(), encoding="utf-8")
    np.save(cache / TOKENS_FILE, np.ones((30522, 384), dtype=np.float32))
    write_teacher(cache / TEXTS_FILE, ["A cat sleeps."], rows[[3]], {})

    for dev in (False, True):
        recipe = Recipe(shared, cache, "/nonexistent/python", dev=dev)
        assert np.array_equal(recipe.targets(["A cat 0.", "A cat sleeps."]), rows[[0, 3]])  # train, then the cache
    recipe.add_dev_teacher()  # for the report on dev: dev's rows where train has none
    assert np.array_equal(recipe.targets(["A cat 0.", "A cat sleeps."]), rows[[0, 2]])
    (shared / "data/teacher/teacher-minilm-dev.parquet").unlink()  # not needed without --dev
    Recipe(shared, cache, "/nonexistent/python")
