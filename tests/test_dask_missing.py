"""Without the dask extra, the Dask entry points say how to install it (issue 10).

Runs in the main suite: each check is a subprocess in which ``dask`` and ``zarr`` are
hidden (``sys.modules[name] = None`` makes ``import name`` fail), whether or not they are
installed here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from test_cli import assert_error, write_csv

HIDE = "import sys\nsys.modules['dask'] = None\nsys.modules['zarr'] = None\n"


def python(code, cwd=None):
    return subprocess.run([sys.executable, "-c", HIDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_library_entry_points_name_the_extra(tmp_path):
    (tmp_path / "store.zarr").mkdir()
    proc = python(f"""
        from xpnet.backends import BackendUnavailableError
        from xpnet.distributed.storage import DaskUnavailableError, generate, open_data
        from xpnet.data import convert_to_zarr
        calls = [lambda: open_data({str(tmp_path / "store.zarr")!r}),
                 lambda: generate("moons", 10)]
        for call in calls:
            try:
                call()
            except DaskUnavailableError as exc:
                assert isinstance(exc, BackendUnavailableError)
                print(exc)
            else:
                raise SystemExit("no error")
    """)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "needs dask, which is not installed" in line
        assert "Install it with: pip install 'xpnet[dask]'" in line


def test_cli_convert_without_zarr_is_one_error_line_and_writes_nothing(tmp_path):
    source = write_csv(tmp_path / "d.csv", ["a", "t"], [[1, 0], [2, 1]])
    proc = python(f"""
        from xpnet.cli import main
        raise SystemExit(main(["convert", {str(source)!r}, {str(tmp_path / "d.zarr")!r}]))
    """)
    assert_error(proc, "needs zarr, which is not installed",
                 "pip install 'xpnet[dask]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_dask_arrays_without_distributed_name_the_extra():
    """dask.array alone (the ``dask[array]`` install, no ``distributed``): fitting on a
    Dask array raises the same BackendUnavailableError as the other entry points."""
    import pytest

    pytest.importorskip("dask.array", reason="needs dask.array to build the input")
    code = textwrap.dedent("""
        import sys
        sys.modules['distributed'] = None
        import dask.array as da
        import numpy as np
        import xpnet
        from xpnet.distributed.storage import DaskUnavailableError
        X = da.from_array(np.zeros((8, 2)), chunks=4)
        y = da.from_array(np.zeros(8), chunks=4)
        for call in (lambda: xpnet.MLP([2, 3, 1]).fit(X, y, epochs=1),
                     lambda: xpnet.MLPClassifier(max_iter=1).fit(X, y)):
            try:
                call()
            except DaskUnavailableError as exc:
                print(exc)
            else:
                raise SystemExit("no error")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        assert "needs distributed, which is not installed" in line
        assert "pip install 'xpnet[dask]'" in line
