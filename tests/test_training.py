"""Configs, run folders, checkpoints, metrics and the experiment command line."""

import dataclasses
import io
import random
import re
import sys
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import pytest
import torch
from torch import nn

from cnnconv import training
from cnnconv.training import (
    DistInfo,
    MetricsLogger,
    ProgressMeter,
    Run,
    capture_rng_state,
    config_to_dict,
    experiment_main,
    load_checkpoint,
    load_config,
    make_run_dir,
    param,
    progress,
    read_metrics,
    restore_rng_state,
    save_checkpoint,
    select_device,
    shard_batch,
    step_generator,
    unwrap_model,
)


@dataclass
class Optim:
    lr: float = param(0.1, "learning rate")
    name: Literal["adam", "sgd"] = param("adam", "optimizer")


@dataclass
class Cfg:
    seed: int = param(0, "seed")
    steps: int = param(10, "steps")
    kernel_sizes: list[int] = param([3, 5], "kernel sizes")
    shape: tuple[int, int] = param((8, 8), "image shape")
    noise: Optional[float] = param(None, "noise level")
    verbose: bool = param(False, "chatty")
    optim: Optim = param(Optim(), "optimizer settings")


# -- configs ---------------------------------------------------------------------------------


def test_load_config_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 1e-3\nkernel_sizes: [7]\n")
    cfg = load_config(Cfg, path, ["optim.name=sgd", "shape=[4, 6]", "noise=0.2", "verbose=true"])
    assert cfg.steps == 20
    assert cfg.optim == Optim(lr=1e-3, name="sgd")  # '1e-3' is a string to PyYAML: coerced
    assert cfg.kernel_sizes == [7]
    assert cfg.shape == (4, 6)
    assert cfg.noise == 0.2 and isinstance(cfg.noise, float)
    assert cfg.verbose is True
    assert load_config(Cfg) == Cfg()
    assert load_config(Cfg, overrides=["steps=3"]).kernel_sizes is not Cfg().kernel_sizes
    # An int where a float is expected is promoted.
    assert load_config(Cfg, overrides=["optim.lr=1"]).optim.lr == 1.0


def test_config_round_trip_through_yaml(tmp_path):
    import yaml

    cfg = load_config(Cfg, overrides=["shape=[3, 9]", "optim.lr=0.5"])
    path = tmp_path / "resolved.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    assert load_config(Cfg, path) == cfg
    assert config_to_dict(cfg)["shape"] == [3, 9]


@pytest.mark.parametrize(
    "override, error, match",
    [
        ("stepz=3", ValueError, r"unknown config key 'stepz'; did you mean 'steps'"),
        ("optim.lrr=3", ValueError, r"unknown config key 'optim.lrr'; did you mean 'optim.lr'"),
        ("steps=3.5", TypeError, r"'steps' must be int, got 3.5"),
        ("steps=true", TypeError, r"'steps' must be int, got True"),
        ("optim.lr=fast", TypeError, r"'optim.lr' must be float, got 'fast'"),
        ("optim.name=rmsprop", ValueError, r"'optim.name' must be one of \['adam', 'sgd'\]"),
        ("kernel_sizes=3", TypeError, r"'kernel_sizes' must be a list"),
        ("kernel_sizes=[3, x]", TypeError, r"'kernel_sizes\[1\]' must be int"),
        ("shape=[1, 2, 3]", ValueError, r"'shape' must have 2 items"),
        ("verbose=2", TypeError, r"'verbose' must be bool"),
        ("optim=3", TypeError, r"'optim' must be a mapping"),
        ("noise=[1]", TypeError, r"'noise' must be"),
        ("steps", ValueError, r"key=value"),
        ("=3", ValueError, r"dotted name"),
    ],
)
def test_bad_overrides_name_the_key(override, error, match):
    with pytest.raises(error, match=match):
        load_config(Cfg, overrides=[override])


