"""Bad options are refused at planning time, before any data is read, with one line naming the
option, the value and what is allowed.

The main suite is generated from the config schemas (the run config and its nested models,
the data options, the protocol options and the options of two methods): for every field, values
of the wrong type and values just past each bound its constraints declare; a value the schema
itself accepts is left out. Every generated value must give a ConfigError named after its option,
through the library and through the command line.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
import pytest
import torch
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

import affectlab.methods  # noqa: F401  (registers the methods)
from affectlab.errors import ConfigError, ProtocolError, UnknownNameError
from affectlab.methods import METHODS
from affectlab.presets import PRESETS, DataOptions
from affectlab.protocols import COMMON_OPTIONS, PROTOCOLS, ProtocolOptions
from affectlab.run import RunConfig, load_config, plan_run, run_experiment

SAMPLE = {int: 1, float: 1.0, str: "eeg", bool: True}
METHODS_COVERED = ("logreg", "mlp")


# --------------------------------------------------------------------------- the generator

def _constraints(extra: tuple[Any, ...]) -> list[Any]:
    """The constraint objects of ``Annotated[...]`` metadata (a FieldInfo holds its own)."""
    found: list[Any] = []
    for item in extra:
        found += item.metadata if isinstance(item, FieldInfo) else [item]
    return found


def _past_bounds(constraints: list[Any],
                 sized: Callable[[int], Any] = lambda n: [None] * n) -> Iterator[Any]:
    """Values just outside each bound and length limit (``sized(n)``: a value of length
    ``n``), and non-finite numbers where they are refused."""
    for c in constraints:
        if isinstance(c, at.Gt):
            yield c.gt
        elif isinstance(c, at.Ge):
            yield c.ge - 1
        elif isinstance(c, at.Lt):
            yield c.lt
        elif isinstance(c, at.Le):
            yield c.le + 1
        elif isinstance(c, at.MinLen) and c.min_length > 0:
            yield sized(c.min_length - 1)
        elif isinstance(c, at.MaxLen):
            yield sized(c.max_length + 1)
        elif getattr(c, "allow_inf_nan", True) is False:
            yield math.inf


def _sample(annotation: Any) -> Any:
    """Some value of the element type (for lists of the wrong length)."""
    if get_origin(annotation) is Annotated:
        return _sample(get_args(annotation)[0])
    return SAMPLE.get(annotation, "x")


def candidates(annotation: Any, constraints: list[Any] | None = None) -> list[Any]:
    """Values that may break ``annotation`` under ``constraints``: the wrong type, then values
    past each bound (the caller keeps those the schema really refuses)."""
    constraints = list(constraints or [])
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return candidates(args[0], constraints + _constraints(args[1:]))
    if origin in (Union, types.UnionType):
        return [v for member in args if member is not type(None)
                for v in candidates(member, constraints)]
    if origin is Literal:
        return ["not-a-choice"]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ["not-a-mapping"]
    if origin is list:
        item = args[0]
        return ["abc", *([v] for v in candidates(item)[:3]),
                *_past_bounds(constraints, lambda n: [_sample(item)] * n)]
    if origin is dict:
        return ["not-a-mapping", *({"x": v} for v in candidates(args[1])[:3]),
                *_past_bounds(constraints, lambda n: {f"k{i}": None for i in range(n)})]
    if origin is tuple:
        return ["abc", [1.0], *([v, v] for v in candidates(args[0])[:3])]
    wrong_type = {bool: ["maybe"], int: ["abc", 1.5], float: ["abc"], str: [12345]}
    return [*wrong_type.get(annotation, []), *_past_bounds(constraints, lambda n: "x" * n)]


def _refused(model: type[BaseModel], base: dict[str, Any], name: str, value: Any) -> bool:
    try:
        model.model_validate({**base, name: value})
    except ValidationError:
        return True
    return False


def field_cases(model: type[BaseModel], base: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(field, value)`` for every value the model refuses, from each field's schema."""
    for name, field in model.model_fields.items():
        seen = []
        for value in candidates(field.annotation, list(field.metadata)):
            if value not in seen and _refused(model, base, name, value):
                seen.append(value)
                yield name, value


# --------------------------------------------------------------------------- the cases

def base_raw(**extra: Any) -> dict[str, Any]:
    raw = {"method": "logreg", "dataset": "deap", "root": "/nonexistent/deap",
           "protocol": "loso", "method_preset": "fast", "preset": "m2s",
           "options": {"method": {}, "protocol": {}, "data": {}}}
    raw.update(extra)
    return raw


Case = tuple[str, Any, dict[str, Any]]       # (option, bad value, raw run config)


