"""`experiments.weak_stratum`: its variants parse to validated configs (a bad one is a one-line
exit 2 before any output), and a tiny run scores every variant on the same recordings."""

import json

import pytest

from shared.cli import run
from shared.errors import ConfigError
from twscardio.experiments.weak_stratum import main, variants


def test_variants_parse_and_refuse_bad_ones():
    cfgs = variants(["cb4:fusion.cross_bud=4"])
    assert list(cfgs) == ["shipped", "cb4"]
    assert cfgs["cb4"].fusion.cross_bud == 4.0 and cfgs["shipped"].fusion.cross_bud == 2.0
    for bad in ("cb4", "shipped:fusion.cross_bud=4", "x:fusion.nope=1",
                "x:fusion.cross_bud_hp_hz=50"):
        with pytest.raises(ConfigError):
            variants([bad])


def test_bad_variant_exits_2_before_any_output(tmp_path):
    out = tmp_path / "ws.json"
    with pytest.raises(SystemExit) as e:
        run(main, ["--variant", "x:fusion.nope=1", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()


def test_tiny_run_scores_every_variant_on_the_same_recordings(tmp_path):
    out = tmp_path / "ws.json"
    main(["--variant", "cb0:fusion.cross_bud=0", "--subjects", "2", "--first", "9000",
          "--weak", "1", "--weak-first", "9100", "--duration", "10", "--no-beat", "1",
          "--out", str(out)])
    d = json.loads(out.read_text())
    moving = [r for r in d["rows"] if r["setting"] == "25Hz loss20% motion3"]
    assert [(r["stratum"], r["subject"]) for r in moving] == [("family", 9000)]  # first half
    assert {(r["stratum"], r["subject"]) for r in d["rows"]} == {
        ("family", 9000), ("family", 9001), ("weak", 9100)}
    assert all({"shipped", "cb0"} <= set(r) for r in d["rows"])
    assert {t["variant"] for t in d["summary"]} == {"shipped", "cb0"}
    assert all(t["d_ibi_paired"] == 0 for t in d["summary"] if t["variant"] == "shipped")
    assert set(d["no_beat_rejection"]) == {f"{k} {s}" for k in ("noise", "no_contact")
                                           for s in ("50Hz loss10%", "25Hz loss20%")}
