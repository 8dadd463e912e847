"""The batch learning-rate rule, the recorded (CUDA graph) training step and training sweeps.

The graph itself needs CUDA (its test is skipped without it); what is checked on the CPU
is everything around it: the input buffers, the masks drawn outside the step, the
results copied out and the re-recording for a new learning rate, by running the same
plumbing with ``record=False``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desire.config import PRESETS, Config
from desire.errors import UserError
from model.__main__ import main
from model.cuda_graph import GraphedStep
from model.network import DesireNet
from model.train import Dataset, batch_lr, batch_sizes, train_epoch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import batching_rule  # noqa: E402  (bench/ is not a package)
import sweep  # noqa: E402

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def _config(layers: tuple[int, ...] = (784, 24, 10)) -> Config:
    return PRESETS["default"].replace(network={"layers": layers, "dropout": (0.1, 0.3)})


def _batch(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 784), generator=gen, dtype=torch.uint8)
    return images, torch.randint(0, 10, (n,), generator=gen)


def test_batch_lr_scales_the_summed_update() -> None:
    assert batch_lr(1e-5, 16, 0.0) == 1e-5
    assert batch_lr(1e-5, 16, 0.5) == pytest.approx(2.5e-6)
    assert batch_lr(1e-5, 16, 1.0) == pytest.approx(1e-5 / 16)
    assert batch_lr(1e-5, 16, -0.25) == pytest.approx(2e-5)


def test_train_epoch_applies_the_rule_to_the_batch() -> None:
    """One batch of 8: power 1 moves every weight by 1/8 of power 0's step."""
    images, labels = _batch(8, 0)
    data = Dataset(images, labels)
    moved = []
    for power in (0.0, 1.0):
        net = DesireNet.from_config(_config(), dtype=torch.float64, seed=3)
        start = [w.clone() for w in net.weights]
        log = train_epoch(net, data, 0, 8, torch.Generator().manual_seed(1), True, power)
        assert log["lr"] == batch_lr(net.network.lr, 8, power)
        moved.append([w - s for w, s in zip(net.weights, start, strict=True)])
    for full, mean in zip(*moved, strict=True):
        assert full.abs().sum() > 0
        torch.testing.assert_close(mean * 8, full, rtol=1e-8, atol=1e-18)


