"""Training state is a transaction (issue 11): one atomic, validated checkpoint file; resume refuses
a different run; the NaN guard checks the loss and the gradients and never saves a non-finite state."""
import os

import autograd.numpy as anp
import numpy as np
import pytest

from refscore import backends, datasets, losses, pytree
from refscore.training import train
from refscore.training import checkpoint
from refscore.training.checkpoint import CheckpointCorrupt, CheckpointMismatch
from refscore.energies import MLPEnergy

KW = dict(batch_size=16, progress_bar=False, checkpoint_every=10)


def _setup(hidden=(16, 16), dtype="float64"):
    data = datasets.make("gaussian_mixture", 200, np.random.default_rng(0)).astype(dtype)
    model = MLPEnergy(2, hidden, rng=np.random.default_rng(1), dtype=dtype)
    loss = lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.2, r)  # noqa: E731
    return data, model, loss


def _fit(ck, n_steps, seed=7, optimizer=None, setup=None, **kw):
    data, model, loss = setup or _setup()
    return train.fit(loss, model.params, data, np.random.default_rng(seed), n_steps=n_steps, checkpoint_dir=ck,
                     optimizer=optimizer, **{**KW, **kw})


def _same(a, b):
    return all(np.array_equal(x, y) for (_, x), (_, y) in zip(pytree.tree_leaves(a), pytree.tree_leaves(b)))


def test_final_checkpoint_and_finished_run(tmp_path):
    ck = tmp_path / "ck"
    params, hist = _fit(ck, 25)  # checkpoints at 10, 20 and the final step 25
    meta = checkpoint.inspect(ck / checkpoint.FILENAME)
    assert (meta["step"], meta["n_steps"], meta["config"]["backend"]) == (25, 25, "numpy")
    assert meta["config"]["optimizer"]["kind"] == "adam" and len(meta["sha256"]) == 64
    # resuming a finished run takes no step: loss_fn is never called, the state comes back as saved
    data, model, _ = _setup()

    def never(p, b, r):
        raise AssertionError("loss_fn called on a finished run")

    again, hist2 = train.fit(never, model.params, data, np.random.default_rng(0), n_steps=25, checkpoint_dir=ck, **KW)
    assert _same(params, again) and hist2["loss"] == hist["loss"]


@pytest.mark.parametrize("dies_in", ["fsync", "replace"])
def test_kill_between_writes_resumes_the_previous_good_state(tmp_path, monkeypatch, dies_in):
    full, h_full = _fit(None, 40)
    ck = tmp_path / "ck"
    _fit(ck, 20)

    class Killed(BaseException):
        pass

    def killed(*args):  # the process dies while the temporary file is written, or just before the rename
        raise Killed

    monkeypatch.setattr(os, dies_in, killed)
    with pytest.raises(Killed):
        _fit(ck, 40)  # dies at the step-30 save
    monkeypatch.undo()
    assert checkpoint.inspect(ck / checkpoint.FILENAME)["step"] == 20
    assert sorted(os.listdir(ck)) == [checkpoint.FILENAME]
    # a SIGKILL leaves its temporary file behind: a truncated newer state must never be read
    good = (ck / checkpoint.FILENAME).read_bytes()
    (ck / ".checkpoint-x1y2.tmp").write_bytes(good[: len(good) // 2])
    resumed, h_res = _fit(ck, 40, seed=999)
    assert _same(full, resumed) and h_res["loss"] == h_full["loss"]
    assert sorted(os.listdir(ck)) == [checkpoint.FILENAME]  # the stray file was removed


def test_resume_refuses_a_different_model_shape(tmp_path):
    ck = tmp_path / "ck"
    _fit(ck, 10)
    with pytest.raises(CheckpointMismatch) as err:
        _fit(ck, 20, setup=_setup(hidden=(32, 32)))
    path = ck / checkpoint.FILENAME
    assert str(err.value) == (f"checkpoint {path}: params leaf '0/W' shape does not match: the checkpoint has "
                              "(2, 16), this run has (2, 32); pass resume=False to start afresh (or delete the file)")
    with pytest.raises(CheckpointMismatch, match=r"params structure \(leaf paths\) does not match"):
        _fit(ck, 20, setup=_setup(hidden=(16, 16, 16)))
    # resume=False starts afresh and overwrites the file
    _fit(ck, 20, setup=_setup(hidden=(32, 32)), resume=False)
    assert checkpoint.inspect(path)["spec"]["params"][0] == ["0/W", [2, 32], "float64"]


def test_resume_refuses_a_changed_optimizer(tmp_path):
    ck = tmp_path / "ck"
    _fit(ck, 10)
    with pytest.raises(CheckpointMismatch, match=r"optimizer does not match: the checkpoint has adam\(b1=0\.9, "
                       r"b2=0\.999, eps=1e-08, lr=0\.001\), this run has sgd\(lr=0\.01, momentum=0\.0\); "
                       r"pass resume=False"):
        _fit(ck, 20, optimizer=train.sgd())
    with pytest.raises(CheckpointMismatch,
                       match=r"optimizer does not match: .*lr=0\.001\), this run has adam\(.*lr=0\.002\)"):
        _fit(ck, 20, optimizer=train.adam(2e-3))


def test_resume_refuses_a_checkpoint_past_the_end(tmp_path):
    ck = tmp_path / "ck"
    _fit(ck, 40)
    with pytest.raises(CheckpointMismatch, match=r"step is past the end of this run: the checkpoint has step 40, "
                       r"this run has n_steps=20; pass resume=False"):
        _fit(ck, 20)


def test_resume_refuses_another_dtype_or_backend(tmp_path):
    ck = tmp_path / "ck"
    _fit(ck, 10)
    with pytest.raises(CheckpointMismatch, match="data_dtype does not match: the checkpoint has float64, this run "
                       "has float32"):
        _fit(ck, 20, setup=_setup(dtype="float32"))
    strict = backends.get("strict")
    data, model, loss = _setup()
    params = pytree.tree_map(strict.asarray, model.params)
    with pytest.raises(CheckpointMismatch,
                       match="backend does not match: the checkpoint has numpy, this run has strict"):
        train.fit(loss, params, strict.asarray(data), strict.rng(7), n_steps=20, checkpoint_dir=ck, **KW)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "edited array"])
