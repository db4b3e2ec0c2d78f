"""Training recipes: the YAML files in ``training/recipes/`` that fill a method's dataclass config.

The strict loader itself is ``jobs.specs`` (studies use it too); here a bare recipe name is looked
up in this folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from jobs.specs import RecipeError, build_config  # noqa: F401  (importable from here)
from jobs.specs import load_recipe as _load

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
T = TypeVar("T")


def load_recipe(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    return _load(cls, path, overrides, search_dir=RECIPES_DIR)
