"""Arguments and options that several commands share, declared once.

Each is a factory returning a click decorator; where commands word an option's help
differently, the help text is the factory's argument::

    @click.command()
    @recipe_argument()
    @overrides_option(help="As for train.")
    def validate(recipe, overrides): ...

Also the parameter types they need: ``CommaList`` (``yes,no`` -> ``["yes", "no"]``) and
``LazyChoice`` (choices read from a library module only when the option is used, so that
``seqkit --help`` does not import it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click

__all__ = [
    "EXISTING_FILE",
    "EXISTING_FOLDER",
    "FILE",
    "FOLDER",
    "PATH",
    "CommaList",
    "LazyChoice",
    "json_option",
    "model_argument",
    "overrides_option",
    "overwrite_option",
    "recipe_argument",
    "run_dir_argument",
]

SET_HELP = "Override a recipe value, e.g. --set train.epochs=3 (the key must exist)."

# Path types, one instance each, shared by every option of that kind (click.Path's
# constructor looks up translations: 23 of them cost ~2 ms of every command's start).
#: A file (or a name for one), not a folder.
FILE = click.Path(dir_okay=False)
#: A file that exists.
EXISTING_FILE = click.Path(exists=True, dir_okay=False)
#: A folder (or a name for one), not a file.
FOLDER = click.Path(file_okay=False)
#: A folder that exists.
EXISTING_FOLDER = click.Path(exists=True, file_okay=False)
#: A file or a folder.
PATH = click.Path()


def recipe_argument():
    """``RECIPE``: a recipe file (train, validate, compare)."""
    return click.argument("recipe", type=FILE)


def overrides_option(help: str = SET_HELP):
    """``--set KEY=VALUE`` (repeatable), passed as ``overrides``: a tuple of strings that
    ``seqkit.recipe.load_recipe`` checks and applies."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help)


def overwrite_option(help: str):
    """``--overwrite``: replace what the command would otherwise refuse to replace."""
    return click.option("--overwrite", is_flag=True, help=help)


def json_option(help: str = "One JSON document on stdout."):
    """``--json``, passed as ``as_json``: the result as one JSON document on stdout."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def run_dir_argument(required: bool = True):
    """``RUN_DIR``: a run folder (``seqkit train``'s output)."""
    return click.argument("run_dir", required=required, type=FOLDER)


def model_argument():
    """``RUN|EXPORT``, passed as ``run_dir``: a run folder or a file ``seqkit export`` wrote
    (``seqkit.inference.load_for_inference`` tells which)."""
    return click.argument("run_dir", metavar="RUN|EXPORT", type=PATH)


class CommaList(click.ParamType):
    """A comma-separated list: ``"yes, no"`` -> ``["yes", "no"]`` (blanks dropped).

    ``noun`` and ``example`` word the error for an empty list; ``allow_empty`` accepts one
    (``''`` for none).
    """

    name = "text"  # shown as TEXT in --help, as before

    def __init__(self, noun: str = "value", example: str = "a,b", allow_empty: bool = False):
        self.noun, self.example, self.allow_empty = noun, example, allow_empty

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        if not items and not self.allow_empty:
            self.fail(f"give at least one {self.noun}, e.g. {self.example}", param, ctx)
        return items


class LazyChoice(click.Choice):
    """``click.Choice`` whose choices come from ``load()``, called the first time they are
    needed (parsing the option, or the command's own ``--help``)."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True):
        self._load, self._choices = load, None
        self.case_sensitive = case_sensitive

    @property
    def choices(self):
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value):
        self._choices = tuple(value)
