"""Open the built site in headless Chromium and check what a reader sees.

    python docs/browser_check.py docs/_build/html docs/_build/screenshots

Serves the site with Python's ``http.server`` on 127.0.0.1 (a port the system picks),
waits until it answers, and drives Debian's Chromium (``/usr/bin/chromium``, or
``XPNET_CHROMIUM``) through Playwright; no browser is downloaded. Checks:

- the landing page renders with the theme's navigation bar and its section links;
- the search page finds ``loss_and_grads``;
- the mathematics page has MathJax output (``mjx-container``) for every formula and no
  raw ``$$`` or ``\\[`` left in its text;
- every image of the gallery (its index and each example's page) loads
  (``naturalWidth > 0``);
- no page logs an error to the browser console, throws, or fails to load a resource.

Saves one screenshot per page checked. Exit 1 listing each failure.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = os.environ.get("XPNET_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 30_000


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    """The site on an ephemeral port of 127.0.0.1, answering before this returns."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    deadline = time.monotonic() + 30
    while True:  # each try blocks on the connection itself: no sleeping
        try:
            with urllib.request.urlopen(url + "index.html", timeout=5) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            if time.monotonic() > deadline:
                raise


class Checker:
    def __init__(self, page: Page, base: str, shots: Path) -> None:
        self.page, self.base, self.shots = page, base, shots
        self.failures: list[str] = []
        self.current = ""
        page.on("console", lambda m: m.type == "error" and self.fail(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.fail(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: self.fail(f"failed to load {r.url}"))
        page.on("response", lambda r: r.status >= 400 and self.fail(f"HTTP {r.status}: {r.url}"))

    def fail(self, message: str) -> None:
        self.failures.append(f"{self.current}: {message}")

    def open(self, path: str) -> Page:
        self.current = path
        self.page.goto(self.base + path, wait_until="load", timeout=TIMEOUT_MS)
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=False)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)
        print(("ok    " if condition else "FAIL  ") + f"{self.current}: {message}")


def landing(c: Checker) -> None:
    page = c.open("index.html")
    nav = page.locator("header.bd-header .bd-navbar-elements a.nav-link")
    nav.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    titles = [t.strip() for t in nav.all_inner_texts()]
    c.check(len(titles) >= 4, f"the theme's navigation bar shows {titles}")
    for wanted in ("Getting started", "User guide", "API reference"):
        c.check(wanted in titles, f"navigation links to {wanted!r}")
    c.check(page.locator("h1").first.inner_text().strip().startswith("xpnet"), "title")
    c.shot("landing")


def search(c: Checker) -> None:
    page = c.open("search.html?q=loss_and_grads")
    summary = page.locator("#search-results .search-summary, #search-results p")
    summary.first.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector('#search-results')?.innerText.includes('Searching')"
        " && document.querySelectorAll('#search-results li').length > 0",
        timeout=TIMEOUT_MS)
    results = page.locator("#search-results li a").all_inner_texts()
    hits = [r for r in results if "loss_and_grads" in r]
    c.check(bool(hits), f"search finds loss_and_grads ({len(results)} results: {hits[:3]})")
    c.shot("search")


def mathematics(c: Checker) -> None:
    page = c.open("mathematics.html")
    formulas = page.locator("div.math, span.math").count()
    page.wait_for_function(
        "n => document.querySelectorAll('mjx-container').length >= n", arg=formulas,
        timeout=TIMEOUT_MS)
    rendered = page.locator("mjx-container").count()
    c.check(formulas > 10 and rendered >= formulas,
            f"MathJax rendered {rendered} formulas of {formulas}")
    text = page.locator("main").inner_text()
    c.check("$$" not in text and "\\[" not in text, "no raw $$ or \\[ left in the text")
    links = page.locator("a.xpnet-src").count()
    c.check(links > 10, f"{links} equations link to their source lines")
    c.shot("mathematics")
    first = page.locator("a.xpnet-src").first
    href = first.get_attribute("href") or ""
    page = c.open(href)  # relative to mathematics.html, at the site's top
    anchor = href.split("#", 1)[1]
    c.check(page.locator(f"[id='{anchor}']").count() == 1, f"source line anchor #{anchor}")
    c.shot("source-line")


def gallery(c: Checker) -> None:
    page = c.open("auto_examples/index.html")
    examples = sorted({h for h in page.locator(
        "a[href^='plot_']").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        if h.endswith(".html")})
    c.check(len(examples) >= 6, f"the gallery lists {len(examples)} examples")
    check_images(c, "gallery")
    for href in examples:
        c.open("auto_examples/" + href)
        check_images(c, href.removesuffix(".html"))


def check_images(c: Checker, name: str) -> None:
    page = c.page
    page.wait_for_function(
        "() => [...document.images].every(i => i.complete)", timeout=TIMEOUT_MS)
    sizes = page.locator("main img").evaluate_all(
        "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])")
    broken = [src for src, width in sizes if not width]
    c.check(bool(sizes) and not broken,
            f"{len(sizes)} images load" + (f"; broken: {broken}" if broken else ""))
    c.shot(name)


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "docs/_build/html").resolve()
    shots = Path(argv[2] if len(argv) > 2 else "docs/_build/screenshots").resolve()
    if not (site / "index.html").exists():
        print(f"browser_check: {site} holds no built site: run `nox -s docs` first")
        return 1
    if not Path(CHROMIUM).exists():
        print(f"browser_check: no Chromium at {CHROMIUM}: apt-get install chromium "
              "(or set XPNET_CHROMIUM)")
        return 1
    shots.mkdir(parents=True, exist_ok=True)
    server, base = serve(site)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            checker = Checker(page, base, shots)
            for step in (landing, search, mathematics, gallery):
                step(checker)
            browser.close()
    finally:
        server.shutdown()
    for failure in checker.failures:
        print("FAIL ", failure)
    print(f"browser_check: {len(checker.failures)} failures; screenshots in {shots}")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
