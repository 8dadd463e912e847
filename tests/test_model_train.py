"""Batched training, the training loop, checkpoints and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from desire.config import PRESETS, Config
from desire.errors import OutputError
from model.__main__ import main
from model.checkpoint import CheckpointError, load_checkpoint, net_from_checkpoint
from model.network import DesireNet
from model.train import Dataset, TrainOptions, evaluate, load_data, train, train_epoch

F64 = torch.float64
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")


def _config(layers: tuple[int, ...] = (784, 40, 20, 10), **network) -> Config:
    return PRESETS["default"].replace(network={"layers": layers, **network})


@pytest.fixture(scope="module")
def train_data() -> Dataset:
    if not FMNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed")
    return load_data("fashion-mnist", "train", torch.device("cpu"), FMNIST_DIR, limit=1000)


def _split(masks: list[torch.Tensor], i: int) -> list[torch.Tensor]:
    return [m[i : i + 1] for m in masks]


def test_batch_rows_match_single_sample_runs(train_data: Dataset) -> None:
    cfg = _config(dropout=(0.1, 0.3))
    net = DesireNet.from_config(cfg, dtype=F64, seed=1)
    images, labels = train_data.images[:6], train_data.labels[:6]
    masks = net.draw_masks(6)
    rec = net.forward(images, masks, record_traces=True)
    desire = net.desire(rec.counts, labels, masks)
    for i in range(6):
        one = net.forward(images[i : i + 1], _split(masks, i), record_traces=True)
        d1 = net.desire(one.counts, labels[i : i + 1], _split(masks, i))
        for layer in range(3):
            assert torch.equal(one.spikes[layer][:, 0], rec.spikes[layer][:, i])
            assert torch.equal(one.traces[layer][:, 0], rec.traces[layer][:, i])
            assert torch.equal(d1.active[layer][0], desire.active[layer][i])
            assert torch.equal(d1.sign[layer][0], desire.sign[layer][i])


def test_batch_update_is_sum_of_sample_updates(train_data: Dataset) -> None:
    cfg = _config(dropout=(0.1, 0.3))
    lr = 1e-3
    batched = DesireNet.from_config(cfg, dtype=F64, seed=2)
    w0 = [w.clone() for w in batched.weights]
    images, labels = train_data.images[:16], train_data.labels[:16]
    masks = batched.draw_masks(16)
    step = batched.train_step(images, labels, lr, masks=masks)
    total = [torch.zeros_like(w) for w in w0]
    for i in range(16):
        single = DesireNet.from_config(cfg, dtype=F64, seed=2)  # same pre-batch weights
        s = single.train_step(images[i : i + 1], labels[i : i + 1], lr, masks=_split(masks, i))
        total = [t + d for t, d in zip(total, s.deltas, strict=True)]
    assert all(t.abs().sum() > 0 for t in total)
    for w, start, t in zip(batched.weights, w0, total, strict=True):
        torch.testing.assert_close(w - start, t, rtol=1e-10, atol=1e-14)
    assert step.correct.shape == (16,) and step.local_loss.shape == (3,)


def test_train_epoch_batch_one_is_online_training(train_data: Dataset) -> None:
    cfg = _config(dropout=(0.05, 0.4))
    data = Dataset(train_data.images[:50], train_data.labels[:50])
    epoch_net = DesireNet.from_config(cfg, dtype=F64, seed=3)
    stats = train_epoch(epoch_net, data, 1, 1, torch.Generator().manual_seed(7))
    online = DesireNet.from_config(cfg, dtype=F64, seed=3)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(7))
    correct = 0
    for i in order.tolist():
        step = online.train_step(
            data.images[i : i + 1], data.labels[i : i + 1], cfg.network.lr_at(1)
        )
        correct += int(step.correct.sum())
    for a, b in zip(epoch_net.weights, online.weights, strict=True):
        assert torch.equal(a, b)
    assert stats["train_acc"] == correct / 50
    assert stats["lr"] == cfg.network.lr_at(1)


@needs_fmnist
def test_short_training_beats_chance(tmp_path: Path) -> None:
    # 2 x 1500 samples; lr 3x the reference's so that learning shows this early.
    cfg = PRESETS["default"].replace(network={"lr": 3e-5})
    opts = TrainOptions(
        out=tmp_path, epochs=2, batch_size=4, train_limit=1500, test_limit=300, quiet=True
    )
    untrained = DesireNet.from_config(cfg, seed=opts.seed)
    test_set = load_data("fashion-mnist", "test", torch.device("cpu"), limit=300)
    before = evaluate(untrained, test_set)
    log = train(cfg, opts)
    assert [e["epoch"] for e in log] == [0, 1]
    assert log[-1]["test_acc"] > 0.35 and log[-1]["test_acc"] > before.accuracy + 0.2
    assert log[1]["lr"] < log[0]["lr"]
    assert len(log[-1]["test_local_loss"]) == 2
    assert log[-1]["test_local_loss"][-1] < before.local_loss[-1]


@needs_fmnist
def test_checkpoint_round_trip_and_resume(tmp_path: Path) -> None:
    cfg = _config((784, 32, 10))
    common = {"batch_size": 8, "train_limit": 200, "test_limit": 50, "quiet": True, "seed": 5}
    straight = train(cfg, TrainOptions(out=tmp_path / "a", epochs=3, **common))
    train(cfg, TrainOptions(out=tmp_path / "b", epochs=2, **common))
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert state["epoch"] == 1 and Config.from_dict(state["config"]) == cfg
    resumed = train(cfg, TrainOptions(out=tmp_path / "b", epochs=3, resume=True, **common))
    assert [e["epoch"] for e in resumed] == [0, 1, 2]
    assert [e["test_acc"] for e in resumed] == [e["test_acc"] for e in straight]
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["weights"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["weights"]
    assert all(torch.equal(a, b) for a, b in zip(wa, wb, strict=True))
    net = net_from_checkpoint(load_checkpoint(tmp_path / "a" / "best.pt"))
    assert net.config == cfg
    assert not list((tmp_path / "a").glob("*.tmp")), "atomic write left a temp file"
    with pytest.raises(OutputError, match="already holds a model train run"):
        train(cfg, TrainOptions(out=tmp_path / "a", epochs=2, **common))  # neither flag
    again = train(cfg, TrainOptions(out=tmp_path / "a", epochs=2, force=True, **common))
    assert [e["epoch"] for e in again] == [0, 1], "a fresh run must not append to the old log"
    assert load_checkpoint(tmp_path / "a" / "last.pt")["epoch"] == 1


@needs_fmnist
def test_resume_before_the_first_epoch_keeps_the_start_weights(tmp_path: Path) -> None:
    """A run started from given weights (``--model-path``) and killed before its first
    epoch ended resumes from those weights, not from new random ones."""
    cfg = _config((784, 32, 10))
    common = {"batch_size": 8, "train_limit": 64, "test_limit": 32, "quiet": True, "epochs": 1}
    start = [w.numpy() * 3 for w in DesireNet.from_config(cfg, seed=9).weights]
    whole = train(cfg, TrainOptions(out=tmp_path / "a", initial_weights=start, **common))
    train(cfg, TrainOptions(out=tmp_path / "b", initial_weights=start, **common))
    for name in ("last.pt", "best.pt", "log.jsonl"):  # as if killed during epoch 0
        (tmp_path / "b" / name).unlink()
    resumed = train(cfg, TrainOptions(out=tmp_path / "b", resume=True, **common))
    assert [e["test_acc"] for e in resumed] == [e["test_acc"] for e in whole]
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["weights"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["weights"]
    assert all(torch.equal(a, b) for a, b in zip(wa, wb, strict=True))


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    net = DesireNet.from_config(_config((784, 32, 10)))
    state = {"weights": net.weights, "config": net.config.to_dict(), "seed": 0}
    with pytest.raises(CheckpointError, match="does not fit"):
        net_from_checkpoint(state, _config((784, 16, 10)))


@needs_fmnist
def test_cli_train_eval_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    main(
        [
            "train",
            "--train-limit",
            "200",
            "--test-limit",
            "100",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--lr",
            "5e-5",
            "--dropout",
            "0.05",
            "0.4",
            "--quiet",
        ]
    )
    entry = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert entry["n_train"] == 200 and entry["n_test"] == 100
    saved = Config.from_dict(json.loads((out / "config.json").read_text()))
    assert saved.network.lr == 5e-5 and saved.network.layers == PRESETS["default"].network.layers
    main(["eval", "--model-path", str(out / "best.pt"), "--test-limit", "100", "--quiet"])
    assert f"{entry['test_acc']:.2%}" in capsys.readouterr().out
    main(["train", "--eval", "--model-path", str(out / "best.pt"), "--test-limit", "100"])
    assert "test accuracy" in capsys.readouterr().out
    main(["plot", str(out), "--test-limit", "100"])
    for name in ("accuracy.png", "local_loss.png", "spike_activity.png"):
        assert (out / name).stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--model-path", "nowhere.pt"], "model file not found"),
        (["eval"], "needs --model-path"),
        (["train", "--dropout", "1.5", "0.2"], "dropout probabilities"),
        (["train", "--tsteps", "0"], "tsteps"),
        (["train", "--layers", "784"], "layers needs at least 2"),
        (["train", "--arith", "fixed", "--batch-size", "4"], "trains online"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--preset", "nope"], "invalid choice"),
        (["train", "--epochs", "0"], "positive integer"),
        (["train", "--device", "cuda:0" if not torch.cuda.is_available() else "bogus"], "device"),
    ],
)
def test_cli_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code != 0
    assert message in capsys.readouterr().err + str(exc.value.code)


def test_cli_wrong_checkpoint_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from model.checkpoint import save_checkpoint

    net = DesireNet.from_config(_config((784, 32, 10)))
    state = {"format": 1, "weights": net.weights, "config": net.config.to_dict(), "epoch": 0}
    save_checkpoint(tmp_path / "m.pt", state)
    with pytest.raises(SystemExit):
        main(["eval", "--model-path", str(tmp_path / "m.pt"), "--layers", "784", "16", "10"])
    assert "need [(16, 784), (10, 16)]" in capsys.readouterr().err