@given(
    n=st.integers(1, 3000),
    start=st.integers(0, 5000),
    batch=st.integers(1, 300),
    warmup=st.integers(0, 6000),
)
def test_batch_sizes_cover_the_epoch_and_ramp_in_powers_of_two(
    n: int, start: int, batch: int, warmup: int
) -> None:
    sizes = batch_sizes(n, start, batch, warmup)
    assert sum(sizes) == n and all(s >= 1 for s in sizes)
    seen = start
    for i, size in enumerate(sizes):
        last = i == len(sizes) - 1
        if seen >= warmup:
            assert size == batch or last  # no warm-up left: full batches, a shorter last
        else:
            want = max(1, batch * seen // warmup)
            assert size == min(batch, 2 ** (want.bit_length() - 1)) or last
            assert size & (size - 1) == 0 or last
        seen += size
    assert sizes == sorted(sizes[:-1]) + sizes[-1:]  # never shrinks before the last batch


def test_warmup_batches_are_small_steps_of_the_same_samples() -> None:
    """An epoch warmed up over its 7 samples is batches 1, 1, 1, 1, 2, 1 of its shuffled order,
    each at the online rate: the same weights as those steps taken one by one."""
    images, labels = _batch(7, 4)
    data = Dataset(images, labels)
    assert batch_sizes(7, 0, 4, 7) == [1, 1, 1, 1, 2, 1]
    warm = DesireNet.from_config(_config(), dtype=torch.float64, seed=3)
    steps = DesireNet.from_config(_config(), dtype=torch.float64, seed=3)
    log = train_epoch(warm, data, 0, 4, torch.Generator().manual_seed(1), True, 0.0, False, 7)
    assert log["batch_warmup"] == 7
    order = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    first = 0
    for size in (1, 1, 1, 1, 2, 1):
        idx = order[first : first + size]
        steps.train_step(images[idx], labels[idx], steps.network.lr)
        first += size
    for a, b in zip(warm.weights, steps.weights, strict=True):
        assert torch.equal(a, b)


def test_batching_rule_compares_warmup_rows_per_seed() -> None:
    def run(name: str, *acc: float) -> dict:
        return {"name": name, "epochs": [{"test_acc": a} for a in acc]}

    runs = [
        run("b1-net-s1", 0.70, 0.80),
        run("b1-net-s2", 0.72, 0.78),
        run("rule-net-b128-p0-s1", 0.60, 0.77),
        run("rule-net-b128-p0-s2", 0.62, 0.77),
        run("rule-net-b128-p0-w600-s1", 0.68, 0.80),
        run("rule-net-b128-p0-w600-s2", 0.70, 0.776),
    ]
    rows = {r["batch_warmup"]: r for r in batching_rule.compare(runs, 0.5)}
    assert rows[0]["diff_points"] == -2.0 and not rows[0]["within_tolerance"]
    assert rows[0]["diff_per_seed"] == {"1": -3.0, "2": -1.0}
    assert rows[600]["diff_points"] == -0.2 and rows[600]["within_tolerance"]
    assert rows[600]["diff_per_seed"] == {"1": 0.0, "2": -0.4}


@pytest.mark.parametrize("batch", [1, 4])
def test_graphed_step_plumbing_matches_train_step(batch: int) -> None:
    """Buffers in, masks from the network's generator, results out: the eager step's bits."""
    eager = DesireNet.from_config(_config(), seed=5)
    graphed = DesireNet.from_config(_config(), seed=5)
    step = GraphedStep(graphed, batch, 1e-4, record=False)
    images, labels = _batch(3 * batch, 1)
    for i in range(0, 3 * batch, batch):
        lr = 1e-4 if i == 0 else 2e-4  # a new rate makes a new step
        step = step.for_lr(lr)
        ref = eager.train_step(images[i : i + batch], labels[i : i + batch], lr)
        ok, loss = step(images[i : i + batch], labels[i : i + batch])
        assert torch.equal(ok, ref.correct)
        assert torch.equal(loss, ref.local_loss)
    for a, b in zip(eager.weights, graphed.weights, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_recorded_graph_is_bit_identical_to_eager_steps() -> None:
    dev = torch.device("cuda")
    eager = DesireNet.from_config(_config(), device=dev, seed=5)
    graphed = DesireNet.from_config(_config(), device=dev, seed=5)
    step = GraphedStep(graphed, 8, 1e-4)
    images, labels = (t.to(dev) for t in _batch(8, 2))
    for _ in range(10):
        eager.train_step(images, labels, 1e-4)
        step(images, labels)
    for a, b in zip(eager.weights, graphed.weights, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr-batch-power", "1.5"], "--lr-batch-power must be in [-1, 1]"),
        (["--cuda-graph", "--device", "cpu"], "CUDA graphs need a CUDA device"),
        (["--batch-warmup", "-1"], "--batch-warmup must be 0 or more samples"),
    ],
)
def test_cli_refuses_bad_batching_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path / "run"), "--train-limit", "10", *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- sweeps