def test_bad_config_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(Cfg, tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(TypeError, match="mapping at the top level"):
        load_config(Cfg, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("seeds: 3\n")
    with pytest.raises(ValueError, match="did you mean 'seed'"):
        load_config(Cfg, typo)
    with pytest.raises(TypeError, match="dataclass type"):
        load_config(dict)
    with pytest.raises(TypeError, match="list of 'key=value'"):
        load_config(Cfg, overrides="steps=3")


def test_required_field_without_default():
    @dataclass
    class Needs:
        data: str

    with pytest.raises(ValueError, match="'data' is required"):
        load_config(Needs)
    assert load_config(Needs, overrides=["data=x"]).data == "x"


# -- run folders and metrics -------------------------------------------------------------------


def test_run_folders_are_never_reused(tmp_path):
    a = make_run_dir(tmp_path, "exp")
    b = make_run_dir(tmp_path, "exp")
    assert a != b and a.parent == b.parent == tmp_path / "exp"
    named = make_run_dir(tmp_path, "exp", "mine")
    (named / "config.yaml").write_text("seed: 0\n")
    (named / "result.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_run_dir(tmp_path, "exp", "mine")
    assert (named / "result.txt").read_text() == "precious"
    again = make_run_dir(tmp_path, "exp", "mine", overwrite=True)
    assert again == named and list(again.iterdir()) == []
    foreign = tmp_path / "exp" / "other"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="not a cnnconv run folder"):
        make_run_dir(tmp_path, "exp", "other", overwrite=True)
    with pytest.raises(ValueError, match="plain folder name"):
        make_run_dir(tmp_path, "exp", "a/b")


def test_metrics_logger_appends_and_truncates(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLogger(path)
    for s in range(1, 6):
        log.log("a", s, loss=1.0 / s, acc=torch.tensor(s / 10))
    log.log("b", 1, loss=3.0)
    log.close()
    log = MetricsLogger(path)  # reopening appends, without a second header
    log.log("a", 6, loss=1 / 6)
    log.truncate("a", 3)
    log.log("a", 4, loss=0.25)
    log.close()
    data = read_metrics(path)
    assert data["a"]["loss"] == ([1, 2, 3, 4], [1.0, 0.5, 1 / 3, 0.25])
    assert data["a"]["acc"][0] == [1, 2, 3]
    assert data["b"]["loss"] == ([1], [3.0])
    assert path.read_text().count("tag,step") == 1


# -- checkpoints and RNG -----------------------------------------------------------------------


def test_rng_state_round_trip():
    gen = torch.Generator().manual_seed(5)
    np_gen = np.random.default_rng(9)
    state = capture_rng_state({"loader": gen, "np": np_gen})
    first = (torch.rand(4), np.random.rand(3), random.random(), torch.rand(2, generator=gen),
             np_gen.random(2))
    restore_rng_state(state, {"loader": gen, "np": np_gen})
    second = (torch.rand(4), np.random.rand(3), random.random(), torch.rand(2, generator=gen),
              np_gen.random(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[3], second[3])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[4], second[4])
    assert first[2] == second[2]
    with pytest.raises(ValueError, match="no state for generator 'other'"):
        restore_rng_state(state, {"other": gen})
    with pytest.raises(TypeError, match="generators\\['bad'\\]"):
        capture_rng_state({"bad": 3})


def test_checkpoint_round_trip_is_weights_only_and_unwrapped(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    x = torch.randn(2, 1, 9, 9)
    model(x).square().mean().backward()
    opt.step()
    sched.step()
    compiled_like = nn.Module()
    compiled_like._orig_mod = model  # what torch.compile's wrapper looks like
    assert unwrap_model(compiled_like) is model
    path = save_checkpoint(tmp_path / "c.pt", compiled_like, opt, sched, step=7, config=Cfg())
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    raw = torch.load(path, weights_only=True)
    assert set(raw["model"]) == set(model.state_dict())
    assert raw["config"]["optim"] == {"lr": 0.1, "name": "adam"}

    model2 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, 2)
    ckpt = load_checkpoint(path, model2, opt2, sched2)
    assert ckpt["step"] == 7
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert sched2.state_dict() == sched.state_dict()
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"],
                               opt.state_dict()["state"][0]["exp_avg"], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cnnconv checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_step_generator_depends_on_seed_step_and_stream():
    draw = lambda *a: torch.rand(5, generator=step_generator(*a))  # noqa: E731
    assert torch.equal(draw(1, 2), draw(1, 2))
    assert not torch.equal(draw(1, 2), draw(1, 3))
    assert not torch.equal(draw(1, 2), draw(2, 2))
    assert not torch.equal(draw(1, 2, 0), draw(1, 2, 1))


def test_shard_batch_and_device_errors():
    x = torch.randn(6, 2)
    parts = [shard_batch((x, {"y": x * 2}), DistInfo(rank=r, world_size=3)) for r in range(3)]
    torch.testing.assert_close(torch.cat([p[0] for p in parts]), x)
    torch.testing.assert_close(torch.cat([p[1]["y"] for p in parts]), 2 * x)
    with pytest.raises(ValueError, match="not divisible by world size 4"):
        shard_batch(x, DistInfo(rank=0, world_size=4))
    with pytest.raises(TypeError, match="got int"):
        shard_batch(3, DistInfo(rank=0, world_size=2))
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'tpu'"):
        select_device("tpu")
    with pytest.raises(TypeError, match="got 3"):
        select_device(3)


# -- the training loop in-process ---------------------------------------------------------------


def _train(run_dir, steps, resume=False, stop_after=None):
    """Linear regression onto a fixed 3x3 kernel; ``stop_after`` simulates a crash."""
    torch.manual_seed(0)
    model = nn.Conv2d(1, 1, 3, bias=False)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    target = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    cfg = Cfg(steps=steps)
    run = Run(cfg, run_dir, "cpu", resume=resume, quiet=True)

    def step_fn(i):
        if stop_after is not None and i == stop_after:
            raise KeyboardInterrupt
        x = torch.randn(4, 1, 10, 10, generator=run.step_generator(i))
        loss = (model(x) - torch.nn.functional.conv2d(x, target)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss}

    try:
        result = run.fit(model, opt, step_fn, steps=steps, tag="fit", checkpoint_every=4,
                         eval_fn=lambda s: {"err": (model.weight - target).norm()},
                         eval_every=5)
    finally:
        run.close()
    return model, result


def test_fit_resumes_in_process(tmp_path):
    full, res_full = _train(tmp_path / "full", 13)
    assert res_full.start_step == 0 and not res_full.resumed
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", 13, stop_after=10)
    resumed, res = _train(tmp_path / "cut", 13, resume=True)
    assert res.resumed and res.start_step == 8  # last checkpoint before the crash at step 10
    assert torch.equal(resumed.weight, full.weight)
    m = read_metrics(tmp_path / "cut" / "metrics.csv")["fit"]
    assert m["loss"] == read_metrics(tmp_path / "full" / "metrics.csv")["fit"]["loss"]
    assert m["err"][0] == [0, 5, 10, 13]
    assert m["err"][1][-1] < 0.7 * m["err"][1][0]  # it trained
    # A finished phase is skipped on resume, leaving the weights alone.
    again, res = _train(tmp_path / "full", 13, resume=True)
    assert res.start_step == 13 and torch.equal(again.weight, full.weight)
    with pytest.raises(ValueError, match="steps must be a non-negative int, got -1"):
        Run(Cfg(), tmp_path / "x", quiet=True).fit(nn.Linear(1, 1), None, lambda i: None,
                                                   steps=-1)


# -- the command line -----------------------------------------------------------------------------


def test_experiment_main_writes_run_folder_and_refuses_to_overwrite(tmp_path, capsys):
    seen = []

    def run_fn(cfg, run):
        seen.append(cfg)
        assert run.device == torch.device("cpu") and run.is_main
        run.log("t", 1, value=cfg.optim.lr)
        (run.dir / "report.md").write_text("# hi\n")

    argv = ["--out", str(tmp_path), "--name", "r1", "--device", "cpu", "--quiet",
            "--set", "optim.lr=0.25", "--set", "kernel_sizes=[3]"]
    run_dir = experiment_main("demo", Cfg, run_fn, argv)
    assert run_dir == tmp_path / "demo" / "r1"
    assert "report.md" in capsys.readouterr().out
    assert load_config(Cfg, run_dir / "config.yaml") == seen[0]
    assert seen[0].optim.lr == 0.25 and seen[0].kernel_sizes == [3]
    assert read_metrics(run_dir / "metrics.csv")["t"]["value"] == ([1], [0.25])
    assert (run_dir / "checkpoints").is_dir()

    with pytest.raises(SystemExit):
        experiment_main("demo", Cfg, run_fn, argv)
    assert "--overwrite" in capsys.readouterr().err
    assert len(seen) == 1 and (run_dir / "report.md").exists()
    experiment_main("demo", Cfg, run_fn, argv + ["--overwrite"])
    assert len(seen) == 2


def test_experiment_main_fails_fast_on_bad_config(tmp_path, capsys):
    def run_fn(cfg, run):
        raise AssertionError("must not run")

    with pytest.raises(SystemExit) as info:
        experiment_main("demo", Cfg, run_fn, ["--out", str(tmp_path), "--set", "stepz=4"])
    assert info.value.code == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # no run folder for a rejected config


def test_experiment_help_lists_config_fields(capsys):
    with pytest.raises(SystemExit):
        experiment_main("demo", Cfg, lambda c, r: None, ["--help"])
    out = capsys.readouterr().out
    for text in ("--set KEY=VALUE", "--resume", "--tensorboard", "--device",
                 "optim.lr (float, default 0.1): learning rate",
                 "kernel_sizes (list[int], default [3, 5]): kernel sizes"):
        assert text in out, text


def test_tensorboard_flag(tmp_path, capsys):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit):
            experiment_main("demo", Cfg, lambda c, r: None,
                            ["--out", str(tmp_path), "--tensorboard", "--device", "cpu"])
        assert "pip install tensorboard" in capsys.readouterr().err
    else:
        run_dir = experiment_main("demo", Cfg, lambda c, r: r.log("t", 1, x=1.0),
                                  ["--out", str(tmp_path), "--tensorboard", "--device", "cpu"])
        assert any((run_dir / "tensorboard").iterdir())


def test_config_dataclass_fields_documented():
    # Every public helper has a docstring with an Example or a one-liner (public API hygiene).
    for name in training.__all__:
        assert getattr(training, name).__doc__, name
    assert dataclasses.is_dataclass(training.FitResult)


# -- the package's shape and its optional dependencies ------------------------------------------


def test_package_reexports_exactly_its_modules_public_names():
    import importlib
    import pkgutil

    exported: dict[str, object] = {}
    for info in pkgutil.iter_modules(training.__path__):
        # a name shared by a module and a function makes `training.<name>` ambiguous
        assert info.name not in training.__all__, info.name
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cnnconv.training.{info.name}")
        for name in module.__all__:
            assert name not in exported, f"{name} is public in two modules"
            exported[name] = getattr(module, name)
    assert sorted(exported) == sorted(training.__all__)
    for name, obj in exported.items():
        assert getattr(training, name) is obj, name


def test_configs_without_pyyaml_say_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\n")
    assert load_config(Cfg, path).steps == 3
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(ImportError, match=r"configs needs .*pip install"):
        load_config(Cfg, path)
    assert load_config(Cfg).steps == 10  # no file, no override: no YAML needed


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_without_tqdm_falls_back_to_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    items = [1, 2, 3]
    assert progress(items, disable=False) is items
    assert list(progress(total=3, initial=1, disable=False)) == [1, 2]
    out = _Terminal()
    meter = ProgressMeter(3, "demo", every=0.0, stream=out)  # a terminal, but no tqdm
    meter.update(3)
    meter.close()
    assert out.getvalue().startswith("demo: 3/3 steps (100%)")


def test_tensorboard_missing_fails_before_making_a_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(SystemExit) as info:
        experiment_main("demo", Cfg, lambda c, r: None,
                        ["--out", str(tmp_path), "--tensorboard", "--device", "cpu"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"error: --tensorboard needs .*pip install tensorboard\n$", err)
    assert not (tmp_path / "demo").exists()
    with pytest.raises(ImportError, match="pip install tensorboard"):
        Run(Cfg(), tmp_path / "run", tensorboard=True)


def test_run_record_of_an_experiment_defined_outside_a_file():
    """A module without ``__file__`` (a notebook's ``__main__``) records no git commit; a file in a
    clone records that clone's commit."""
    from pathlib import Path

    from cnnconv.training.main import _git_commit, run_record

    record = run_record(["--set", "steps=1"], torch.device("cpu"), None)
    assert record["git_commit"] is None and record["arguments"] == ["--set", "steps=1"]
    here = run_record([], torch.device("cpu"), __file__)["git_commit"]
    assert here == _git_commit(Path(__file__).resolve().parent)
