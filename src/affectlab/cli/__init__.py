"""The ``affectlab`` command line. Subcommands only parse options and call library functions;
names are checked against a static catalog (:mod:`affectlab.cli.checks`) and heavy imports
happen inside the commands afterwards, so that ``--help``, ``list`` and every name error answer
at once."""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multimodal emotion recognition: synthetic data, readers, honest "
                       "protocols and five published methods.")


def main() -> None:
    """Console entry point: run the app, turning affectlab errors into one clear line."""
    from affectlab.cli import (  # noqa: F401  (registers)
        compare,
        data,
        demo,
        experiment,
        reproduce,
        sweep,
    )
    from affectlab.errors import AffectlabError

    if os.getcwd() not in sys.path:         # --method mymodule:MyMethod from the working folder
        sys.path.append(os.getcwd())
    try:
        app()
    except AffectlabError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