def _write(path: Path, spec: object) -> Path:
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_sweep_spec_fills_defaults(tmp_path: Path) -> None:
    spec = {"defaults": {"batch_size": 8, "epochs": 2}, "runs": [{"name": "a"}, {"name": "b"}]}
    runs = sweep.load_spec(_write(tmp_path / "s.json", spec))
    assert [r["batch_size"] for r in runs] == [8, 8]
    assert [r["name"] for r in runs] == ["a", "b"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "must be an object with a list 'runs'"),
        ({"runs": [{"name": "a"}, {"name": "a"}]}, "run names repeat"),
        ({"runs": [{"name": "a", "lr": 1}]}, "unknown keys"),
        ({"runs": [{"name": "../x"}]}, "name must be"),
        ({"runs": [{"name": "a", "batch_size": "8"}]}, "batch_size must be int"),
        ({"runs": [{"name": "a", "config": {"network": {"tsteps": 0}}}]}, "tsteps"),
    ],
)
def test_sweep_spec_refuses_mistakes(tmp_path: Path, spec: object, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace(".", r"\.")):
        sweep.load_spec(_write(tmp_path / "s.json", spec))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_sweep_spec_loader_never_crashes(tmp_path: Path, data: bytes) -> None:
    """Any bytes: a list of runs or a UserError, never another exception."""
    path = tmp_path / "s.json"
    path.write_bytes(data)
    try:
        runs = sweep.load_spec(path)
    except UserError:
        return
    assert isinstance(runs, list)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.lists(
        st.dictionaries(
            st.sampled_from(sorted(sweep.RUN_KEYS)),
            st.one_of(st.integers(-3, 3), st.text(max_size=4), st.booleans(), st.none()),
            max_size=4,
        ),
        max_size=3,
    )
)
def test_sweep_spec_loader_checks_every_run(tmp_path: Path, runs: list[dict]) -> None:
    path = _write(tmp_path / "s.json", {"runs": runs})
    try:
        loaded = sweep.load_spec(path)
    except UserError:
        return
    for run in loaded:
        for key, kind in sweep.RUN_KEYS.items():
            if key in run:
                assert isinstance(run[key], (int, float) if kind is float else kind)


def test_sweep_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    """A sweep into a folder holding a user's files (its ``sweep.json`` would be replaced):
    one line, exit status 2, nothing written there."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "sweep.json").write_text("the user's")
    path = _write(tmp_path / "s.json", {"runs": [{"name": "b1"}]})
    cmd = [sys.executable, str(ROOT / "bench/sweep.py"), "run", str(path), "--out", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "did not write" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    assert (out / "sweep.json").read_text() == "the user's"


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_sweep_summary_selects_before_reading(tmp_path: Path) -> None:
    """``summary --match`` leaves a run out before its log is read, so a run with an older
    trainer's log (no ``n_train``) among the selected ones is one line, not a traceback."""
    epoch = {"epoch": 0, "n_train": 100, "train_samples_per_s": 50.0, "test_acc": 0.5}
    for name, entry in (("new-a", epoch), ("old-b", {"epoch": 0, "test_acc": 0.4})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "log.jsonl").write_text(json.dumps(entry) + "\n")
        (tmp_path / name / "config.json").write_text(Config().to_json())
    got = sweep.summary(tmp_path, match="^new")
    assert [r["name"] for r in got["runs"]] == ["new-a"]
    assert got["runs"][0]["epochs"][0]["train_s"] == 2.0
    with pytest.raises(UserError, match="run old-b: its log lacks n_train, train_samples_per_s"):
        sweep.summary(tmp_path)
    bad = subprocess.run(
        [sys.executable, str(ROOT / "bench/sweep.py"), "summary", str(tmp_path), "--match", "["],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "not a regular expression" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_torchrun_sweep_spreads_runs_and_resumes(tmp_path: Path) -> None:
    """Two processes under torchrun train three runs; a second start finds them done."""
    common = {"config": {"network": {"layers": [784, 8, 10]}}, "train_limit": 64}
    spec = {
        "defaults": {**common, "test_limit": 32, "epochs": 1, "device": "cpu"},
        "runs": [
            {"name": "b1", "batch_size": 1},
            {"name": "b8", "batch_size": 8},
            {"name": "b8-p1", "batch_size": 8, "lr_batch_power": 1.0},
        ],
    }
    path = _write(tmp_path / "s.json", spec)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", str(ROOT / "bench/sweep.py")]
    cmd += ["run", str(path), "--out", str(tmp_path / "out"), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert {r["name"] for r in result["runs"]} == {"b1", "b8", "b8-p1"}
    assert {r["name"]: r["lr_batch_power"] for r in result["runs"]}["b8-p1"] == 1.0
    assert set(re.findall(r"\[(\d)\] \S+ on cpu", done.stdout)) == {"0", "1"}
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0
    assert " on cpu" not in again.stdout  # every run complete: nothing trained again
