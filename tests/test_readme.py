"""Every console example of README.md and of the documentation's pages, run for real and
compared by shape.

The pages are README.md, then ``docs/guide/cli/train.md`` (its examples write the model
files that later pages read), then every other Markdown or reST page under ``docs/`` in
path order (built and generated folders left out). A console example is a line
``$ COMMAND`` in a ```` ```console ```` block; the lines after it, up to the next ``$``,
are its output. The commands run in order, in one temporary
folder (a later example reads the files an earlier one wrote), through the shell (pipes
such as ``| head -3`` and ``echo $?`` work), with the ``xpnet`` of this interpreter's
environment first on ``PATH``. stdout and stderr are read together, as on a terminal.

What is compared is the output's shape, never numbers or timings: for each line its
label (the first word, or the words up to the first one not ending in ``:``, such as
``xpnet: error: backend``), for CSV lines their fields with numbers masked, and for JSON
the keys at every level; the number of lines must match too. ``echo`` lines must match
exactly (``echo $?`` shows an exit status). An example shown without output must exit 0;
one whose output shows ``xpnet: error:`` must exit non-zero.

Examples that need an optional piece (PyTorch, scikit-learn's data sets, matplotlib, a
backend) skip saying what is missing, and so do later examples that read a file that a
skipped example would have written. A block that cannot run unattended (one that waits
for Ctrl-C, say) is marked by the line ``<!-- not tested -->`` just above it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# after README, the page whose examples write the model files that other pages read
FIRST_DOCS = ["docs/guide/cli/train.md"]
NOT_PAGES = {"_build", "_templates", "_static", "auto_examples", "generated"}
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
OUTPUT_OPTIONS = {"--save", "--out", "--plot"}
FILE_SUFFIXES = (".npz", ".npy", ".csv", ".png", ".pdf", ".svg", ".json")


NOT_TESTED = "<!-- not tested -->"  # on the line before a ```console block: skip it


@dataclass
class Example:
    line: int  # where the command stands in its page (1-based)
    command: str
    output: list[str] = field(default_factory=list)
    marked_not_tested: bool = False
    page: str = "README.md"

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}: {self.command}"


def pages() -> list[Path]:
    """README.md and the documentation's pages, in the order their examples run."""
    docs = sorted(p for p in (ROOT / "docs").rglob("*")
                  if p.suffix in (".md", ".rst")
                  and not NOT_PAGES & set(p.relative_to(ROOT / "docs").parts))
    first = [ROOT / name for name in FIRST_DOCS]
    return [README, *first, *(p for p in docs if p not in first)]


def all_examples() -> list[Example]:
    examples = []
    for path in pages():
        page = path.relative_to(ROOT).as_posix()
        for example in console_examples(path.read_text(encoding="utf-8")):
            example.page = page
            examples.append(example)
    return examples


def console_examples(text: str) -> list[Example]:
    """The ``$`` commands of every ```` ```console ```` block with the output shown."""
    examples: list[Example] = []
    in_block = not_tested = continued = False
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not in_block:
            in_block = stripped == "```console"
            not_tested = previous == NOT_TESTED
            previous = stripped or previous
            continue
        if stripped.startswith("```"):
            in_block = False
            previous = stripped
        elif continued:  # a command continued with a trailing backslash
            examples[-1].command = examples[-1].command[:-1] + " " + stripped
            continued = stripped.endswith("\\")
        elif line.startswith("$ "):
            examples.append(Example(number, line[2:].strip(), marked_not_tested=not_tested))
            continued = examples[-1].command.endswith("\\")
        elif examples:
            examples[-1].output.append(line.rstrip())
    return examples


EXAMPLES = all_examples()


# --------------------------------------------------------------------------- shapes
def _masked(text: str) -> str:
    return NUMBER.sub("#", text)


def line_shape(line: str) -> str:
    """The label of one output line: what stays the same from run to run and machine to
    machine (numbers, timings, versions and paths differ)."""
    if not line.strip():
        return ""
    if line[0].isspace():
        return "(continued)"
    if "," in line and " " not in line:  # a CSV line: its fields, numbers masked
        return ",".join("#" if NUMBER.fullmatch(f) else f for f in line.split(","))
    label = []
    for word in line.split():
        label.append(_masked(word))
        if not word.endswith(":"):
            break
    return " ".join(label)


