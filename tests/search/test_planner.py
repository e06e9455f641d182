from __future__ import annotations

import pytest

from vecext.search.planner import Capabilities, PlannerSettings, plan, rerank_depth


def test_small_matching_sets_are_scanned_exactly():
    caps = Capabilities(n_rows=1_000_000, code_column="c", hnsw_index="i", iterative_scan=True)
    p = plan(caps, est_matching=1_000, k=10, filtered=True)
    assert p.strategy == "exact" and "1000" in p.reason


def test_broad_filter_uses_the_native_index():
    caps = Capabilities(n_rows=1_000_000, hnsw_index="i", iterative_scan=True)
    assert plan(caps, 1_000_000, 10).strategy == "hnsw"
    p = plan(caps, 600_000, 10, filtered=True)
    assert p.strategy == "hnsw" and "iterative_scan" not in p.params


def test_mid_selectivity_iterates_or_widens():
    caps = Capabilities(n_rows=1_000_000, hnsw_index="i", iterative_scan=True)
    p = plan(caps, 50_000, 10, filtered=True)
    assert p.strategy == "hnsw" and p.params["iterative_scan"] == "strict_order"
    # ef grows as the filter narrows
    q = plan(caps, 200_000, 10, filtered=True)
    assert p.params["ef_search"] >= q.params["ef_search"]
    ivf = Capabilities(
        n_rows=1_000_000, code_column="c", list_column="l", n_lists=1000, calibration={"64": 0.96}
    )
    wide = plan(ivf, 50_000, 10, filtered=True)
    narrow = plan(ivf, 900_000, 10, filtered=False)
    assert wide.strategy == narrow.strategy == "ivf"
    assert wide.params["nprobe"] > narrow.params["nprobe"]


def test_without_indexes_codes_then_exact():
    assert plan(Capabilities(n_rows=10**6, code_column="c"), 10**6, 10).strategy == "compressed"
    assert plan(Capabilities(n_rows=10**6), 10**6, 10).strategy == "exact"


def test_forced_strategy_must_exist():
    with pytest.raises(ValueError, match="needs an HNSW index"):
        plan(Capabilities(n_rows=10), 10, 5, strategy="hnsw")
    with pytest.raises(ValueError, match="unknown strategy"):
        plan(Capabilities(n_rows=10), 10, 5, strategy="magic")


def test_rerank_depth_follows_the_calibration():
    cal = {"1": 0.6, "4": 0.93, "8": 0.97, "16": 0.99}
    assert rerank_depth(10, cal, 0.95, 10) == 80
    assert rerank_depth(10, cal, 0.99, 10) == 160
    assert rerank_depth(10, cal, 0.999, 10) == 160  # best measured
    assert rerank_depth(10, None, 0.95, 10) == 100


def test_explain_says_why():
    p = plan(Capabilities(n_rows=100_000), 100, 10, filtered=True, settings=PlannerSettings())
    text = p.explain()
    assert "strategy: exact" in text and "selectivity 0.1000%" in text


def test_unfiltered_exact_threshold_applies_only_with_an_hnsw_index() -> None:
    s = PlannerSettings(exact_max_rows_unfiltered=2_000)
    with_index = Capabilities(n_rows=5_000, hnsw_index="ix")
    assert plan(with_index, 5_000, 10, settings=s).strategy == "hnsw"
    # a filter keeping as many rows is still scanned exactly (through its btree)
    assert plan(with_index, 5_000, 10, settings=s, filtered=True).strategy == "exact"
    assert plan(Capabilities(n_rows=5_000), 5_000, 10, settings=s).strategy == "exact"
    small = Capabilities(n_rows=1_500, hnsw_index="ix")
    assert plan(small, 1_500, 10, settings=s).strategy == "exact"
    # the default (DuckDB's, and PostgreSQL's unless its backend says otherwise): 20,000
    assert plan(with_index, 5_000, 10).strategy == "exact"


