"""Sphinx configuration of xpnet's documentation site (``nox -s docs`` builds it).

Offline by design: CI and the project's machines reach the package index only.
- MathJax is served from the site itself: ``sphinx-mathjax-offline`` (the ``docs`` extra)
  vendors MathJax 3, copies it into ``_static/mathjax`` and points ``mathjax_path`` there.
- The PyData theme's own assets (Bootstrap, Font Awesome) ship inside its wheel.
- Intersphinx (links into NumPy, SciPy, scikit-learn, PyTorch, JAX and Dask) needs their
  ``objects.inv``: an inventory saved as ``docs/_intersphinx/<name>.inv`` is used as it
  is; the others are fetched from the projects' sites only with XPNET_DOCS_INTERSPHINX=1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT / "src"))

import xpnet  # noqa: E402

project = "xpnet"
author = "xpnet developers"
copyright = "xpnet developers"
release = xpnet.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "sphinx-mathjax-offline",
    "xpnet_docs",
]

exclude_patterns = ["_build", "backprop.md", "**/README.rst", "_intersphinx"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
suppress_warnings = ["config.cache"]  # sphinx-gallery's callables in the config

# --- MyST: the Markdown pages, $$ math, heading anchors for #links
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- API pages: one per public name, generated at build time (api/generated/, ignored)
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Undocumented or misspelt parameters are build errors (with -W).
numpydoc_validation_checks = {"PR01", "PR02"}
numpydoc_validation_exclude = {
    r"\.__init__$", r"\.__call__$", r"\.__getattr__$",
    # made by get_backend, never by hand: its constructor's arguments are private hooks
    r"^xpnet\.(backends\.)?Backend$",
}

# --- doctests: the guide's and the docstrings' >>> examples run with `-b doctest`
doctest_global_setup = "import numpy as np\nimport xpnet"

# --- intersphinx (see the module docstring)
_INVENTORIES = {
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "sklearn": "https://scikit-learn.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
    "dask": "https://docs.dask.org/en/stable/",
}
_ONLINE = os.environ.get("XPNET_DOCS_INTERSPHINX") == "1"
intersphinx_mapping = {}
for _name, _url in _INVENTORIES.items():
    _cached = HERE / "_intersphinx" / f"{_name}.inv"
    if _cached.exists():
        intersphinx_mapping[_name] = (_url, str(_cached))
    elif _ONLINE:
        intersphinx_mapping[_name] = (_url, None)
intersphinx_disabled_reftypes = ["*"]  # only explicit `name:` references cross over

# --- the gallery: examples/plot_*.py, run at every build, figures embedded
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": False,  # each failure is reported; -W fails the build
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "within_subsection_order": "FileNameSortKey",
}

# --- HTML: the PyData theme, everything served locally
html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_favicon = "_static/xpnet-icon.svg"  # browsers ask for one: no 404 in the console
html_logo = "_static/xpnet-icon.svg"
html_context = {"default_mode": "light"}  # an explicit mode (the theme warns without)
html_sidebars = {"index": [], "getting-started": []}
html_show_sourcelink = False
html_copy_source = False
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# --- the API reference: one section per public module, one page per name in its
# __all__ (api/<module>.rst and api/generated/ are written here at every build and
# ignored by git, so a name added to an __all__ gets its page without editing the docs)
from xpnet_docs import API_MODULES  # noqa: E402  (also read by check_links.py)

xpnet_api_modules = list(API_MODULES)  # xpnet_docs: every name of an object answers


def _write_api_pages() -> None:
    import importlib

    folder = HERE / "api"
    folder.mkdir(exist_ok=True)
    for name, title in API_MODULES.items():
        module = importlib.import_module(name)
        names = sorted(module.__all__, key=str.lower)
        heading = f"``{name}``: {title}"
        lines = [heading, "=" * len(heading), "", f".. automodule:: {name}",
                 "   :no-members:", "", f".. currentmodule:: {name}", "",
                 ".. autosummary::", "   :toctree: generated", ""]
        lines += [f"   {item}" for item in names]
        text = "\n".join(lines) + "\n"
        path = folder / f"{name}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")  # rewritten only when it changes


_write_api_pages()
