"""The user trial's cases (../shared/docs/user-trial.md, issue 11), one test each.

Every command pointed at the wrong place refuses with one line and exit status 2 and
leaves the user's files as they were; crashes at the worst moment leave a run that
``--resume`` continues correctly.
"""

from __future__ import annotations

import collections
import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from desire.datasets import find_data_dir
from golden.__main__ import main as golden_main
from golden.export import load_export
from model.__main__ import main as model_main
from model.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed"
)

SMALL = ["--layers", "784", "16", "10", "--train-limit", "60", "--test-limit", "40", "--quiet"]
GOLDEN_SMALL = ["--layers", "784", "16", "10", "--train-limit", "40", "--test-limit", "20"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _refused(
    main: Callable, argv: list[str], capsys: pytest.CaptureFixture[str], one_line: bool = True
) -> str:
    """Run a CLI that must refuse: exit status 2, one line on stderr, no traceback.

    ``one_line=False`` only for "dataset not found", whose message goes on to list the
    folders searched and how to install the data.
    """
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err, err
    assert "\n" not in err or not one_line, err
    return err


def _copy_run(
    trained: Path,
    run: Path,
    names: tuple[str, ...] = ("last.pt", "best.pt", "log.jsonl", "config.json"),
) -> Path:
    """A copy of (some files of) the trained run, to damage without touching the original."""
    run.mkdir()
    for name in names:
        (run / name).write_bytes((trained / name).read_bytes())
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run of a tiny network: config.json, log.jsonl, last.pt, best.pt."""
    find_data_dir("fashion-mnist")
    run = tmp_path_factory.mktemp("trained") / "run"
    model_main(["train", "--epochs", "2", "--batch-size", "8", "--out", str(run), *SMALL])
    return run


def test_export_into_a_run_folder_is_refused(trained: Path, tmp_path: Path, capsys) -> None:
    """Trial #16: `--out runs/x` (forgot /export) deleted the run and a notes file."""
    run = _copy_run(trained, tmp_path / "x")
    (run / "notes.txt").write_text("my notes")
    before = _tree(run)
    err = _refused(
        model_main, ["export", "--model-path", str(run / "best.pt"), "--out", str(run)], capsys
    )
    assert "holds no export" in err
    assert _tree(run) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_into_the_working_directory_is_refused(
    trained: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Trial #16: `--out .` emptied the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes")
    err = _refused(
        model_main, ["export", "--model-path", str(trained / "best.pt"), "--out", "."], capsys
    )
    assert "working directory" in err or "holds no export" in err
    assert _tree(tmp_path) == {"notes.txt": b"my notes"}


def test_export_replaced_only_with_force(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "export"
    argv = [
        "export",
        "--model-path",
        str(trained / "best.pt"),
        "--out",
        str(out),
        "--test-limit",
        "20",
    ]
    model_main(argv)
    first = _tree(out)
    assert "already holds an export; --force replaces it" in _refused(model_main, argv, capsys)
    assert _tree(out) == first
    model_main([*argv, "--force"])
    assert load_export(out)[2]["test_samples"] == 20
    (out / "notes.txt").write_text("mine")
    assert "notes.txt" in _refused(model_main, [*argv, "--force"], capsys)
    assert (out / "notes.txt").read_text() == "mine"


def test_fresh_run_into_a_used_folder(trained: Path, tmp_path: Path, capsys) -> None:
    """Trial #11: the log was wiped, old checkpoints kept, and --resume continued the old net."""
    run = _copy_run(trained, tmp_path / "run")
    (run / "notes.txt").write_text("my notes")
    before = _tree(run)
    err = _refused(model_main, ["train", "--out", str(run), *SMALL], capsys)
    assert "already holds a model train run" in err and "--force" in err
    assert _tree(run) == before
    model_main(["train", "--out", str(run), "--force", "--batch-size", "8", *SMALL])
    assert [e["epoch"] for e in map(json.loads, (run / "log.jsonl").read_text().splitlines())] == [
        0
    ]
    assert load_checkpoint(run / "last.pt")["epoch"] == 0
    assert (run / "notes.txt").read_text() == "my notes"


def test_resume_needs_a_run(tmp_path: Path, capsys) -> None:
    """Trial #5: `--resume` on an empty folder silently started fresh."""
    (tmp_path / "empty").mkdir()
    err = _refused(
        model_main, ["train", "--resume", "--out", str(tmp_path / "empty"), *SMALL], capsys
    )
    assert "holds no model train run" in err
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layers", "100", "16", "10"], "first layer must have 784"),
        (["--layers", "784", "16", "5"], "at least 10 neurons"),
        (["--data-dir", "/nonexistent"], "fashion-mnist files not found"),
    ],
)
def test_failed_start_leaves_nothing(
    tmp_path: Path, capsys, flags: list[str], message: str
) -> None:
    """Trial #3/#4: each failure left config.json and an empty log behind."""
    out = tmp_path / "new" / "run"
    argv = ["train", "--out", str(out), *SMALL, *flags]
    err = _refused(model_main, argv, capsys, one_line="--data-dir" not in flags)
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_out_that_cannot_be_a_folder(tmp_path: Path, capsys) -> None:
    """Trial #17: `--out` an existing file or an impossible path gave tracebacks."""
    a_file = tmp_path / "f"
    a_file.write_text("mine")
    for out in (a_file, a_file / "sub"):
        assert "is a file" in _refused(model_main, ["train", "--out", str(out), *SMALL], capsys)
        assert "is a file" in _refused(
            golden_main, ["train", "--out", str(out), *GOLDEN_SMALL], capsys
        )
    assert a_file.read_text() == "mine"


def test_eval_fixed_with_a_checkpoint_of_another_shape(trained: Path, capsys) -> None:
    """Trial #7: `eval --arith fixed` with another shape gave a ValueError traceback."""
    argv = ["eval", "--model-path", str(trained / "best.pt"), "--arith", "fixed"]
    assert "need" in _refused(model_main, [*argv, "--layers", "784", "32", "10"], capsys)


def test_export_of_nan_weights(trained: Path, tmp_path: Path, capsys) -> None:
    """Trial #7: NaN weights on export gave a traceback."""
    state = load_checkpoint(trained / "best.pt")
    state["weights"][0][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", state)
    argv = ["export", "--model-path", str(tmp_path / "nan.pt"), "--out", str(tmp_path / "e")]
    assert "NaN or infinite" in _refused(model_main, argv, capsys)
    assert not (tmp_path / "e").exists()


def test_unreadable_checkpoints(tmp_path: Path, trained: Path, capsys) -> None:
    """Trial #6: garbage repeated torch's weights_only advice; a truncated file said Errno 22."""
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02junk" * 10)
    whole = (trained / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    for name in ("junk.pt", "cut.pt"):
        err = _refused(model_main, ["eval", "--model-path", str(tmp_path / name)], capsys)
        assert "weights_only" not in err and "Errno" not in err and name in err


def test_truncated_log_line_does_not_block_resume_or_plot(trained: Path, tmp_path: Path) -> None:
    """Trial #13: a cut last line made --resume and plot fail with JSONDecodeError."""
    run = _copy_run(trained, tmp_path / "run", ("last.pt", "best.pt", "config.json"))
    (run / "log.jsonl").write_text((trained / "log.jsonl").read_text()[:-20])
    model_main(["plot", str(run), "--test-limit", "20"])
    assert (run / "accuracy.png").stat().st_size > 0
    model_main(
        ["train", "--resume", "--epochs", "3", "--batch-size", "8", "--out", str(run), *SMALL]
    )
    lines = (run / "log.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [0, 1, 2]


def test_stale_best_is_repaired_on_resume(trained: Path, tmp_path: Path) -> None:
    """Trial #10: killed during the best.pt write, best.pt stayed at an older epoch for good."""
    run = _copy_run(trained, tmp_path / "run", ("config.json", "log.jsonl"))
    last = load_checkpoint(trained / "last.pt")
    last["best_epoch"], last["best_test_acc"] = last["epoch"], 1.0  # last.pt is the best epoch
    save_checkpoint(run / "last.pt", last)
    older = dict(last, epoch=0)
    save_checkpoint(run / "best.pt", older)  # the crash: best.pt still holds epoch 0
    (run / ".best.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    model_main(["train", "--resume", "--epochs", "2", "--out", str(run), *SMALL])
    assert load_checkpoint(run / "best.pt")["epoch"] == 1
    assert not (run / ".best.pt.k1ll3d.tmp").exists(), "the killed write's temp stays"


def _reference_file(path: Path, layers: tuple[int, ...]) -> Path:
    """A checkpoint as the reference code writes it: its SnnModel's state_dict."""
    state = collections.OrderedDict()
    for i, (n_in, n_out) in enumerate(itertools.pairwise(layers)):
        state[f"layers.{i + 2}.weights"] = torch.randn(n_out, n_in) * (2 / n_in) ** 0.5
    torch.save(state, path)
    return path


def test_reference_checkpoints(tmp_path: Path, capsys) -> None:
    ref = _reference_file(tmp_path / "ref.pt", (784, 24, 10))
    capsys.readouterr()
    model_main(["eval", "--model-path", str(ref), "--test-limit", "20", "--quiet"])
    assert "test accuracy" in capsys.readouterr().out
    out = tmp_path / "export"
    model_main(["export", "--model-path", str(ref), "--out", str(out), "--test-limit", "20"])
    assert load_export(out)[0].network.layers == (784, 24, 10)
    run = tmp_path / "run"
    model_main(["train", "--model-path", str(ref), "--out", str(run), "--epochs", "1", *SMALL[4:]])
    assert tuple(load_checkpoint(run / "last.pt")["config"]["network"]["layers"]) == (784, 24, 10)
    err = _refused(
        model_main, ["eval", "--model-path", str(ref), "--layers", "784", "32", "10"], capsys
    )
    assert "ref.pt" in err


def test_golden_train_refuses_a_used_folder_and_trims_on_resume(tmp_path: Path, capsys) -> None:
    """Trials #11/#14: a fresh golden run appended to an old log; a resumed one doubled an epoch."""
    out = tmp_path / "run"
    args = [*GOLDEN_SMALL, "--out", str(out), "--quiet"]
    assert golden_main(["train", "--epochs", "1", *args]) == 0
    assert "already holds" in _refused(golden_main, ["train", "--epochs", "1", *args], capsys)
    # the crash between the last/ swap and the log append: log.jsonl lacks epoch 1, and a
    # line of a later, uncommitted epoch was cut short
    assert golden_main(["train", "--epochs", "2", "--resume", *args]) == 0
    log = out / "log.jsonl"
    log.write_text(log.read_text().splitlines()[0] + '\n{"epoch": 2, "tr')
    assert golden_main(["train", "--epochs", "3", "--resume", *args]) == 0
    assert [json.loads(s)["epoch"] for s in log.read_text().splitlines()] == [0, 1, 2]
    state = load_export(out / "last")[2]["golden_state"]
    assert state["epoch"] == 2 and [e["epoch"] for e in state["log"]] == [0, 1, 2]
    assert golden_main(["train", "--epochs", "1", "--force", *args]) == 0
    assert len(log.read_text().splitlines()) == 1


def test_cli_errors_in_a_real_process(tmp_path: Path) -> None:
    """No traceback reaches a terminal: the whole interpreter, one line, exit status 2."""
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[network]\nlayers = [784, 16, 10]\nlr = inf\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "model",
            "train",
            "--config",
            str(bad),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "lr" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_golden_resume_from_a_plain_export(trained: Path, tmp_path: Path, capsys) -> None:
    """An export copied in as last/ has no training state: one line, not a KeyError."""
    run = tmp_path / "run"
    run.mkdir()
    model_main(["export", "--model-path", str(trained / "best.pt"), "--out", str(run / "last")])
    err = _refused(golden_main, ["train", "--resume", "--out", str(run), *GOLDEN_SMALL], capsys)
    assert "no resumable training state" in err


def test_golden_warns_when_the_learning_rate_register_is_zero(tmp_path: Path, capsys) -> None:
    argv = ["train", "--epochs", "1", "--lr", "1e-12", "--out", str(tmp_path / "r"), "--quiet"]
    assert golden_main([*argv, *GOLDEN_SMALL]) == 0
    assert "rounds to a learning-rate register of 0" in capsys.readouterr().err