def test_corrupt_checkpoint_is_named_with_a_hint(tmp_path, damage):
    ck = tmp_path / "ck"
    _fit(ck, 10)
    path = ck / checkpoint.FILENAME
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all\n" * 50)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid .npz whose parameters were changed after the hash was taken
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["tree/params/0/W"] = arrays["tree/params/0/W"] + 1e-12
        np.savez(path, **arrays)
        path = path.with_suffix(".npz")
    with pytest.raises(CheckpointCorrupt) as err:
        _fit(ck, 20)
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {path} is corrupt or truncated (")
    assert msg.endswith("); pass resume=False to start afresh (or delete the file)")
    if damage == "edited array":
        assert "content hash mismatch" in msg
    _fit(ck, 20, resume=False)  # the way out named in the message works
    assert checkpoint.inspect(path)["step"] == 20


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # the NaN is planted on purpose
def test_nan_gradient_at_a_checkpoint_step_keeps_the_previous_good_state(tmp_path):
    data, model, dsm = _setup()
    calls = {"n": 0}

    def loss(p, b, r):
        calls["n"] += 1
        off = 0.0 if calls["n"] == 30 else 1.0
        # at step 30 the value is finite but d/dW of 0·sqrt(0·|W|²) is 0·inf·0 = NaN
        return dsm(p, b, r) + 0.0 * anp.sqrt(off * anp.sum(p[0]["W"] ** 2) + (1 - off) * 0.0)

    ck = tmp_path / "ck"
    with pytest.raises(FloatingPointError) as err:
        train.fit(loss, model.params, data, np.random.default_rng(7), n_steps=60, checkpoint_dir=ck, log_every=25,
                  **KW)
    path = ck / checkpoint.FILENAME
    msg = str(err.value)
    assert msg.startswith("fit stopped at step 30: the gradient of params leaf '0/W' is non-finite (the loss was "
                          "finite, ")
    assert msg.endswith(f"the last good checkpoint {path} (step 20) is kept; lower the learning rate or check the "
                        "data and loss_fn")
    assert checkpoint.inspect(path)["step"] == 20
    with np.load(path) as z:
        floats = [z[k] for k in z.files if z[k].dtype.kind == "f"]
    assert len(floats) == 1 + 3 * 6 and all(np.isfinite(a).all() for a in floats)  # history, params, m, v


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # the NaN is planted on purpose
def test_nan_loss_without_checkpoint_names_the_first_bad_step():
    data, model, dsm = _setup()
    calls = {"n": 0}

    def loss(p, b, r):
        calls["n"] += 1
        return dsm(p, b, r) * (np.inf if calls["n"] >= 7 else 1.0)

    with pytest.raises(FloatingPointError, match=r"^fit stopped at step 7: the loss is non-finite \(inf\); no "
                       r"checkpoint \(checkpoint_dir=None\); lower the learning rate"):
        train.fit(loss, model.params, data, np.random.default_rng(7), n_steps=30, batch_size=16, log_every=10,
                  progress_bar=False)


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # the NaN is planted on purpose
@pytest.mark.parametrize("fails", [True, False])
def test_fit_never_changes_the_callers_optimizer(fails):
    """Issue 31: fit wrote the schedule's rate into the caller's `optimizer.lr` and put it back
    only on success; after a FloatingPointError an adam(1e-2) was left with the schedule's rate."""
    data, model, dsm = _setup()
    calls = {"n": 0}

    def loss(p, b, r):
        calls["n"] += 1
        return dsm(p, b, r) * (np.nan if fails and calls["n"] >= 4 else 1.0)

    opt = train.adam(1e-2)
    before = dict(vars(opt))
    seen = []
    schedule = lambda step: seen.append(step) or 984.0 + step  # noqa: E731
    run = lambda: train.fit(loss, model.params, data, np.random.default_rng(7), optimizer=opt, n_steps=6,  # noqa: E731
                            batch_size=16, log_every=2, progress_bar=False, lr_schedule=schedule)
    if fails:
        with pytest.raises(FloatingPointError, match="fit stopped at step 4: the loss is non-finite"):
            run()
    else:
        run()
    assert seen and vars(opt) == before and opt.lr == 1e-2


def test_save_refuses_a_non_finite_state(tmp_path):
    data, model, _ = _setup()
    opt = train.adam()
    state = {"step": 3, "n_steps": 5, "trees": {"params": model.params, "opt_state": opt.init(model.params)},
             "history": {"loss": [1.0, 2.0, 3.0]}, "rng": np.random.default_rng(0).bit_generator.state,
             "config": {"backend": "numpy", "optimizer": opt.config(), "data_dtype": "float64"}}
    path = tmp_path / "c.npz"
    checkpoint.save(path, state)
    before = path.read_bytes()
    bad = pytree.tree_map(lambda a: a.copy(), model.params)
    bad[1]["b"][0] = np.nan
    with pytest.raises(FloatingPointError, match=rf"refusing to save a non-finite state at step 3: params leaf '1/b' "
                       rf"has NaN or inf; {path} was not touched"):
        checkpoint.save(path, dict(state, trees={"params": bad, "opt_state": state["trees"]["opt_state"]}))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.npz"]


def test_cd_k_resumes_bit_for_bit_and_pcd_refuses_checkpoints(tmp_path):
    data, _, _ = _setup()
    mk = lambda: MLPEnergy(2, (8,), rng=np.random.default_rng(1))  # noqa: E731
    kw = dict(k=2, step_size=0.01, batch_size=16, progress_bar=False, checkpoint_every=5)
    full, _ = train.fit_cd(mk(), data, np.random.default_rng(3), n_steps=10, **kw)
    train.fit_cd(mk(), data, np.random.default_rng(3), n_steps=5, checkpoint_dir=tmp_path / "cd", **kw)
    resumed, _ = train.fit_cd(mk(), data, np.random.default_rng(0), n_steps=10, checkpoint_dir=tmp_path / "cd", **kw)
    assert _same(full, resumed)
    with pytest.raises(ValueError, match="persistent=True with checkpoint_dir=.*the persistent chains are not "
                       "checkpointed"):
        train.fit_cd(mk(), data, np.random.default_rng(3), persistent=True, checkpoint_dir=tmp_path / "p", **kw)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(log_every=0), ValueError, "log_every must be an integer >= 1, got 0"),
    (dict(checkpoint_every=True), ValueError, "checkpoint_every must be an integer >= 1, got True"),
    (dict(checkpoint_every=2.5), ValueError, "checkpoint_every must be an integer >= 1, got 2.5"),
    (dict(n_steps=-1), ValueError, "n_steps must be an integer >= 0, got -1"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
    (dict(resume="yes"), TypeError, "resume must be True or False, got 'yes'"),
    (dict(checkpoint_dir=3), TypeError, "checkpoint_dir must be a path or None, got 3"),
    (dict(optimizer="adam"), TypeError, "optimizer must have init(params) and update(grads, state, params)"),
])
def test_fit_arguments_are_checked(kwargs, exc, message):
    data, model, loss = _setup()
    with pytest.raises(exc) as err:
        train.fit(loss, model.params, data, np.random.default_rng(0), **{"n_steps": 5, **kwargs})
    assert message in str(err.value)


