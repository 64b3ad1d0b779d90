"""Rough edges of the command line a new user meets (issue 8, section 7): ``--layers 0``,
plural/singular in messages, and mistyped options and commands answered with the right
help and a suggestion."""

from __future__ import annotations

import pytest
from test_cli import assert_error, run, run_many

import xpnet


def test_layers_none_means_no_hidden_layer_and_zero_is_refused():
    none, zero, zero_eight, empty = run_many(
        ["train", "--layers", "none", "--epochs", "1"],
        ["train", "--layers", "0", "--epochs", "1"],
        ["train", "--layers", "0,8", "--epochs", "1"],
        ["train", "--layers", "", "--epochs", "1"],
    )
    assert none.returncode == 0, none.stderr
    assert "network   2-1  hidden none" in none.stdout
    for proc, given in ((zero, "'0'"), (zero_eight, "'0,8'"), (empty, "''")):
        assert_error(proc, "argument --layers: hidden layer sizes must be positive integers",
                     "for no hidden layer, use 'none'", f"got {given}",
                     "(see 'xpnet train --help')")


def test_activation_count_messages_are_grammatical():
    one, none, three = run_many(
        ["train", "--layers", "4", "--activation", "relu,tanh", "--epochs", "1"],
        ["train", "--layers", "none", "--activation", "relu,tanh", "--epochs", "1"],
        ["train", "--layers", "4,4,4", "--activation", "relu,tanh", "--epochs", "1"],
    )
    assert_error(one, "--activation lists 2 names for 1 hidden layer;")
    assert_error(none, "--activation lists 2 names for 0 hidden layers;")
    assert_error(three, "--activation lists 2 names for 3 hidden layers;")
    with pytest.raises(ValueError, match="activation lists 2 names but the network has 1 "
                       "hidden layer;"):
        xpnet.MLP([2, 4, 1], activation=["relu", "tanh"])
    with pytest.raises(ValueError, match="activation lists 1 name but the network has 2 "
                       "hidden layers;"):
        xpnet.MLP([2, 4, 4, 1], activation=["relu"])


@pytest.mark.parametrize(("args", "fragments"), [
    (["train", "--epocs", "5"],
     ["unrecognized arguments: --epocs 5; did you mean --epochs?",
      "(see 'xpnet train --help')"]),
    (["train", "--epocs=5"], ["did you mean --epochs?", "(see 'xpnet train --help')"]),
    (["evaluate", "m.npz", "--dataset", "moons", "--splt", "test"],
     ["unrecognized arguments: --splt test; did you mean --split?",
      "(see 'xpnet evaluate --help')"]),
    (["gradcheck", "--thresold", "1e-3"],
     ["did you mean --threshold?", "(see 'xpnet gradcheck --help')"]),
    (["train", "--zzzzzz"], ["unrecognized arguments: --zzzzzz (see 'xpnet train --help')"]),
    (["trian"], ["invalid choice: 'trian'", "did you mean 'train'?", "(see 'xpnet --help')"]),
    (["predcit"], ["did you mean 'predict'?"]),
    (["train", "--output", "softmx"],
     ["invalid choice: 'softmx'", "did you mean 'softmax'?", "(see 'xpnet train --help')"]),
])
def test_mistyped_options_and_commands_get_a_suggestion(args, fragments):
    proc = run(*args)
    assert_error(proc, *fragments)
    if not any("did you mean" in fragment for fragment in fragments):
        assert "did you mean" not in proc.stderr  # nothing close: no guess


def test_prefixes_and_valid_commands_are_unaffected():
    proc = run("train", "--epoch", "2", "--quiet")  # argparse's unique-prefix matching
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
