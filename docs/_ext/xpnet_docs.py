"""Sphinx helpers of xpnet's documentation: equations linked to the source lines.

``{src}`core.py: dZ = A_out - Y``` (MyST) or ``:src:`core.py: dZ = A_out - Y``` (reST)
finds the line of ``src/xpnet/core.py`` that holds the text after the colon and renders
a link ``core.py:182`` to that line of the site's own listing of the file
(``_source/xpnet/core.py.html#L-182``, written by this extension with an anchor per
line). The text is looked up at every build, so the link follows the line when code
moves, and a line that no longer exists is a build warning (an error with ``-W``).
"""

from __future__ import annotations

import html
import importlib
import posixpath
from pathlib import Path
from typing import Any

from docutils import nodes
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging

# The API reference: one section per module, one page per name in its __all__.
API_MODULES = {
    "xpnet": "The package: networks, backends, model files, the estimators",
    "xpnet.core": "The pure forward and backward step",
    "xpnet.optim": "Optimisers and learning-rate schedules",
    "xpnet.data": "Data sets, data files, splits and standardisation",
    "xpnet.io": "Model files",
    "xpnet.sklearn": "scikit-learn estimators",
    "xpnet.distributed": "Training and prediction on Dask arrays",
}

SOURCE = Path(__file__).resolve().parents[2] / "src" / "xpnet"
PAGES = "_source/xpnet"
logger = logging.getLogger(__name__)


def find_line(relative: str, text: str) -> int | None:
    """1-based number of the first line of ``src/xpnet/<relative>`` containing ``text``."""
    path = SOURCE / relative
    if not path.is_file():
        return None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return number
    return None


def src_role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
             options: Any = None, content: Any = None) -> tuple[list[Any], list[Any]]:
    relative, _, code = (part.strip() for part in text.partition(":"))
    env = inliner.document.settings.env
    number = find_line(relative, code)
    if number is None:
        message = f"src role: no line of src/xpnet/{relative} contains {code!r}"
        logger.warning(message, location=(env.docname, lineno))
        return [nodes.literal(rawtext, relative)], []
    env.xpnet_sources = getattr(env, "xpnet_sources", set()) | {relative}
    depth = env.docname.count("/")
    uri = posixpath.join(*([".."] * depth), f"{PAGES}/{relative}.html") + f"#L-{number}"
    link = nodes.reference(rawtext, "", refuri=uri, classes=["xpnet-src"])
    link += nodes.literal(rawtext, f"{relative}:{number}")
    return [link], []


def source_pages(app: Sphinx) -> Any:
    """One HTML listing per source file named by a ``src`` role, an anchor per line."""
    if app.builder.format != "html":
        return
    formatter = HtmlFormatter(linenos="inline", lineanchors="L", anchorlinenos=True,
                              cssclass="highlight")
    for relative in sorted(getattr(app.env, "xpnet_sources", ())):
        code = (SOURCE / relative).read_text(encoding="utf-8")
        body = (f"<h1>src/xpnet/{html.escape(relative)}</h1>\n"
                f"<div class=\"xpnet-source\">{highlight(code, PythonLexer(), formatter)}"
                "</div>")
        yield f"{PAGES}/{relative}", {"title": f"src/xpnet/{relative}", "body": body}, \
            "page.html"


def merge_sources(app: Sphinx, env: Any, docnames: Any, other: Any) -> None:
    env.xpnet_sources = getattr(env, "xpnet_sources", set()) | \
        getattr(other, "xpnet_sources", set())


def alias_ids(app: Sphinx, doctree: Any) -> None:
    """Give each API signature the ids of every public name of its object.

    ``xpnet.save`` is ``xpnet.io.save``: viewcode's links back from the source listing
    use one of the names (the first module it read) with the page of another, so each
    page answers to all of them.
    """
    aliases: dict[int, set[str]] = {}
    for module_name in app.config.xpnet_api_modules:
        module = importlib.import_module(module_name)
        for item in module.__all__:
            aliases.setdefault(id(getattr(module, item)), set()).add(f"{module_name}.{item}")
    for signature in doctree.findall(addnodes.desc_signature):
        module, fullname = signature.get("module"), signature.get("fullname")
        if not module or not fullname or "." in fullname:
            continue
        obj = getattr(importlib.import_module(module), fullname, None)
        for name in sorted(aliases.get(id(obj), ())):
            if name not in signature["ids"]:
                signature["ids"].append(name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("xpnet_api_modules", [], "env")
    app.add_role("src", src_role)
    app.connect("doctree-read", alias_ids)
    app.connect("html-collect-pages", source_pages)
    app.connect("env-merge-info", merge_sources)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