@pytest.mark.parametrize("make, exc, message", [
    (lambda: train.adam(b1=1.0), ValueError, "b1 must lie in [0, 1), got 1.0"),
    (lambda: train.adam(b2=-0.1), ValueError, "b2 must lie in [0, 1), got -0.1"),
    (lambda: train.adam(b1=True), TypeError, "b1 must be a number in [0, 1), got True"),
    (lambda: train.adam(lr=0.0), ValueError, "lr must be positive and finite, got 0.0"),
    (lambda: train.adam(eps=0), ValueError, "eps must be positive and finite, got 0"),
    (lambda: train.adam(lr=True), TypeError, "lr must be a positive number, got True"),
    (lambda: train.sgd(momentum=1.0), ValueError, "momentum must lie in [0, 1), got 1.0"),
    (lambda: train.sgd(lr=-1), ValueError, "lr must be positive and finite, got -1"),
    (lambda: train.sgd(momentum="0.9"), TypeError, "momentum must be a number in [0, 1), got '0.9'"),
])
def test_optimizer_arguments_are_checked(make, exc, message):
    with pytest.raises(exc) as err:
        make()
    assert str(err.value) == message


def test_unwritable_checkpoint_dir_is_refused_before_any_work(tmp_path):
    (tmp_path / "file.txt").write_text("a file, not a directory")
    data, model, _ = _setup()

    def loss(p, b, r):
        raise AssertionError("training started")

    target = tmp_path / "file.txt" / "ck"  # under a regular file: never writable, even as root
    with pytest.raises(ValueError, match=r"checkpoint_dir '.*file\.txt/ck' is not a writable directory \(.*\); "
                       r"pass a directory you can write to, or checkpoint_dir=None"):
        train.fit(loss, model.params, data, np.random.default_rng(0), n_steps=5, checkpoint_dir=target, **KW)


