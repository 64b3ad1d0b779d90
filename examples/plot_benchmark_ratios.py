"""
Benchmark ratios
================

How many times faster xpnet on NumPy trains one epoch than scikit-learn's
``MLPClassifier``, PyTorch eager and a hand-written NumPy loop, per benchmark case:
the median of paired runs with its min-max range, read from
``benchmarks/results.json`` (written by ``python benchmarks/run.py``; the
:doc:`/benchmarks` page says how it was measured). Above 1: xpnet is faster.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

try:
    here = Path(__file__).resolve().parent
except NameError:  # run by sphinx-gallery, from the examples folder
    here = Path.cwd()
results = json.loads((here.parent / "benchmarks" / "results.json").read_text())
others = {"sklearn": "scikit-learn", "torch": "PyTorch eager", "floor-numpy": "NumPy loop"}
cases = [name for name in results["cases"] if results["cases"][name]["pairs"]]

fig, ax = plt.subplots(figsize=(7, 4.2))
width = 0.8 / len(others)
for k, (impl, label) in enumerate(others.items()):
    medians, low, high = [], [], []
    for case in cases:
        pair = results["cases"][case]["pairs"].get(f"xpnet-numpy/{impl}")
        if pair is None:
            medians.append(np.nan)
            low.append(0)
            high.append(0)
            continue
        # the pair is time(xpnet) / time(other): its inverse is the speed-up
        medians.append(1 / pair["median"])
        low.append(1 / pair["median"] - 1 / pair["max"])
        high.append(1 / pair["min"] - 1 / pair["median"])
    x = np.arange(len(cases)) + (k - (len(others) - 1) / 2) * width
    ax.bar(x, medians, width, yerr=[low, high], capsize=3, label=label)
    print(label, ", ".join(f"{c} {m:.2f}x" for c, m in zip(cases, medians)))
ax.axhline(1, color="k", lw=0.8)
ax.set_xticks(np.arange(len(cases)), [
    f"{c}\n{'-'.join(map(str, results['cases'][c]['case']['layer_sizes']))}" for c in cases])
ax.set_ylabel("speed-up of xpnet (NumPy) per epoch")
ax.set_title(f"{results['meta']['cpu']}, {results['meta']['cpu_count']} cores, "
             f"{results['meta']['date_utc'][:10]}")
ax.legend()
fig.tight_layout()
plt.show()
