"""ollie.experiments.hop_rate: the Wilson interval against its defining inequality, per-arm
success counts and paired differences on hand-made rows, the determinism comparison, bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ollie.experiments.hop_rate import (
    Z95,
    compare,
    load_rows,
    main,
    offline_scores,
    summarise,
    wilson,
)
from shared.errors import DataError


@pytest.mark.parametrize("k,n", [(0, 16), (3, 16), (8, 16), (16, 16), (1, 3), (2, 5)])
def test_wilson_is_the_set_where_the_score_test_accepts(k, n):
    # the Wilson interval = {p : |k/n - p| <= z sqrt(p (1 - p) / n)}; found here on a fine grid
    grid = np.linspace(0, 1, 200_001)
    inside = grid[np.abs(k / n - grid) <= Z95 * np.sqrt(grid * (1 - grid) / n)]
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(inside.min(), abs=1e-5)
    assert hi == pytest.approx(inside.max(), abs=1e-5)


def test_wilson_closed_forms_and_symmetry():
    n = 16
    assert wilson(0, n) == (0.0, pytest.approx(Z95**2 / (n + Z95**2)))
    for k in range(n + 1):
        lo, hi = wilson(k, n)
        lo2, hi2 = wilson(n - k, n)
        assert (lo, hi) == (pytest.approx(1 - hi2), pytest.approx(1 - lo2))
    with pytest.raises(ValueError):
        wilson(3, 2)


def rows(setting, arm, scores, first=0):
    return [{"setting": setting, "seed": first + i, "arm": arm, "offline_score": s}
            for i, s in enumerate(scores)]


def test_counts_rates_and_paired_differences():
    data = (rows("hopper", "ollie", [100.0, 20.0, 90.0, 85.0])
            + rows("hopper", "bc_expert", [95.0, 99.0, 10.0])
            + rows("hopper", "gail", [1.0, 2.0, 3.0, 4.0]))  # online-only: not an offline arm
    out = summarise(offline_scores(data), 80.0)["hopper"]
    assert set(out["arms"]) == {"ollie", "bc_expert"}
    o = out["arms"]["ollie"]
    assert (o["seeds"], o["successes"], o["rate"]) == (4, 3, 0.75)
    assert o["wilson95"] == list(wilson(3, 4))
    assert o["mean"] == pytest.approx(73.75) and o["median"] == pytest.approx(87.5)
    pair = out["paired"]["ollie - bc_expert"]  # seeds 0-2: +5, -79, +80
    assert pair == {"seeds": 3, "ollie_at_least": 2, "mean_difference": pytest.approx(2.0)}


def test_dwbc_is_naive_gails_start_and_later_files_replace_rows():
    data = (rows("halfcheetah", "naive_gail", [40.0, 50.0])
            + rows("halfcheetah", "naive_gail", [7.0]))
    assert offline_scores(data) == {"halfcheetah": {"dwbc": {0: 7.0, 1: 50.0}}}


def test_reference_comparison_counts_identical_rows():
    a = offline_scores(rows("hopper", "ollie", [100.0, 20.0, 90.0]))
    b = offline_scores(rows("hopper", "ollie", [100.0, 20.5]) + rows("hopper", "bc_all", [3.0]))
    assert compare(a, b) == {"rows": 2, "identical": 1, "max_abs_difference": 0.5}


def test_main_writes_json(tmp_path, capsys):
    f = tmp_path / "rows.json"
    f.write_text(json.dumps(rows("hopper", "ollie", [100.0, 5.0]) + rows("hopper", "dwbc", [1.0])))
    out = tmp_path / "hop.json"
    assert main([str(f), "--threshold", "50", "--reference", str(f), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["settings"]["hopper"]["arms"]["ollie"]["successes"] == 1
    assert res["reference"] == {"rows": 2, "identical": 2, "max_abs_difference": 0.0}
    assert json.loads(capsys.readouterr().out) == res


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not a readable rows.json"),
    ('{"a": 1}', "expected a list of rows"),
    ('[{"setting": "hopper", "arm": "ollie"}]', "row 0 lacks setting / seed / arm"),
    ('[{"setting": "hopper", "seed": 0, "arm": "ollie", "offline_score": "x"}]', "not a finite"),
    ('[{"setting": "hopper", "seed": 0, "arm": "ollie", "offline_score": NaN}]', "not a finite"),
    ("\udcff", "not a readable rows.json"),
    ("[" * 100_000, "not a readable rows.json"),  # found by the fuzz target: RecursionError
    ("[1" + "0" * 5000 + "]", "not a readable rows.json"),  # int above Python's digit limit
])
def test_bad_files_give_one_data_error(tmp_path, text, needle):
    f = tmp_path / "rows.json"
    f.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(DataError, match=needle):
        load_rows([str(f)])


def test_cli_exit_code_2_and_one_line(tmp_path):
    f = tmp_path / "rows.json"
    f.write_text(json.dumps(rows("hopper", "gail", [1.0])))  # no offline arm
    r = subprocess.run([sys.executable, "-m", "ollie.experiments.hop_rate", str(f)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no offline scores" in r.stderr
