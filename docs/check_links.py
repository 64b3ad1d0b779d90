"""Check the built HTML site offline: every local link and anchor resolves, and every
public name of the documented modules has its API page.

    python docs/check_links.py docs/_build/html

Sphinx's ``linkcheck`` builder needs the network for external links; this checks what
the site itself must get right: each ``href``/``src`` that points into the site names a
file that exists and, with ``#anchor``, an ``id`` (or ``name``) in that file. External
links (``http:``, ``https:``, ``mailto:``) are not followed. Exit 1 listing each problem.
"""

from __future__ import annotations

import importlib
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
from xpnet_docs import API_MODULES  # noqa: E402  (the modules the API reference documents)

SKIP_FOLDERS = {"_static", "_sources", "_images", "_downloads"}  # theme and copies


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(values[key] or "")
        if tag in ("a", "link") and values.get("href"):
            self.links.append(values["href"] or "")
        if tag in ("img", "script") and values.get("src"):
            self.links.append(values["src"] or "")


def parse(path: Path, cache: dict[Path, Page]) -> Page:
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(site: Path) -> list[str]:
    cache: dict[Path, Page] = {}
    problems = []
    pages = [p for p in sorted(site.rglob("*.html"))
             if not SKIP_FOLDERS & set(p.relative_to(site).parts)]
    for page_path in pages:
        for link in parse(page_path, cache).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = page_path if not parts.path else \
                (page_path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(site)}: {link}"
            if not target.exists():
                problems.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html" and \
                    unquote(parts.fragment) not in parse(target, cache).ids:
                problems.append(f"{where}: no anchor #{parts.fragment}")
    return problems


def missing_api_pages(site: Path) -> list[str]:
    problems = []
    for name in API_MODULES:
        for item in importlib.import_module(name).__all__:
            page = site / "api" / "generated" / f"{name}.{item}.html"
            if not page.exists():
                problems.append(f"{name}.{item}: no API page ({page.relative_to(site)})")
    return problems


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "docs/_build/html").resolve()
    if not (site / "index.html").exists():
        print(f"check_links: {site} holds no built site (run sphinx-build first)")
        return 1
    problems = broken_links(site) + missing_api_pages(site)
    for problem in problems:
        print(problem)
    checked = len(list(site.rglob("*.html")))
    print(f"check_links: {checked} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
