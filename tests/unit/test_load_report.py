"""The benchmarks' shared ending: one flag set, targets judged only when the run is large
enough, exit 1 on a missed target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from load import __main__ as load_main
from load.cli import build_parser
from load.report import finish, target


def test_every_benchmark_takes_out_and_plot() -> None:
    parser = build_parser(load_main.COMMANDS, None)
    for name in load_main.COMMANDS:
        args = parser.parse_args([name, "--out", "x.json", "--plot", "x.png"])
        assert (args.out, args.plot) == ("x.json", "x.png")
        assert build_parser(load_main.COMMANDS, None).parse_args([name]).out == (
            f"load/results/{name}.json"
        )


def test_a_target_on_a_run_too_small_is_not_judged_and_says_why() -> None:
    small = target("keys/s", 10, ">=", 5_000, size=3_000, min_size=20_000, unit="keys")
    assert small["met"] is None and small["missed_by_factor"] is None
    assert small["note"] == ("run too small for this target to mean anything (3,000 keys < 20,000)")
    large = target("keys/s", 10, ">=", 5_000, size=30_000, min_size=20_000, unit="keys")
    assert large["met"] is False and "note" not in large


@pytest.mark.parametrize(
    ("targets", "status"),
    [
        ([target("a", 1, ">=", 2)], 1),
        ([target("a", 3, ">=", 2), target("b", 1, "<=", 2)], 0),
        ([target("a", 1, ">=", 2, size=1, min_size=10)], 0),
        ([], 0),
    ],
)
def test_finish_writes_the_results_and_exits_1_on_a_missed_target(
    tmp_path: Path, targets: list[dict[str, object]], status: int
) -> None:
    out = tmp_path / "r" / "x.json"
    args = argparse.Namespace(out=str(out), plot=None)
    assert finish(args, {"results": [], "targets": targets}) == status
    assert json.loads(out.read_text())["targets"] == targets


def test_a_plot_asked_of_a_benchmark_that_draws_none_is_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(out=None, plot=str(tmp_path / "x.png"))
    assert finish(args, {"targets": []}) == 0
    assert "draws no plot" in capsys.readouterr().err
