"""``xpnet train --early-stopping`` reports and plots the validation loss beside the
training loss (issue 20, item 2): real subprocess runs of the CLI."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from test_cli import run


def test_json_has_one_validation_loss_and_score_per_epoch(tmp_path):
    proc = run("train", "--epochs", "25", "--early-stopping", "--alpha", "0.01", "--json",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    training = json.loads(proc.stdout)["training"]
    curve, scores = training["validation_loss_curve"], training["validation_scores"]
    assert len(curve) == len(scores) == len(training["loss_curve"]) == training["epochs"]
    assert all(isinstance(v, float) and v > 0 for v in curve)
    assert len(set(curve)) > 1  # it moves with the weights
    plain = run("train", "--epochs", "5", "--json", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "validation_loss_curve" not in json.loads(plain.stdout)["training"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="--plot needs matplotlib (the plot extra)")
def test_plot_draws_training_and_validation_loss_on_one_axis(tmp_path):
    proc = run("train", "--epochs", "20", "--early-stopping", "--plot", "run.svg",
               "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    svg = (tmp_path / "run.svg").read_text()
    # matplotlib's SVG names each text it draws in a comment: the legend of the loss axis
    labels = set(re.findall(r"<!-- ([a-z ]+) -->", svg))
    assert {"training", "validation", "loss", "epoch"} <= labels
    proc = run("train", "--epochs", "5", "--plot", "plain.svg", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "validation" not in set(re.findall(r"<!-- ([a-z ]+) -->",
                                              (tmp_path / "plain.svg").read_text()))