def test_the_guard_reads_the_device_only_at_log_and_save_points(tmp_path, monkeypatch):
    strict = backends.get("strict")
    data, model, loss = _setup()
    params = pytree.tree_map(strict.asarray, model.params)
    reads = {"to_numpy": 0}
    to_numpy = type(strict).to_numpy

    def counted(self, a):
        reads["to_numpy"] += 1
        return to_numpy(self, a)

    monkeypatch.setattr(type(strict), "to_numpy", counted)
    _, hist = train.fit(loss, params, strict.asarray(data), strict.rng(7), n_steps=30, log_every=10, batch_size=16,
                        progress_bar=False)
    # 3 log points x one transfer (losses and gradient flags in one array), none in the 27 other steps
    assert reads["to_numpy"] == 3 and len(hist["loss"]) == 30


def test_the_ema_is_checkpointed_and_resumes_bit_for_bit(tmp_path):
    """A run stopped at step 20 and resumed to 35 returns the EMA of an uninterrupted run, and a
    finished run resumed returns its saved EMA, not the last iterate."""
    full, h_full = _fit(None, 35, ema=0.9)
    ck = tmp_path / "ck"
    _fit(ck, 20, ema=0.9)
    spec = checkpoint.inspect(ck / checkpoint.FILENAME)["spec"]["ema"]
    assert [path for path, _, _ in spec if not path.startswith("average/")] == ["updates"]
    resumed, h_res = _fit(ck, 35, ema=0.9)
    assert _same(full, resumed) and _same(h_full["ema_params"], h_res["ema_params"])
    assert not _same(h_res["ema_params"], resumed)
    data, model, _ = _setup()

    def never(p, b, r):
        raise AssertionError("loss_fn called on a finished run")

    again, h_again = train.fit(never, model.params, data, np.random.default_rng(0), n_steps=35, checkpoint_dir=ck,
                               ema=0.9, **KW)
    assert _same(h_again["ema_params"], h_full["ema_params"]) and not _same(h_again["ema_params"], again)


def test_resume_refuses_another_ema_decay(tmp_path):
    ck = tmp_path / "ck"
    _fit(ck, 10, ema=0.9)
    with pytest.raises(CheckpointMismatch, match="ema does not match: the checkpoint has 0.9, this run has 0.99"):
        _fit(ck, 20, ema=0.99)
    with pytest.raises(CheckpointMismatch, match="ema does not match: the checkpoint has 0.9, this run has None"):
        _fit(ck, 20)
