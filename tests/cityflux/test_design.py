"""Network design: each greedy step's std equals a full re-solve of the inversion with the
chosen candidates added (with new background offsets for new sites), the greedy ranking equals
the exhaustive one on a small case, and `cityflux design` writes its table and map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cityflux.cli import main
from cityflux.metrology import rank_candidates, run_design
from inversion import LinearProblem, solve
from inversion.covariance import BlockDiagonalCovariance, DenseCovariance, DiagonalCovariance

OSSE_SMALL = Path(__file__).resolve().parents[2] / "examples" / "osse_small.yaml"

CANDIDATES = (
    "design.candidates=["
    "{name: T-east, kind: tower, lon: 8.60, lat: 47.375, alt: 60, error_ppm: 1.0, transport_ppm: 0.7},"
    "{name: T-west, kind: tower, lon: 8.50, lat: 47.370, alt: 60, error_ppm: 1.0, transport_ppm: 0.7},"
    "{name: chord-1, kind: lidar_path, lon: 8.53, lat: 47.36, alt: 60, lon_end: 8.57, lat_end: 47.38,"
    " alt_end: 120, error_ppm: 0.8, transport_ppm: 0.4},"
    "{name: snapshot-1, kind: column, lon: 8.55, lat: 47.37, time: '2024-06-05T11:30:00',"
    " size_km: 8, spacing_km: 2, error_ppm: 0.6, transport_ppm: 0.3}]"
)


def _resolve_std(result, cands, picks, row, offset_std):
    """Std of the target after a full obs-space solve with the candidates ``picks`` added."""
    case = result.case
    labels = sorted({lab for j in picks if cands[j].new_offsets is not None
                     for lab in cands[j].new_offsets if lab})  # fmt: skip
    nl = len(labels)
    rows = [sp.hstack([case.H, sp.csr_array((case.y.size, nl))], format="csr")]
    for j in picks:
        c = cands[j]
        extra = np.zeros((c.H.shape[0], nl))
        if c.new_offsets is not None:
            for i, lab in enumerate(c.new_offsets):
                if lab:
                    extra[i, labels.index(lab)] = 1.0
        rows.append(sp.hstack([c.H, sp.csr_array(extra)], format="csr"))
    H = sp.vstack(rows, format="csr")
    B = case.B if nl == 0 else BlockDiagonalCovariance(
        [case.B, DiagonalCovariance(np.full(nl, offset_std**2))]
    )  # fmt: skip
    R = BlockDiagonalCovariance([case.R] + [DenseCovariance(cands[j].R) for j in picks])
    x0 = np.concatenate([case.x_prior, np.zeros(nl)])
    post = solve(LinearProblem(H=H, x_prior=x0, y=np.zeros(H.shape[0]), B=B, R=R), "obs-space")
    a = np.concatenate([case.weights[[row]].toarray()[0], np.zeros(nl)])
    return post.aggregate(a)[1]


@pytest.fixture(scope="module", params=["kind", "site"])
def design(request):
    from cityflux.config import load_config

    cfg = load_config(OSSE_SMALL, [CANDIDATES, f"background.offsets.by={request.param}"])
    result, res, cands = run_design(cfg)
    return cfg, result, res, cands


def test_each_greedy_step_equals_a_full_resolve(design):
    cfg, result, res, cands = design
    row = res.target["row"]
    names = [c.name for c in cands]
    assert res.table["rank"].tolist() == [1, 2, 3, 4]
    assert sorted(res.table["candidate"]) == sorted(names)
    std0 = _resolve_std(result, cands, [], row, cfg.background.offsets.std_ppm)
    assert res.current_std == pytest.approx(std0, rel=1e-9)
    assert res.current_std == pytest.approx(result.totals["posterior_std"].iloc[row], rel=1e-9)
    picks = []
    for r in res.table.itertuples():
        picks.append(names.index(r.candidate))
        ref = _resolve_std(result, cands, picks, row, cfg.background.offsets.std_ppm)
        assert r.std_after_t == pytest.approx(ref, rel=1e-8)
        # alone
        alone = _resolve_std(result, cands, [picks[-1]], row, cfg.background.offsets.std_ppm)
        assert r.std_alone_t == pytest.approx(alone, rel=1e-8)
    assert (np.diff(res.table["std_after_t"]) <= 1e-9 * res.current_std).all()
    if cfg.background.offsets.by == "site":  # new sites bring new offsets
        assert any(c.new_offsets is not None and (c.new_offsets != "").any() for c in cands)


def test_greedy_ranking_equals_the_exhaustive_one(design):
    cfg, result, res, cands = design
    row = res.target["row"]
    ex = rank_candidates(
        result.posterior, result.case.weights[[row]], cands,
        offset_std_ppm=cfg.background.offsets.std_ppm, method="exhaustive",
    )  # fmt: skip
    greedy = res.table["candidate"].tolist()
    for r in ex.table.itertuples():
        best = set(r.candidate.split("+"))
        assert best == set(greedy[: r.rank])
        assert r.std_after_t == pytest.approx(res.table["std_after_t"].iloc[r.rank - 1], rel=1e-10)


def test_design_cli_writes_table_and_map(tmp_path):
    out = tmp_path / "design"
    assert main(["design", str(OSSE_SMALL), "--out", str(out), "--set", CANDIDATES,
                 "--set", "design.max_selected=2"]) == 0  # fmt: skip
    table = pd.read_csv(out / "design.csv")
    assert table["rank"].tolist() == [1, 2]
    assert (table["target_region"] == "city").all()
    assert (out / "design_map.png").stat().st_size > 10_000
    pos = pd.read_csv(out / "design_candidates.csv")
    assert set(pos["kind"]) == {"tower", "lidar_path", "column"}
    assert main(["design", str(OSSE_SMALL), "--out", str(out)]) == 2  # no design section


def test_design_config_errors(make_small_config):
    from cityflux.config import ConfigError

    with pytest.raises(ConfigError, match="needs"):
        make_small_config("design.candidates=[{name: a, kind: tower}]")
    with pytest.raises(ConfigError, match="unique"):
        make_small_config(
            "design.candidates=[{name: a, kind: tower, lon: 8.5, lat: 47.3},"
            "{name: a, kind: tower, lon: 8.5, lat: 47.3}]"
        )
