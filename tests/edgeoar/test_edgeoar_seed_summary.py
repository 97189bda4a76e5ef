"""The seed summary of finished bench runs: mean, spread and worst run per check against a
direct computation, the target's direction deciding which run is worst, and mismatched or
missing runs refused with one line."""

import json

import numpy as np
import pytest

from edgeoar.experiments import seed_summary as ss
from shared.errors import UserError


def _checks(frac, margin):
    return [{"name": "frames", "measured": frac, "target": "<= 0.35", "holds": frac <= 0.35},
            {"name": "margin", "measured": margin, "target": ">= 0.1", "holds": margin >= 0.1}]


def test_seed_checks_against_direct_statistics():
    fracs, margins = [0.344, 0.422, 0.36], [0.114, 0.073, 0.071]
    rows = ss.seed_checks([_checks(f, m) for f, m in zip(fracs, margins)])
    frames, margin = rows
    assert frames["mean"] == pytest.approx(np.mean(fracs))
    assert frames["std"] == pytest.approx(np.std(fracs, ddof=1))
    assert frames["worst"] == max(fracs) and margin["worst"] == min(margins)  # direction
    assert not frames["holds_mean"] and not frames["holds_worst"]
    assert frames["holds_runs"] == 1 and margin["holds_runs"] == 1
    rows = ss.seed_checks([_checks(f, m) for f, m in ((0.30, 0.2), (0.34, 0.12))])
    assert all(r["holds_mean"] and r["holds_worst"] for r in rows)
    assert rows[0]["worst"] == 0.34 and rows[1]["worst"] == 0.12


def test_parse_target_and_bad_runs(tmp_path, capsys):
    assert ss.parse_target("< 1e-05") == ("<", 1e-5)
    with pytest.raises(UserError):
        ss.parse_target("== 3")
    with pytest.raises(UserError):
        ss.seed_checks([_checks(0.3, 0.1), _checks(0.3, 0.1)[:1]])
    for i, f in enumerate((0.30, 0.40)):
        d = tmp_path / f"s{i}"
        d.mkdir()
        rows = [{"arm": "iie_mc", "setting": "in_family", "acc": 0.9, "frac": f}]
        (d / "bench.json").write_text(json.dumps({"checks": _checks(f, 0.1), "rows": rows}))
    assert ss.main(["--runs", str(tmp_path / "s0"), str(tmp_path / "s1"),
                    "--out", str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "seeds.json").read_text())
    assert out["checks"][0]["mean"] == pytest.approx(0.35)
    assert [p["frac"] for p in out["operating_points"]] == [0.30, 0.40]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        ss.run(ss.main, ["--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
