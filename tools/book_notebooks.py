"""Write the book's chapters as executed ``.ipynb`` notebooks that open on Colab and Binder.

The chapters are MyST Markdown (``book/ch03_qkv.md``): Jupyter opens them with jupytext, Colab does
not open them at all. After ``jupyter-book build .`` the executed notebooks are in
``_build/html/_sources/`` (the pages' ``.ipynb`` download). This script copies those of the
Markdown pages in ``_toc.yml`` to ``OUT/<page>.ipynb`` and puts one cell before the first code cell
that installs the course package where it is missing (on Colab), from the repository that
``_config.yml`` names. The deploy workflow (``.github/workflows/book.yml``) commits them to the
branch that the launch buttons open (``tfm_notebooks_branch`` in ``_config.yml``).

    python tools/book_notebooks.py [--html _build/html] --out _build/notebooks
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

SETUP_TAG = "tfmcourse-colab-setup"


def book_config(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def repository_url(config: dict) -> str:
    url = str(config.get("repository", {}).get("url", "")).rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"_config.yml repository.url must be a GitHub repository URL, got {url!r}")
    return url


def markdown_pages(root: Path = ROOT) -> list[str]:
    """Docnames of the ``.md`` pages in ``_toc.yml`` that are notebooks (have a jupytext header)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    names.append(re.sub(r"\.(md|ipynb)$", "", node[key]))
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    pages = []
    for name in dict.fromkeys(names):
        source = root / f"{name}.md"
        if source.is_file() and source.read_text(encoding="utf-8").startswith("---\njupytext:"):
            pages.append(name)
    return pages


def setup_cell(repo_url: str, branch: str) -> dict:
    source = (
        "# On Colab, install the course package first (Binder and a local install already have it).\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("tfmcourse") is None:\n'
        f'    %pip install --quiet "tfmcourse @ git+{repo_url}@{branch}"'
    )
    return {"cell_type": "code", "execution_count": None, "id": SETUP_TAG,
            "metadata": {"tags": [SETUP_TAG]}, "outputs": [], "source": source}


def with_setup_cell(nb: dict, cell: dict) -> dict:
    cells = [c for c in nb["cells"] if SETUP_TAG not in c.get("metadata", {}).get("tags", [])]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    nb = dict(nb, cells=cells[:first_code] + [cell] + cells[first_code:])
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5  # cell ids
    return nb


def write_notebooks(html: Path, out: Path, root: Path = ROOT) -> list[Path]:
    config = book_config(root)
    url = repository_url(config)
    branch = str(config.get("repository", {}).get("branch", "main"))
    cell = setup_cell(url, branch)
    written = []
    for page in markdown_pages(root):
        src = html / "_sources" / f"{page}.ipynb"
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing: build the book first (with launch buttons on)")
        nb = with_setup_cell(json.loads(src.read_text(encoding="utf-8")), cell)
        dest = out / f"{page}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--out", type=Path, required=True, help="folder to write <page>.ipynb into")
    args = parser.parse_args(argv)
    for path in write_notebooks(args.html, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