def _run_cases() -> Iterator[Case]:
    base = base_raw()
    for name, value in field_cases(RunConfig, base):
        yield name, value, {**base, name: value}
    for name in ("labels", "resources"):
        nested = RunConfig.model_fields[name].annotation
        for field, value in field_cases(nested, {}):
            yield f"{name}.{field}", value, {**base, name: {field: value}}


def _preset_taking(option: str) -> str:
    return next(name for name, p in PRESETS.items()
                if option in p.defaults and "deap" in p.datasets)


def _data_cases() -> Iterator[Case]:
    for name in DataOptions.model_fields:
        preset = _preset_taking(name)
        for field, value in field_cases(DataOptions, PRESETS[preset].defaults):
            if field == name:
                yield f"data.{name}", value, base_raw(preset=preset,
                                                      options={"data": {name: value}})


def _protocol_taking(option: str) -> tuple[str, str]:
    """A protocol that takes ``option`` and a method that supports it."""
    for protocol, cls in PROTOCOLS.items():
        if option in cls.options or option in COMMON_OPTIONS:
            for method in ("logreg", "m2s"):
                supported = METHODS.get(method).protocols
                if supported is None or protocol in supported:
                    return protocol, method
    raise AssertionError(f"no protocol takes {option}")


def _protocol_cases() -> Iterator[Case]:
    for name, value in field_cases(ProtocolOptions, {}):
        protocol, method = _protocol_taking(name)
        yield f"protocol.{name}", value, base_raw(method=method, protocol=protocol,
                                                  options={"protocol": {name: value}})


def _method_cases() -> Iterator[Case]:
    for method in METHODS_COVERED:
        cls = METHODS.get(method)
        for name, value in field_cases(cls.Config, cls.presets["fast"]):
            yield f"method.{name}", value, base_raw(method=method,
                                                    options={"method": {name: value}})


CASES: list[Case] = [*_run_cases(), *_data_cases(), *_protocol_cases(), *_method_cases()]


def _case_id(case: Case) -> str:
    return f"{case[0]}={case[1]!r}"[:60]


def _schema_options() -> set[str]:
    names = set(RunConfig.model_fields)
    names |= {f"{n}.{f}" for n in ("labels", "resources")
              for f in RunConfig.model_fields[n].annotation.model_fields}
    names |= {f"data.{f}" for f in DataOptions.model_fields}
    names |= {f"protocol.{f}" for f in ProtocolOptions.model_fields}
    names |= {f"method.{f}" for m in METHODS_COVERED for f in METHODS.get(m).Config.model_fields}
    return names


def test_every_schema_option_gets_bad_values():
    """The generator reaches every field of every schema, with bounds where declared."""
    options = {option for option, _, _ in CASES}
    assert options == _schema_options()
    values = {(option, json.dumps(value)) for option, value, _ in CASES}
    for expected in [("data.window_s", "0"), ("data.stride_s", "0"), ("data.window_s", '"abc"'),
                     ("data.bands", '"not-a-mapping"'), ("data.subjects", '"abc"'),
                     ("data.subjects", "[0]"), ("data.resample", "0"),
                     ("protocol.val_fraction", "1"), ("protocol.test_size", "1"),
                     ("protocol.n_splits", "1"), ("protocol.seed", "-1"), ("seed", "-1"),
                     ("threads", "0"), ("method.C", "0"), ("labels.threshold", "Infinity")]:
        assert expected in values


def _names_option(error: ConfigError, option: str) -> None:
    message = str(error)
    assert error.option == option or error.option.startswith(f"{option}."), message
    assert re.search(rf"option '{re.escape(option)}[.']", message), message
    assert "\n" not in message


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_bad_option_is_refused_before_data_is_read(case, tmp_path, no_data_read):
    option, value, raw = case
    with pytest.raises(ConfigError) as err:
        plan_run(load_config({"cache_dir": str(tmp_path / "cache"), **raw}))
    _names_option(err.value, option)
    assert "got " in str(err.value)


