"""The ``affectlab`` command line. Subcommands only parse options and call library functions;
heavy imports happen inside the commands so that ``affectlab --help`` stays fast."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal emotion recognition: synthetic data, readers, honest "
                       "protocols and five published methods.")


def main() -> None:
    """Console entry point: run the app, turning affectlab errors into one clear line."""
    from affectlab.cli import compare, data, demo, experiment, sweep  # noqa: F401  (registers)
    from affectlab.errors import AffectlabError

    try:
        app()
    except AffectlabError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