def json_shape(value: object) -> object:
    """Keys at every level (a list shows the shape of its first item)."""
    if isinstance(value, dict):
        return {key: json_shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        return [json_shape(value[0])]
    return type(value).__name__ if value is None else "value"


def shape(lines: list[str]) -> object:
    text = "\n".join(lines).strip()
    if text.startswith("{"):
        try:
            return json_shape(json.loads(text))
        except json.JSONDecodeError:
            pass
    return [line_shape(line) for line in lines]


# --------------------------------------------------------------------------- running
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _usable_backends() -> set[str]:
    import xpnet

    return set(xpnet.available_backends())


def _option_values(words: list[str], option: str) -> list[str]:
    values = []
    for i, word in enumerate(words):
        if word == option and i + 1 < len(words):
            values.append(words[i + 1])
        elif word.startswith(option + "="):
            values.append(word.split("=", 1)[1])
    return values


def missing_piece(example: Example, folder: Path, skipped_outputs: set[str]) -> str | None:
    """Why ``example`` cannot run here, or None."""
    from xpnet.data import DATASETS

    if example.marked_not_tested:
        return f"marked {NOT_TESTED} in {example.page}"
    words = shlex.split(example.command)
    shows_error = any(line.startswith("xpnet: error:") for line in example.output)
    for backend in _option_values(words, "--backend"):
        usable = backend in _usable_backends()
        if usable and shows_error:
            return f"backend {backend!r} is usable here, so the example's error cannot happen"
        if not usable and not shows_error:
            return f"backend {backend!r} is not usable here"
    for name in _option_values(words, "--dataset"):
        if "[scikit-learn]" in DATASETS.get(name, "") and not _installed("sklearn"):
            return f"data set {name!r} needs scikit-learn, which is not installed"
    if _option_values(words, "--plot") and not _installed("matplotlib"):
        return "--plot needs matplotlib, which is not installed"
    outputs = {v for option in OUTPUT_OPTIONS for v in _option_values(words, option)}
    for word in words:
        if (word.endswith(FILE_SUFFIXES) and word not in outputs
                and not (folder / word).exists() and word in skipped_outputs):
            return f"needs {word}, written by an earlier example that was skipped"
    return None


def _xpnet_bin(tmp: Path) -> Path:
    """The folder of this environment's ``xpnet`` script, or of a stand-in for it."""
    here = Path(sys.executable).parent
    if (here / "xpnet").exists():
        return here
    shim = tmp / "bin"
    shim.mkdir(exist_ok=True)
    script = shim / "xpnet"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m xpnet "$@"\n')
    script.chmod(0o755)
    return shim


@dataclass
class Result:
    returncode: int
    output: list[str]
    skipped: str | None = None


class Session:
    """Runs the examples in page order, each once, in one folder, in one shell state
    (only ``$?`` carries from one command to the next)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "work"
        self.folder.mkdir()
        path = f"{_xpnet_bin(folder)}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env = {**os.environ, "PATH": path, "PYTHONIOENCODING": "utf-8",
                    "MPLBACKEND": "Agg", "COLUMNS": "200"}
        self.env.pop("XPNET_DEBUG", None)
        # shapes, not timings: one OpenMP thread keeps torch's training from crawling
        # (60 s instead of 2) on CI machines whose few cores are shared with other jobs
        self.env.setdefault("OMP_NUM_THREADS", "1")
        self.results: list[Result] = []
        self.skipped_outputs: set[str] = set()

    def result(self, index: int) -> Result:
        while len(self.results) <= index:
            self.results.append(self._run(EXAMPLES[len(self.results)]))
        return self.results[index]

    def _run(self, example: Example) -> Result:
        reason = missing_piece(example, self.folder, self.skipped_outputs)
        previous = self.results[-1].returncode if self.results else 0
        if reason is not None:
            words = shlex.split(example.command)
            self.skipped_outputs |= {v for option in OUTPUT_OPTIONS
                                     for v in _option_values(words, option)}
            return Result(previous, [], reason)
        proc = subprocess.run(
            ["bash", "-c", f"(exit {previous}); {example.command}"], cwd=self.folder,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=300,
        )
        return Result(proc.returncode, proc.stdout.rstrip("\n").splitlines())


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return Session(tmp_path_factory.mktemp("readme"))


def test_the_readme_has_console_examples():
    assert len(EXAMPLES) >= 5, [e.id for e in EXAMPLES]
    readme = [e for e in EXAMPLES if e.page == "README.md"]
    assert any(e.command.startswith("xpnet train") and e.output for e in readme)


def test_the_docs_pages_are_read():
    """The guide's command pages are among the pages, and each of them shows a run."""
    read = {e.page for e in EXAMPLES}
    for command in ("train", "evaluate", "predict", "backends", "gradcheck", "explain"):
        assert f"docs/guide/cli/{command}.md" in read, sorted(read)
    assert all((ROOT / name).exists() for name in FIRST_DOCS)


def test_the_readme_is_a_landing_page():
    """Under 150 lines, with the test command between its markers (.ci/run reads it)."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    block = text.split("<!-- test-command -->\n", 1)[1].split("<!-- /test-command -->", 1)[0]
    assert block.startswith("```bash\n") and "pytest" in block, block


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[e.id for e in EXAMPLES])
def test_console_example(session, index):
    example = EXAMPLES[index]
    result = session.result(index)
    if result.skipped:
        pytest.skip(result.skipped)
    shown = "\n".join(result.output)
    where = f"{example.id}\n--- README shows:\n" + "\n".join(example.output) + \
        f"\n--- it printed (exit {result.returncode}):\n{shown}"
    if example.command.startswith("echo "):
        assert result.output == example.output, where
        return
    if any(line.startswith("xpnet: error:") for line in example.output):
        assert result.returncode != 0, where
    else:
        assert result.returncode == 0, where
    if example.output:
        assert shape(result.output) == shape(example.output), where


# --------------------------------------------------------------------------- the checker
def test_shapes_ignore_numbers_but_not_labels():
    readme = ["loss      0.0032 (last epoch)   train 0.0032", "accuracy  train 1.0000",
              "          train 300 / test 100 rows", "row,true_target,p_0", "1,0,0.999918"]
    run = ["loss      0.0107 (last epoch)   train 0.0101", "accuracy  train 0.9833",
           "          train 30 / test 10 rows", "row,true_target,p_0", "12,3,0.000100"]
    assert shape(readme) == shape(run)
    assert shape(readme) != shape(run[:-1])  # a line fewer
    assert shape(readme) != shape(["R²        train 1.0000", *run[1:]])
    assert shape(readme[3:]) != shape(["row,true_class,p_0", "1,0,0.5"])
    assert shape(["xpnet: error: backend 'cupy' is not installed"]) != \
        shape(["xpnet: warning: backend 'cupy' is not installed"])
    assert shape(['{"a": 1, "b": {"c": [1, 2]}}']) == shape(['{"a": 2, "b": {"c": []}}'])
    assert shape(['{"a": 1, "b": {"c": 1}}']) != shape(['{"a": 1, "c": 1}'])


def test_examples_are_parsed_with_their_output():
    text = textwrap.dedent("""\
        ```bash
        $ not-a-console-block
        ```
        ```console
        $ xpnet train --epochs 2 \\
            --quiet
        $ xpnet predict m.npz --dataset digits | head -3
        row,prediction
        1,0
        ```
        """)
    examples = console_examples(text + f"{NOT_TESTED}\n```console\n$ sleep 1000\n```\n")
    assert [(e.line, e.command, e.output, e.marked_not_tested) for e in examples] == [
        (5, "xpnet train --epochs 2  --quiet", [], False),
        (7, "xpnet predict m.npz --dataset digits | head -3", ["row,prediction", "1,0"],
         False),
        (13, "sleep 1000", [], True),
    ]


def test_examples_that_cannot_run_here_say_why(tmp_path):
    train = Example(1, "xpnet train --backend nosuch --save m.npz")
    assert missing_piece(train, tmp_path, set()) == "backend 'nosuch' is not usable here"
    predict = Example(2, "xpnet predict m.npz --dataset moons --out p.csv")
    assert missing_piece(predict, tmp_path, {"m.npz"}) == \
        "needs m.npz, written by an earlier example that was skipped"
    assert missing_piece(predict, tmp_path, set()) is None  # then it fails, saying so
    error = Example(3, "xpnet train --backend numpy", ["xpnet: error: backend ..."])
    assert missing_piece(error, tmp_path, set()) == \
        "backend 'numpy' is usable here, so the example's error cannot happen"
