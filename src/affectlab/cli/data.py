"""``affectlab synth``, ``info``, ``prepare`` and ``list``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from affectlab.cli import app


def _data_options(overrides: list[str]) -> dict:
    from affectlab.config import apply_overrides

    return apply_overrides({}, overrides).get("options", {}).get("data", {})


@app.command()
def synth(out: Path = typer.Option(..., help="folder to write the datasets into"),
          datasets: str = typer.Option("all", help="comma-separated names, or 'all'"),
          subjects: int = typer.Option(3, min=1, help="subjects per dataset"),
          seed: int = typer.Option(0, help="random seed"),
          seconds: float = typer.Option(None, help="stimulus seconds per trial (default: "
                                                   "each dataset's shortened length)"),
          nuisances: bool = typer.Option(True, help="write the release nuisances (NaN eye "
                                         "windows and peripheral columns, subjects without "
                                         "faces, SEED without eye data, empty cells, artefact "
                                         "trials, ...); --no-nuisances writes clean data"),
          difficulty: str = typer.Option("default", help="effect strength and subject "
                                         "variability: easy | default | hard"),
          effect_scale: float = typer.Option(None, min=0, help="override: strength of the "
                                             "emotional effects (default 0.35)"),
          subject_shift: float = typer.Option(None, min=0, help="override: scale of the "
                                              "per-subject offsets (default 1)"),
          subject_specific: float = typer.Option(None, min=0, max=1, help="override: 0..1, "
                                                 "how subject-specific the effects are")
          ) -> None:
    """Write synthetic datasets in the released file formats, with known effects and the
    nuisances of the genuine releases (recorded in manifest.json)."""
    from affectlab import catalog

    names = catalog.names("datasets") if datasets == "all" else \
        [catalog.check("datasets", d.strip()) for d in datasets.split(",")]
    catalog.check("difficulties", difficulty)
    from affectlab.datasets import synth as write

    def report(name: str, entry: dict) -> None:
        size = sum(p.stat().st_size for p in (out / name).rglob("*") if p.is_file())
        typer.echo(f"  {name:8s} {len(entry['trials']):5d} trials  {size / 1e6:7.1f} MB  "
                   f"{entry['seconds_to_write']:5.1f} s  -> {out / name}")

    typer.echo(f"writing synthetic datasets to {out}")
    write(out, names, n_subjects=subjects, seed=seed, seconds=seconds, progress=report,
          nuisances=nuisances, difficulty=_difficulty(difficulty, effect_scale, subject_shift,
                                                      subject_specific))
    typer.echo(f"latent labels: {out / 'manifest.json'}")


def _difficulty(name: str, effect_scale: float | None, subject_shift: float | None,
                subject_specific: float | None):
    from dataclasses import replace

    from affectlab.datasets.synthetic import DIFFICULTIES
    from affectlab.errors import UnknownNameError

    if name not in DIFFICULTIES:
        raise UnknownNameError("difficulty", name, DIFFICULTIES)
    given = {"effect_scale": effect_scale, "subject_shift": subject_shift,
             "subject_specific": subject_specific}
    return replace(DIFFICULTIES[name], **{k: v for k, v in given.items() if v is not None})


@app.command()
def info(dataset: str = typer.Argument(..., help="dataset name"),
         root: Path = typer.Option(..., help="dataset folder as released"),
         preset: str = typer.Option("default", help="data preset"),
         set_: list[str] = typer.Option([], "--set", help="data option, e.g. data.window_s=2"),
         as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
         cache_dir: Path = typer.Option(None, help="WindowSet cache folder")) -> None:
    """Counts, shapes, sampling rates and label distributions of a dataset."""
    from affectlab.cli.checks import check_dataset_preset

    check_dataset_preset(dataset, preset)
    options = _data_options(set_)
    from affectlab.inspect import dataset_info

    result = dataset_info(dataset, root, preset, options, cache_dir)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result['dataset']} ({preset})", show_header=False)
    for key in ("n_subjects", "sessions", "n_trials", "n_windows"):
        table.add_row(key, str(result[key]))
    for name, shape in result["modalities"].items():
        table.add_row(f"modality {name}", f"{tuple(shape)}  {result['forms'].get(name, '')}")
    for name, counts in result["missing"].items():
        table.add_row(f"missing {name}", _missing_text(counts, result["n_windows"]))
    for reason, count in result["trials_without_windows"].items():
        table.add_row("trials without windows", f"{count} ({reason})")
    for rating, count in result.get("invalid_ratings", {}).items():
        table.add_row(f"{rating} off the scale", f"{count} trial(s), marked missing")
    for name, flat in result.get("flat_channels", {}).items():
        table.add_row(f"flat {name} channels", flat_text(flat))
    for path, entry in result.get("unlisted", {}).items():
        table.add_row(f"not in {Path(path).name}", unlisted_text(entry))
    if result["absent_modalities"]:
        table.add_row("absent (left out)", ", ".join(result["absent_modalities"]))
    by_rate: dict[float, list[str]] = {}
    for name, rate in result["sampling_rates"].items():
        by_rate.setdefault(rate, []).append(name)
    table.add_row("recorded", "; ".join(f"{', '.join(names)} at {rate:g} Hz"
                                        for rate, names in by_rate.items()))
    for scheme, counts in result["labels"].items():
        default = " (default)" if scheme == result["default_labels"] else ""
        table.add_row(f"labels {scheme}{default}",
                      ", ".join(f"{k}: {v}" for k, v in counts.items()))
    console.print(table)


def flat_text(flat: dict) -> str:
    """``Fp1 (2 trials), O2 (1 trial): 3 trial(s), 24 windows, marked missing``."""
    channels = ", ".join(f"{name} ({n} trial{'s' if n != 1 else ''})"
                         for name, n in flat["channels"].items())
    return f"{channels}: {flat['trials']} trial(s), {flat['windows']} windows, marked missing"


def unlisted_text(entry: dict) -> str:
    """``subject(s) 2, 5 (80 trials): face marked missing``."""
    return (f"subject(s) {', '.join(map(str, entry['subjects']))} ({entry['trials']} trials): "
            f"{entry['effect']}")


def _missing_text(counts: dict, n_windows: int) -> str:
    if not counts["windows"]:
        return "none"
    parts = []
    if counts.get("absent_windows"):
        parts.append(f"{counts['absent_windows']} absent ({counts['absent_trials']} trials)")
    if counts.get("invalid_windows"):
        parts.append(f"{counts['invalid_windows']} non-finite / untracked")
    return f"{counts['windows']} of {n_windows} windows: " + ", ".join(parts)


@app.command()
def prepare(dataset: str = typer.Argument(...), root: Path = typer.Option(...),
            preset: str = typer.Option("default"),
            set_: list[str] = typer.Option([], "--set", help="data option, e.g. data.window_s=2"),
            cache_dir: Path = typer.Option(None, help="WindowSet cache folder (default: "
                                           "AFFECTLAB_CACHE or ~/.cache/affectlab)"),
            verify: bool = typer.Option(False, "--verify", help="recheck the cache entry "
                                        "against the dataset's files by full content hash "
                                        "(builds nothing); exit 1 if stale or absent")) -> None:
    """Build (or find) the cached WindowSet and print where it is."""
    from affectlab.cli.checks import check_dataset_preset

    check_dataset_preset(dataset, preset)
    options = _data_options(set_)
    if verify:
        _verify(dataset, root, preset, options, cache_dir)
        return
    from affectlab.presets import prepare as build

    windows, folder = build(dataset, root, preset, options, cache_dir=cache_dir,
                            progress=True)
    typer.echo(f"{len(windows)} windows, modalities {windows.summary()['modalities']}")
    typer.echo(str(folder))


def _verify(dataset: str, root: Path, preset: str, options: dict, cache_dir: Path | None,
            ) -> None:
    """``prepare --verify``: the entry's files against the files now; exit 1 unless current."""
    from affectlab.cache import locate
    from affectlab.presets import verify_cache

    check = verify_cache(dataset, root, preset, options, cache_dir)
    if check.folder is None:
        typer.echo(f"no cache entry of {dataset} / {preset} with these options; prepare "
                   "builds one")
        raise typer.Exit(1)
    result = check.comparison
    typer.echo(f"hashed {result.n_files} files ({result.n_bytes / 1e6:.1f} MB) in "
               f"{result.seconds:.1f} s against {check.folder}")
    for kind in ("changed", "added", "removed"):
        for name in getattr(result, kind):
            typer.echo(f"  {kind}: {locate(check.scope, name)}")
    if result.touched:
        typer.echo(f"  {len(result.touched)} file(s) with new times or inode, content "
                   f"unchanged (e.g. {locate(check.scope, result.touched[0])})")
    if check.ok:
        typer.echo("up to date")
        return
    if not check.current and not result.stale:
        typer.echo("stale: the content is the same but times or inodes changed since the "
                   "entry was built (the key holds them); prepare builds a new entry")
    elif not check.current:
        typer.echo("stale: the entry was built from files that have changed since; prepare "
                   "builds a new entry")
    elif check.removed:
        typer.echo("stale: the entry was removed; prepare rebuilds it")
    else:
        typer.echo("stale: remove the entry folder, then prepare rebuilds it")
    raise typer.Exit(1)


