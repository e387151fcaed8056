"""The training recipes of recipes.toml: every run's `mcviz train` flags, and the rows of the results tables.

    python scripts/recipes.py names shipped|runs     the family's runs, in the file's order
    python scripts/recipes.py args NAME              NAME's flags, one per line ({data} from $DATA, {size} from $SIZE)
    python scripts/recipes.py ships NAME             exit 0 when the shipped-family run NAME is copied into checkpoints/

scripts/train_checkpoints.sh and scripts/train_levers.sh train from it; the results generators read the
tables' rows from it and each run's configuration from its record (the recipe where no record is left).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes.toml"
LEVER_DOC = REPO / "docs" / "runs" / "levers"


@lru_cache(maxsize=None)
def load() -> dict:
    with open(RECIPES, "rb") as f:
        return tomllib.load(f)


def family(name: str) -> Optional[str]:
    """``"shipped"`` or ``"runs"``: where ``name`` is defined (None: nowhere)."""
    return next((f for f in ("shipped", "runs") if name in load()[f]), None)


def names(fam: str) -> list[str]:
    return list(load()[fam])


def _expand(text: str, data: str, size: str, depth: int = 0) -> list[str]:
    groups = load()["groups"]
    out: list[str] = []
    for word in shlex.split(text):
        if word.startswith("@"):
            if depth > 4 or word[1:] not in groups:
                raise KeyError(f"recipes.toml: no group {word}")
            out += _expand(groups[word[1:]], data, size, depth + 1)
        else:
            out.append(word.replace("{data}", data).replace("{size}", size))
    return out


def args(name: str, data: Optional[str] = None, size: Optional[str] = None) -> list[str]:
    """The `mcviz train` flags of ``name`` (without ``--out``)."""
    fam = family(name)
    if fam is None:
        raise KeyError(f"recipes.toml names no run {name!r}")
    data = data or os.environ.get("DATA", "../shared/data")
    size = size or os.environ.get("SIZE", "288")
    f = load()["families"][fam]
    return [a for part in (f["before"], load()[fam][name]["args"], f["after"]) for a in _expand(part, data, size)]


def ships(name: str) -> bool:
    return load()["shipped"].get(name, {}).get("ship", True)


def table(name: str) -> dict[str, str]:
    """A results table's rows: run name -> its words, in order."""
    return dict(load()["tables"][name])


def second_seed(name: str) -> str:
    return f"{name}-s1"


def lever_of_shipped() -> dict[str, str]:
    """Shipped model -> the lever run whose configuration it repeats."""
    return {n: r["lever"] for n, r in load()["shipped"].items() if "lever" in r}


@lru_cache(maxsize=None)
def config(name: str) -> Optional[dict]:
    """The run's configuration: its recorded ``config.json`` (docs/runs/levers/NAME.config.json), else the
    one its recipe gives (parsed by `mcviz train`'s own flags); None for a run with neither."""
    kept = LEVER_DOC / f"{name}.config.json"
    if kept.exists():
        return json.loads(kept.read_text())
    if family(name) is None:
        return None
    import argparse
    import dataclasses

    from mcviz.train.config import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    a = args(name) + ["--out", f"runs/{name}"]
    return dataclasses.asdict(config_from_args(p.parse_args(a), "mcviz train " + shlex.join(a)))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "names":
        print("\n".join(names(argv[1])))
    elif len(argv) == 2 and argv[0] == "args":
        print("\n".join(args(argv[1])))
    elif len(argv) == 2 and argv[0] == "ships":
        return 0 if ships(argv[1]) else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        sys.exit(2)
