"""pea-compare: the plan, the table arithmetic, real (tiny) runs, resuming a killed comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pea_deploy.cli.compare import main
from pea_deploy.compare import Setting, build_table, plan_settings, run_comparison, to_markdown
from pea_deploy.compare.runner import RunResult
from pea_deploy.errors import ConfigError


def test_plan_is_the_papers_table(tiny_recipe):
    settings = plan_settings(tiny_recipe, ("gelu", "mish"), ("weighted", "stochastic"), (2, 3))
    labels = [s.label for s in settings]
    assert labels[0] == "ReLU baseline"
    assert "gelu only (upper limit)" in labels and "mish only (upper limit)" in labels
    assert sum(s.mode == "pea" for s in settings) == 2 * 2 * 2
    assert len({s.slug for s in settings}) == len(settings)
    o = Setting("pea", "mish", "stochastic", 2.0).overrides(seed=1)
    assert o == {"pea.mode": "pea", "train.seed": 1, "pea.act": "mish", "pea.variant": "stochastic",
                 "pea.transition_end": 2.0}
    with pytest.raises(ConfigError, match="transition end 9"):
        plan_settings(tiny_recipe, ("gelu",), ("weighted",), (9,))
    with pytest.raises(ConfigError, match="unknown activation 'gleu'"):
        plan_settings(tiny_recipe, ("gleu",))


def test_table_arithmetic():
    def res(setting, *tops):
        return [RunResult(setting, i, t, 1.0, Path("."), False) for i, t in enumerate(tops)]

    base, upper = Setting("relu"), Setting("act", "gelu")
    w, s = Setting("pea", "gelu", "weighted", 3.0), Setting("pea", "gelu", "stochastic", 3.0)
    table = build_table(res(base, 80, 82) + res(upper, 86, 86) + res(w, 82, 84) + res(s, 81, 81))
    assert table.baseline.mean == 81 and table.best_pea.label == w.label
    assert table.best_pea.std == pytest.approx(1.4142, abs=1e-4)
    assert table.gap_closed == pytest.approx((83 - 81) / (86 - 81))
    md = to_markdown(table)
    assert "it beats the ReLU baseline (81.00 %), +2.00 points" in md and "closes 40 %" in md
    worse = build_table(res(base, 80) + res(upper, 86) + res(w, 79))
    assert "does not beat" in to_markdown(worse)


def test_real_runs_resume_after_a_kill(tiny_recipe, tmp_path):
    recipe = tiny_recipe.with_overrides({"model.width": 0.125})
    settings = plan_settings(recipe, ("gelu",), ("weighted",))
    logs = []
    first = run_comparison(recipe, tmp_path, settings, seeds=2, log=logs.append)
    assert len(first) == 6 and all(0 < r.score <= 100 for r in first)
    assert sum("training" in m for m in logs) == 6
    for r in first:  # the paper's score: the best epoch in final form (PEA: the final phase only)
        summary = json.loads((r.run_dir / "summary.json").read_text())
        assert r.score == summary["best_val_top1"] and r.best_epoch == summary["best_epoch"]
        assert r.best_epoch == 3 if r.setting.mode == "pea" else r.best_epoch in (1, 2, 3)
    # Simulate a comparison killed in its last run: the checkpoint is there, the summary is not.
    killed = tmp_path / "runs" / settings[-1].slug / "seed1"
    (killed / "summary.json").unlink()
    logs.clear()
    again = run_comparison(recipe, tmp_path, settings, seeds=2, log=logs.append)
    assert sum("finished earlier" in m for m in logs) == 5
    assert sum("resuming" in m for m in logs) == 1 and not any(": training" in m for m in logs)
    assert [r.score for r in again] == [r.score for r in first]
    other = recipe.with_overrides({"train.epochs": 4})
    with pytest.raises(ConfigError, match="different recipe"):
        run_comparison(other, tmp_path, settings, seeds=2)


def test_cli_writes_table_csv_and_chart(tmp_path):
    out = tmp_path / "cmp"
    r = CliRunner().invoke(main, ["--epochs", "2", "--initial-epochs", "0", "--transition-ends", "1",
                                  "--width", "0.125", "--seeds", "2", "--acts", "swish", "--variants", "stochastic",
                                  "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("| setting | best top-1 % (mean ± std)")
    assert "[default: 5]" in CliRunner().invoke(main, ["--help"]).output  # the paper averages 5 runs
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [row["slug"] for row in rows] == ["relu", "act-swish", "pea-stochastic-swish-t1"]
    assert all(row["runs"] == "2" for row in rows)
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 6
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "comparison.json").read_text())["seeds"] == 2
    bad = CliRunner().invoke(main, ["--act", "gelu", "--out", str(out)])
    assert bad.exit_code == 2 and "set per run by pea-compare" in bad.stderr
