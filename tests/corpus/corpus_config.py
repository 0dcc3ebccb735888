"""Corpus cases of configurations, output folders, memory and ``validate``: each a broken
configuration (or command line) with the outcome expected (exit 2 naming the dotted key, or
exit 3 with the number for memory); ``corpus_cases.all_cases`` adds these cases.
"""

from __future__ import annotations

from pathlib import Path

from corpus_cases import Case, chain, conf, error, inv_dir


def _foreign_out(c: dict, d: Path, fx: Path) -> None:
    (d / "out").mkdir()
    (d / "out" / "thesis.tex").write_text("precious", encoding="utf-8")


def _out_is_file(c: dict, d: Path, fx: Path) -> None:
    (d / "out").write_text("not a folder", encoding="utf-8")


def config_cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    s = "synth"
    for key, value, frag in (
        ("domain.nx", 1, "domain.nx"),
        ("domain.nx", "ten", "domain.nx"),
        ("domain.nx", 5000, "domain.nx"),
        ("domain.resolution_m", -1000.0, "domain.resolution_m"),
        ("domain.resolution_m", 0.0, "domain.resolution_m"),
        ("domain.center_lat", 95.0, "domain.center_lat"),
        ("domain.center_lon", 200.0, "domain.center_lon"),
        ("domain.colour", "blue", "domain.colour"),
        ("period.start", "2024-13-45", "period.start"),
        ("period.end", "2024-06-01T00:00:00", "period"),
        ("period.step", "fortnightly", "period.step"),
        ("period.end", 0, "period"),  # 1970 with a UTC offset: once a raw TypeError
        ("period.step", "-1D", "period.step"),
        ("period.step", "7h", "period"),
        ("prior.relative_std", -0.5, "prior.relative_std"),
        ("prior.relative_std", 0.0, "prior.relative_std"),
        ("prior.floor_std", -1.0, "prior.floor_std"),
        ("inversion.method", "magic", "inversion.method"),
        ("inversion.spatial_length_km", -4.0, "inversion.spatial_length_km"),
        ("inversion.temporal_length_h", 0.0, "inversion.temporal_length_h"),
        ("inversion.spatial_kind", "triangular", "inversion.spatial_kind"),
        ("inversion.memory_budget_gib", -1.0, "inversion.memory_budget_gib"),
        ("inversion.cg.tol", 2.0, "inversion.cg.tol"),
        ("inversion.cg.rank", "most", "inversion.cg.rank"),
        ("background.method", "guess", "background.method"),
        ("background.offsets.std_ppm", -1.0, "background.offsets.std_ppm"),
        ("background.offsets.by", "planet", "background.offsets.by"),
        ("synthetic.n_towers", -3, "synthetic.n_towers"),
        ("synthetic.seed", "abc", "synthetic.seed"),
        ("synthetic.truth.prior_error_scale", -1.0, "synthetic.truth.prior_error_scale"),
        ("output.figures", "maybe", "output.figures"),
        ("batch.window", "soon", "batch.window"),
        ("batch.window", "0D", "batch.window"),
        ("batch.overlap", "-1D", "batch.overlap"),
        ("batch.retries", -1, "batch.retries"),
        ("batch.cluster.kind", "cloud", "batch.cluster.kind"),
        ("batch.cluster.kind", "address", "batch.cluster"),
        ("qc.bounds_ppm", {"tower": [500, 300]}, "qc.bounds_ppm"),
        ("qc.bounds_ppm", {"balloon": [300, 500]}, "qc.bounds_ppm"),
        ("qc.max_error_ppm", 0.0, "qc.max_error_ppm"),
        ("inversion.cg.local_halo", [5], "inversion.cg.local_halo"),
        ("inversion.cg.local_tile", [0, 2], "inversion.cg.local_tile"),
        ("transport.model", "teleport", "transport.model"),
        ("transport.subcell", 0, "transport.subcell"),
        ("transport.time_tolerance", "a while", "transport.time_tolerance"),
        ("observation_errors.transport", -1.0, "observation_errors"),
        ("unknown_section", {"a": 1}, "unknown_section"),
        ("domain", None, "domain"),
        ("period", None, "period"),
    ):
        add(Case(f"config_{key}_{value}".replace(" ", "_"), s, conf(key, value), error(2, frag)))
    add(Case("config_synthetic_and_observations", s,
             conf("observations", [{"path": "x.nc"}]), error(2, "observations")))  # fmt: skip
    add(Case("config_synthetic_lonlat_domain", s,
             conf("domain", {"bounds": [8, 47, 9, 48], "resolution_deg": 0.1}),
             error(2, "domain")))  # fmt: skip
    add(Case("config_separable_kernel_lonlat_domain", "stilt",
             conf("inversion.spatial_kind", "separable_exponential"),
             error(2, "inversion.spatial_kind")))  # fmt: skip
    add(Case("config_local_std_lonlat_domain", "stilt", conf("inversion.cg.std", "local"),
             error(2, "inversion.cg.std")))  # fmt: skip
    add(Case("config_real_without_met", "tower", conf("transport.met", None),
             error(2, "transport.met")))  # fmt: skip
    add(Case("config_real_without_inventories", "tower", conf("prior.inventories", []),
             error(2, "prior.inventories")))  # fmt: skip
    add(
        Case(
            "config_lonlat_bounds_inverted",
            "stilt",
            conf("domain.bounds", [-111.8, 40.4, -112.2, 40.8]),
            error(2, "domain"),
        )
    )
    add(Case("config_top_level_list", s, lambda c, d, fx: None, error(2, "mapping"),
             args=("--raw", "- a\n- b\n")))  # fmt: skip
    add(Case("config_yaml_syntax", s, lambda c, d, fx: None, error(2, "YAML"),
             args=("--raw", "domain: {nx: [1, 2\n")))  # fmt: skip
    add(Case("config_empty_file", s, lambda c, d, fx: None, error(2, "mapping"),
             args=("--raw", "")))  # fmt: skip
    add(Case("set_malformed_key", s, lambda c, d, fx: None, error(2, "--set"),
             args=("--set", "domain..nx=3")))  # fmt: skip
    add(Case("set_no_equals", s, lambda c, d, fx: None, error(2, "--set"),
             args=("--set", "domain.nx")))  # fmt: skip
    add(Case("set_bad_yaml", s, lambda c, d, fx: None, error(2, "--set"),
             args=("--set", "domain.nx=[1,")))  # fmt: skip
    add(Case("set_index_out_of_range", "tower", lambda c, d, fx: None, error(2, "--set"),
             args=("--set", "observations[5].error_ppm=1")))  # fmt: skip
    # output folders
    add(Case("output_is_a_file", s, _out_is_file, error(2, "not a folder")))
    add(Case("output_holds_foreign_files", s, _foreign_out, error(2, "thesis.tex")))
    add(Case("batch_output_is_a_file", s, _out_is_file, error(2, "not a folder"),
             command="batch"))  # fmt: skip
    add(Case("batch_window_not_multiple_of_step", s,
             chain(conf("batch.window", "36h"), conf("batch.cluster.processes", False)),
             error(2, "batch.window"), command="batch"))  # fmt: skip
    add(Case("batch_slurm_without_jobqueue", s, conf("batch.cluster.kind", "slurm"),
             error(2, "dask-jobqueue"), command="batch"))  # fmt: skip
    # memory: estimated and refused before the work, with the number
    add(Case("memory_huge_grid_10m", s,
             chain(conf("domain.nx", 2000), conf("domain.ny", 2000), conf("domain.resolution_m", 10.0),
                   conf("period.end", "2024-06-10T00:00:00"), conf("period.step", "6h")),
             error(3, "GiB")))  # fmt: skip
    add(Case("memory_budget_tiny", s, conf("inversion.memory_budget_gib", 1e-6), error(3, "GiB")))
    add(Case("memory_budget_tiny_cg", s,
             chain(conf("inversion.memory_budget_gib", 1e-6), conf("inversion.method", "cg")),
             error(3, "GiB")))  # fmt: skip
    # validate refuses what run would refuse on its files
    add(Case("validate_inventory_directory", "tower", inv_dir,
             error(2, "prior.inventories[0].path"), command="validate"))  # fmt: skip
    add(Case("validate_missing_obs", "tower", conf("observations[0].path", "/nonexistent.nc"),
             error(2, "observations[0].path"), command="validate"))  # fmt: skip
    return out