def _set_argument(option: str, value: Any) -> str:
    """``--set`` text whose YAML parse is ``value`` (a JSON literal is YAML too)."""
    text = ".inf" if value == math.inf else json.dumps(value)
    return f"{option}={text}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cli_bad_option_is_one_line(case, cli, tmp_path, no_data_read):
    option, value, raw = case
    given = {name: raw[name] if isinstance(raw[name], str) else base_raw()[name]
             for name in ("method", "dataset", "root", "protocol", "preset")}
    args = ["run", *(f"--{name}={text}" for name, text in given.items()),
            "--method-preset", "fast", "--out", str(tmp_path / "run"),
            "--set", _set_argument(option, value)]
    result = cli(args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: option '{option}"), result.err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- specific cases

@pytest.mark.parametrize("setting, option, shown", [
    ("data.window_s=abc", "data.window_s", "got 'abc'; allowed: a valid number"),
    ("data.window_s=0", "data.window_s", "got 0; allowed: greater than 0"),
    ("data.window_s=-2", "data.window_s", "got -2; allowed: greater than 0"),
    ("data.stride_s=0", "data.stride_s", "got 0; allowed: greater than 0"),
    ("data.stride_s=-1", "data.stride_s", "got -1; allowed: greater than 0"),
    ("data.bands=foo", "data.bands", "got 'foo'; allowed: a valid dictionary"),
    ("data.bands={a: [8, 4]}", "data.bands.a", "got [8, 4]; a band is [low, high] Hz"),
    ("data.subjects=abc", "data.subjects", "got 'abc'; allowed: a valid list"),
    ("data.resample=-5", "data.resample", "got -5; allowed: greater than 0"),
    ("data.bandpass=[45, 4]", "data.bandpass", "got [45, 4]; a pass band is [low, high] Hz"),
    ("protocol.val_fraction=1.5", "protocol.val_fraction", "got 1.5; allowed: less than 1"),
    ("protocol.val_fraction=1.0", "protocol.val_fraction", "got 1.0; allowed: less than 1"),
    ("protocol.seed=abc", "protocol.seed", "got 'abc'; allowed: a valid integer"),
    ("seed=-1", "seed", "got -1; allowed: greater than or equal to 0"),
    ("device=tpu", "device", "got 'tpu'; allowed: auto, cpu, cuda, cuda:N, mps"),
    ("device=gpu", "device", "got 'gpu'; allowed: auto, cpu, cuda, cuda:N, mps"),
    ("device=cuda:99", "device", "got 'cuda:99'"),
])
def test_reported_bad_options(setting, option, shown, cli, run_args, tmp_path, no_data_read):
    result = cli(run_args(tmp_path / "run", "--set", setting))
    assert result.code == 2
    assert result.err.startswith(f"error: option '{option}': {shown}"), result.err
    assert len(result.err.strip().splitlines()) == 1


def test_random_window_sizes(cli, run_args, tmp_path, no_data_read):
    args = run_args(tmp_path / "run", "--set", "protocol.test_size=1.2")
    args[args.index("loso")] = "random_window"
    result = cli(args)
    assert result.code == 2 and "option 'protocol.test_size': got 1.2" in result.err
    args[-1] = "protocol.test_size=0.9"
    result = cli(args)
    assert result.code == 2 and "test_size + val_size must be below 1" in result.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_once_before_planning(deap, tmp_path, no_data_read):
    cfg = load_config(base_raw(root=str(deap), device="cuda"))
    with pytest.raises(ConfigError, match="option 'device': got 'cuda', but CUDA is not "
                                          "available on this machine; allowed here: auto, cpu"):
        run_experiment(cfg, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_names_are_refused_before_data_is_read(tmp_path, no_data_read):
    for field, value in [("method", "nope"), ("dataset", "nope"), ("protocol", "nope"),
                         ("preset", "nope"), ("method_preset", "nope")]:
        with pytest.raises(ConfigError, match="nope"):
            plan_run(load_config(base_raw(**{field: value})))
    with pytest.raises(UnknownNameError, match="label scheme"):
        plan_run(load_config(base_raw(labels={"scheme": "nope"})))
    with pytest.raises(ConfigError, match="deap has no native"):
        plan_run(load_config(base_raw(labels={"scheme": "native"})))
    with pytest.raises(ConfigError, match="labels.threshold"):
        plan_run(load_config(base_raw(labels={"threshold": 12})))
    with pytest.raises(ConfigError, match="does not support deap"):
        plan_run(load_config(base_raw(preset="uf_ama")))
    with pytest.raises(ConfigError, match="option 'data.eeg_channels': unknown data option"):
        plan_run(load_config(base_raw(options={"data": {"eeg_channels": ["Fz"]}})))
    with pytest.raises(ConfigError, match="option 'modalities': got 'face_au'; allowed: eeg, pps"):
        plan_run(load_config(base_raw(modalities=["eeg", "face_au"])))
    with pytest.raises(ConfigError, match="option 'protocol.modalities': got 'eye'; allowed: eeg"):
        plan_run(load_config(base_raw(method="m2s", protocol="cross_modal", options={
            "protocol": {"modalities": ["eeg", "eye"], "train_trials": 20}})))


@pytest.mark.parametrize("extra, shown", [
    (["--executor", "slurm"], "option '--executor': got 'slurm'; allowed: local, process, ray"),
    (["--executor", "process", "--workers", "0"], "option '--workers': got 0; allowed: at least 1"),
])
def test_bad_executor_options(extra, shown, cli, run_args, tmp_path, no_data_read):
    result = cli(run_args(tmp_path / "run", *extra))
    assert result.code == 2 and result.err == f"error: {shown}\n"


def test_protocol_needs_named_before_data_is_read(no_data_read):
    with pytest.raises(ConfigError, match="protocol.modalities"):
        plan_run(load_config(base_raw(method="m2s", protocol="cross_modal")))
    with pytest.raises(ConfigError, match="protocol.train_trials"):
        plan_run(load_config(base_raw(protocol="subject_dependent",
                                      options={"protocol": {"split": "fixed"}})))
    with pytest.raises(ConfigError, match="option 'protocol.base': got 'label_ratio'"):
        plan_run(load_config(base_raw(protocol="label_ratio",
                                      options={"protocol": {"base": "label_ratio"}})))


def test_out_that_is_a_file_is_refused(cli, run_args, tmp_path, no_data_read):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    result = cli(run_args(a_file))
    assert result.code == 2
    assert result.err.strip() == (f"error: option '--out': got '{a_file}', which is a file; "
                                  "give a folder")
    result = cli(run_args(a_file / "below"))
    assert result.code == 2 and f"lies under the file {a_file}" in result.err
    sweep = cli(["sweep", "--method", "logreg", "--dataset", "deap", "--root", "/nonexistent",
                 "--protocol", "loso", "--grid", "method.C=0.1,1", "--out", str(a_file)])
    assert sweep.code == 2 and sweep.err.startswith(f"error: option '--out': got '{a_file}'")
    assert a_file.read_text() == "not a folder"


def test_cli_subprocess_prints_no_traceback(run_args, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "affectlab.cli",
                           *run_args(tmp_path / "run", "--set", "data.window_s=abc")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == ("error: option 'data.window_s': got 'abc'; allowed: a valid number, "
                           "unable to parse string as a number\n")


# --------------------------------------------------------------------------- data-dependent

@pytest.fixture(scope="module")
def deap_raw(deap, windowset_cache) -> dict[str, Any]:
    return base_raw(root=str(deap), cache_dir=str(windowset_cache))


def _test_trials(raw: dict[str, Any], seed: int = 0,
                 protocol_seed: int | None = None) -> list[list[int]]:
    """The test trials of each subject_dependent fold (2 splits) on DEAP."""
    protocol = {"n_splits": 2, **({"seed": protocol_seed} if protocol_seed is not None else {})}
    plan = plan_run(load_config({**raw, "protocol": "subject_dependent", "seed": seed,
                                 "options": {"method": {}, "data": {}, "protocol": protocol}}))
    trials = plan.windows.meta["trial"].to_numpy()
    return [sorted(set(trials[fold.test].tolist())) for fold in plan.folds]


def test_protocol_seed_sets_the_splits(deap_raw):
    by_protocol_seed = {s: _test_trials(deap_raw, protocol_seed=s) for s in (1, 2)}
    assert by_protocol_seed[1] != by_protocol_seed[2]
    assert _test_trials(deap_raw, seed=1) == by_protocol_seed[1]     # default: the run's seed
    assert _test_trials(deap_raw, seed=7, protocol_seed=1) == by_protocol_seed[1]


@pytest.mark.parametrize("data, protocol, name, error, message", [
    ({"stride_s": 0.001}, "loso", {}, ConfigError,
     "option 'data.stride_s': got 0.001; less than one sample at 128 Hz"),
    ({"window_s": 1000}, "loso", {}, ConfigError,
     "option 'data.window_s': got 1000.0; longer than the stimulus part of every trial"),
    ({}, "stimulus_kfold", {"n_splits": 1000}, ProtocolError,
     "40 stimuli, fewer than protocol.n_splits=1000"),
    ({}, "subject_dependent", {"n_splits": 1000}, ProtocolError,
     "40 trials, fewer than protocol.n_splits=1000"),
    ({}, "loso", {"val_fraction": 0.99}, ProtocolError,     # loso: validation by subject
     "protocol.val_fraction=0.99 leaves no training subject in fold subj1 (2 subjects to split)"),
    ({}, "loso", {"val_fraction": 0.99, "val_by": "trial"}, ProtocolError,
     "protocol.val_fraction=0.99 leaves no training trial"),
])
def test_options_that_do_not_fit_the_data(deap_raw, data, protocol, name, error, message):
    raw = {**deap_raw, "protocol": protocol,
           "options": {"method": {}, "data": data, "protocol": name}}
    with pytest.raises(error, match=re.escape(message)) as err:
        plan_run(load_config(raw))
    assert "\n" not in str(err.value)