def test_a_filter_on_mirrored_columns_scans_exactly_then_ranks_the_codes() -> None:
    """Catalog 0.6.0: a filter that runs on a code store's mirrored columns plans exact up
    to exact_max_rows_mirrored (default: exact_max_rows, as measured), the code scan above
    it while the filter is selective; without mirrors nothing changes."""
    caps = Capabilities(n_rows=1_000_000, code_column="c", code_kind="binary",
                        hnsw_index="h", iterative_scan=True, filter_in_store=True)  # fmt: skip
    assert plan(caps, 15_000, 10, filtered=True).strategy == "exact"
    lowered = PlannerSettings(exact_max_rows_mirrored=2_000)
    p = plan(caps, 15_000, 10, filtered=True, settings=lowered)
    assert p.strategy == "compressed" and "mirrored" in p.reason
    assert plan(caps, 1_500, 10, filtered=True, settings=lowered).strategy == "exact"
    # above exact_max_rows, or a broad filter: as without mirrors
    assert plan(caps, 600_000, 10, filtered=True, settings=lowered).strategy == "hnsw"
    plain = Capabilities(n_rows=1_000_000, code_column="c", code_kind="binary",
                         hnsw_index="h", iterative_scan=True)  # fmt: skip
    assert plan(plain, 15_000, 10, filtered=True, settings=lowered).strategy == "exact"
    assert (
        plan(caps, 40_000, 10, filtered=True).strategy
        == plan(plain, 40_000, 10, filtered=True).strategy
    )


def test_wide_vectors_rank_mirrored_codes_from_fewer_rows() -> None:
    """TOASTed vectors (> ~2 KB) make the exact scan of a few thousand rows slower than
    ranking their codes on the store (wiki-vital, 768-d): 2,000 rows, unless set."""
    from dataclasses import replace

    wide = Capabilities(n_rows=16_000, code_column="c", code_kind="binary", hnsw_index="h",
                        filter_in_store=True, vector_bytes=4 * 768)  # fmt: skip
    assert plan(wide, 1_500, 10, filtered=True).strategy == "exact"
    assert plan(wide, 2_500, 10, filtered=True).strategy == "compressed"
    narrow = replace(wide, vector_bytes=4 * 384)
    assert plan(narrow, 2_500, 10, filtered=True).strategy == "exact"
    mine = PlannerSettings(exact_max_rows_mirrored=5_000)
    assert plan(wide, 2_500, 10, filtered=True, settings=mine).strategy == "exact"
    # no mirrors: as before
    assert plan(replace(wide, filter_in_store=False), 2_500, 10, filtered=True).strategy == "exact"


def test_an_hnsw_index_that_cannot_reach_the_target_gives_way_to_the_codes() -> None:
    """An index whose calibration stays below the recall target up to the largest
    ef_search allowed (1M x 768 synthetic: pgvector's default build, 0.93 at 1000) is not
    used when codes can be ranked instead; without codes it is, and explain says why."""
    short = {"40": 0.70, "400": 0.90, "1000": 0.93}
    caps = Capabilities(n_rows=10**6, hnsw_index="i", hnsw_calibration=short, code_column="c")
    p = plan(caps, 10**6, 10)
    assert p.strategy == "compressed" and "reaches recall 0.930 at most" in p.reason
    # a lower target it reaches: the index
    assert plan(caps, 10**6, 10, settings=PlannerSettings(recall_target=0.9)).strategy == "hnsw"
    # calibrated only up to ef 400: not known to fall short
    caps_low = Capabilities(
        n_rows=10**6, hnsw_index="i", hnsw_calibration={"40": 0.7, "400": 0.9}, code_column="c"
    )
    assert plan(caps_low, 10**6, 10).strategy == "hnsw"
    # no codes: the index, and the reason says it falls short
    p = plan(Capabilities(n_rows=10**6, hnsw_index="i", hnsw_calibration=short), 10**6, 10)
    assert p.strategy == "hnsw" and "no codes to rank instead" in p.reason
    # an index that reaches it: the index
    good = Capabilities(
        n_rows=10**6, hnsw_index="i", hnsw_calibration={"40": 0.9, "100": 0.97}, code_column="c"
    )
    assert plan(good, 10**6, 10).strategy == "hnsw"