@app.command("list")
def list_names(method: str = typer.Argument(None, help="a method (name, plugin or import "
                                            "path): its presets and options")) -> None:
    """Datasets, data presets, methods, protocols and label schemes; with METHOD, that
    method's presets and options (descriptions and defaults)."""
    from affectlab import catalog

    if method is not None:
        catalog.check_method(method)
        from affectlab.cli.describe import method_lines

        typer.echo("\n".join(method_lines(method)))
        return
    table = catalog.CATALOG
    typer.echo("datasets:")
    for name, entry in table["datasets"].items():
        typer.echo(f"  {name:16s} {entry['title']}: {', '.join(entry['modalities'])}")
    typer.echo("data presets:")
    for name, entry in table["presets"].items():
        typer.echo(f"  {name:16s} {entry['summary']} [{', '.join(entry['datasets'])}]")
    typer.echo("methods:")
    for name, entry in table["methods"].items():
        flag = " (transductive)" if entry["transductive"] else ""
        typer.echo(f"  {name:16s} {entry['summary']}{flag}")
    _plugin_lines()
    typer.echo("protocols:")
    for name, entry in table["protocols"].items():
        typer.echo(f"  {name:16s} {entry['summary']}")
    typer.echo("label schemes:\n  " + ", ".join(table["label_schemes"]))
    typer.echo("(affectlab list METHOD: a method's presets and options)")


def _plugin_lines() -> None:
    """Methods installed packages declare (entry points ``affectlab.methods``), not imported."""
    from affectlab.plugins import method_entry_points

    found = method_entry_points()
    if found:
        typer.echo("plugin methods (entry points):")
        for name, entry in sorted(found.items()):
            typer.echo(f"  {name:16s} {entry.value}")
