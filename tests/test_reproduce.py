"""``affectlab reproduce``: the paper settings of every paper method, the table and its gap on
hand-made summaries, the command end-to-end on a tiny synthetic copy, one-line name errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from affectlab.reproduction import (
    PAPER_SETTINGS,
    SELECTIONS,
    as_frame,
    paper_setting,
    reproduction_html,
    reproduction_markdown,
    reproduction_table,
)
from test_cli_fast import probe

ENTRIES = [(m, d) for m, by_dataset in PAPER_SETTINGS.items() for d in by_dataset]


def test_every_paper_method_has_a_paper_setting():
    from affectlab.methods import METHODS, baselines

    paper_methods = {name for name, cls in METHODS.items()
                     if cls.__module__ != baselines.__name__}
    assert set(PAPER_SETTINGS) == paper_methods


@pytest.mark.parametrize(("method", "dataset"), ENTRIES)
def test_paper_setting_is_valid_and_its_counterpart_honest(method, dataset):
    from affectlab.labels import SCHEMES
    from affectlab.methods import METHODS
    from affectlab.protocols import create_protocol
    from affectlab.run import method_options_checked

    entry = paper_setting(method, dataset)
    cls = METHODS.get(method)
    assert entry.labels in SCHEMES
    for setting in (entry.paper, entry.honest):
        assert setting.protocol in cls.protocols and setting.selection in SELECTIONS
        create_protocol(setting.protocol, dataset, **setting.protocol_options)   # valid options
        method_options_checked(cls, "default", setting.method_options)
        if setting.selection == "oracle_best_epoch":
            assert "report_oracle" in cls.Config.model_fields
    honest = create_protocol(entry.honest.protocol, dataset, **entry.honest.protocol_options)
    assert not honest.leaky and entry.honest.selection != "oracle_best_epoch"
    assert entry.paper != entry.honest
    assert 0 < entry.reported.value <= 1 and "Table" in entry.reported.source
    assert entry.reported.source.startswith(("doi:", "no DOI"))


def _summary(accuracy, leaky=False, oracle=None, transductive=False):
    summary = {"method": "m2s", "protocol": "cross_modal", "leaky": leaky,
               "transductive": transductive, "n_folds": len(accuracy), "complete": True,
               "config": {"method_preset": "default"},
               "metrics": {"accuracy": {"mean": sum(accuracy) / len(accuracy), "std": 0.05,
                                        "per_fold": accuracy}},
               "ci": {"accuracy": {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7,
                                   "unit": "subjects", "n": 3}}}
    if oracle is not None:
        summary["oracle_best_epoch"] = {"accuracy": {"mean": sum(oracle) / len(oracle),
                                                     "std": 0.02, "per_fold": oracle}}
    return summary


def test_table_gap_and_labels_from_two_summaries():
    entry = paper_setting("m2s", "seed_iv")
    paper = _summary([0.6, 0.6, 0.6], leaky=True, oracle=[0.8, 0.9, 1.0])
    honest = _summary([0.5, 0.6, 0.7], transductive=True)
    result = reproduction_table(entry, paper, honest)
    first, second = result["rows"]
    assert first["mean"] == pytest.approx(0.9)             # the oracle figure, not metrics
    assert first["ci_unit"] == "folds" and first["ci_low"] <= 0.9 <= first["ci_high"]
    assert first["labels"] == ["LEAKY", "ORACLE"]
    assert second["mean"] == pytest.approx(0.6) and second["ci_low"] == 0.5
    assert second["labels"] == ["transductive"]
    assert result["gap"]["value"] == pytest.approx(0.3)
    assert result["reported"]["value"] == 0.847
    text = reproduction_markdown(result)
    assert "| paper |" in text and "LEAKY, ORACLE" in text and "+0.3000" in text
    assert "0.8470 (balanced_accuracy)" in text and "Table 1" in text
    frame = as_frame(result)
    assert list(frame["setting"]) == ["paper", "honest", "gap", "reported"]
    assert frame.set_index("setting").loc["gap", "mean"] == pytest.approx(0.3)
    page = reproduction_html(result)
    assert "ORACLE" in page and "<script" not in page


def test_oracle_setting_without_the_oracle_figure_is_an_error():
    from affectlab.errors import AffectlabError

    with pytest.raises(AffectlabError, match="no oracle_best_epoch figure"):
        reproduction_table(paper_setting("uf_ama", "seed"), _summary([0.5]), _summary([0.5]))


@pytest.mark.parametrize(("args", "message"), [
    (["reproduce", "logreg", "--dataset", "deap", "--root", "data"],
     "no paper setting for 'logreg'; methods with one: clmer, dhcm_cacl, m2s, me_mhacl, "
     "uf_ama"),
    (["reproduce", "uf_ama", "--dataset", "deap", "--root", "data"],
     "uf_ama has no paper setting on 'deap'; it has: seed, seed_iv"),
    (["reproduce", "nope", "--dataset", "deap", "--root", "data"], "unknown method 'nope'"),
    (["reproduce", "m2s", "--dataset", "seed-vi", "--root", "data"],
     "unknown dataset 'seed-vi'"),
    (["reproduce", "m2s", "--dataset", "seed_iv", "--root", "data", "--method-preset", "slow"],
     "unknown preset 'slow' for m2s"),
    (["reproduce", "m2s", "--dataset", "seed_iv", "--root", "data", "--set", "novalue"],
     "'novalue' is not key=value"),
])
def test_name_errors_are_one_line_before_heavy_imports(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err, heavy = probe(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert heavy == []
    assert not (tmp_path / "runs").exists()


def test_reproduce_end_to_end_on_synthetic_data(synthetic_root, windowset_cache, tmp_path):
    from affectlab.cli import app, data, experiment, reproduce  # noqa: F401  (registers)

    root = synthetic_root("seed_iv", n_subjects=2, seconds=60)
    out = tmp_path / "repro"
    args = ["reproduce", "m2s", "--dataset", "seed_iv", "--root", str(root),
            "--method-preset", "fast", "--out", str(out), "--set", "max_folds=1",
            "--set", f"cache_dir={windowset_cache}", "--set", "method.ft_epochs=10",
            "--set", "method.epochs=5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("paper", "honest"):
        assert (out / name / "summary.json").is_file() and (out / name / "report.html").is_file()
    paper = json.loads((out / "paper" / "summary.json").read_text())
    honest = json.loads((out / "honest" / "summary.json").read_text())
    assert "oracle_best_epoch" in paper and "oracle_best_epoch" not in honest
    assert paper["config"]["options"]["protocol"]["split"] == "fixed"
    table = json.loads((out / "reproduce.json").read_text())
    rows = {r["setting"]: r for r in table["rows"]}
    assert rows["paper"]["mean"] == pytest.approx(paper["oracle_best_epoch"]["accuracy"]["mean"])
    assert rows["honest"]["mean"] == pytest.approx(honest["metrics"]["accuracy"]["mean"])
    assert table["gap"]["value"] == pytest.approx(rows["paper"]["mean"] - rows["honest"]["mean"])
    assert "ORACLE" in rows["paper"]["labels"] and "ORACLE" not in rows["honest"]["labels"]
    assert "| gap | paper setting minus honest |" in result.output
    assert "doi:10.1609/aaai.v39i2.32134, Table 1" in result.output
    assert (out / "reproduce.md").read_text() in result.output
    assert "ORACLE" in (out / "reproduce.html").read_text()
    again = CliRunner().invoke(app, args)                     # resumes: every fold is done
    assert again.exit_code == 0 and json.loads((out / "reproduce.json").read_text()) == table


def test_python_api_returns_the_table(monkeypatch, tmp_path):
    import affectlab
    from affectlab import reproduction

    entry = paper_setting("me_mhacl", "deap")
    result = reproduction_table(entry, _summary([0.9], leaky=True), _summary([0.55]))
    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        return result, tmp_path

    monkeypatch.setattr(reproduction, "run_reproduction", fake)
    frame = affectlab.reproduce("me_mhacl", "deap", "data", method_preset="fast",
                                overrides=["seed=1"], max_folds=1)
    assert calls[0][1]["overrides"] == ["seed=1"] and calls[0][1]["max_folds"] == 1
    assert list(frame["setting"]) == ["paper", "honest", "gap", "reported"]
    assert frame.iloc[0]["labels"] == "LEAKY" and frame.iloc[1]["labels"] == ""
    assert frame.iloc[2]["mean"] == pytest.approx(0.35)
    assert frame.iloc[3]["source"] == "doi:10.48550/arXiv.2308.01919, Table IV"


SYNTHETIC = [(m, d) for m, d in ENTRIES if d != "seed"]   # synthetic SEED has no eye features
# subjects enough for the protocols (the last synthetic subject has no face recordings):
# subject_kfold with validation subjects needs 2 training subjects (3 with face), grid9's random
# split every class in every training part
SUBJECTS = {"dhcm_cacl": 4, "clmer": 6}


@pytest.mark.slow
@pytest.mark.parametrize(("method", "dataset"), SYNTHETIC)
def test_reproduce_every_paper_method_on_synthetic_data(method, dataset, synthetic_root,
                                                       windowset_cache, tmp_path):
    """Every entry (but SEED's) end-to-end with the fast preset, first fold of each setting."""
    import affectlab

    root = synthetic_root(dataset, n_subjects=SUBJECTS.get(method, 3))
    frame = affectlab.reproduce(method, dataset, root,
                                method_preset="fast", out=tmp_path, max_folds=1,
                                cache_dir=str(windowset_cache)).set_index("setting")
    entry = paper_setting(method, dataset)
    assert ("ORACLE" in frame.loc["paper", "labels"]) == (entry.paper.selection
                                                          == "oracle_best_epoch")
    assert ("LEAKY" in frame.loc["paper", "labels"]) == (entry.paper.protocol
                                                         == "random_window")
    assert "LEAKY" not in frame.loc["honest", "labels"]
    assert "ORACLE" not in frame.loc["honest", "labels"]
    assert frame.loc["gap", "mean"] == pytest.approx(frame.loc["paper", "mean"]
                                                     - frame.loc["honest", "mean"])
