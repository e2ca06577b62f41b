from recommender.gate import Bounds, Figures, gate_checks, gate_passed, gate_reasons

BOUNDS = Bounds(max_rmse=1.0, rmse_tolerance=0.02, ndcg_tolerance=0.01)


def _checks(candidate, stable=None):
    return gate_checks(candidate=candidate, stable=stable, bounds=BOUNDS)


def test_a_candidate_below_popularity_does_not_pass():
    checks = _checks(Figures(rmse=0.9, ndcg=0.098, popularity_ndcg=0.121))

    assert not gate_passed(checks)
    assert gate_reasons(checks) == ["NDCG@10 0.0980 is below the most-popular list's 0.1210 on the same split"]


def test_popularity_itself_passes_the_popularity_check():
    checks = _checks(Figures(rmse=0.9, ndcg=0.121, popularity_ndcg=0.121))

    assert gate_passed(checks)


def test_a_missing_ndcg_fails_its_row_and_the_verdict_alike():
    checks = _checks(Figures(rmse=0.9, ndcg=None, popularity_ndcg=None), Figures(rmse=0.9, ndcg=0.2, version=1))

    assert [(check.check, check.passed) for check in checks] == [
        ("RMSE below the bound", True),
        ("NDCG@10 not below popularity's", False),
        ("RMSE not worse than stable v1", True),
        ("NDCG@10 not worse than stable v1", False),
    ]
    assert gate_passed(checks) is False


def test_the_rows_hold_each_figure_and_bound_against_stable():
    checks = _checks(Figures(rmse=0.95, ndcg=0.20, popularity_ndcg=0.1), Figures(rmse=0.90, ndcg=0.205, version=1))

    assert [(check.check, check.figure, check.bound, check.passed) for check in checks] == [
        ("RMSE below the bound", 0.95, "< 1.0", True),
        ("NDCG@10 not below popularity's", 0.20, ">= 0.1000", True),
        ("RMSE not worse than stable v1", 0.95, "<= 0.9200 (0.9000 + 0.02)", False),
        ("NDCG@10 not worse than stable v1", 0.20, ">= 0.1950 (0.2050 - 0.01)", True),
    ]
    assert gate_reasons(checks) == ["RMSE 0.9500 is worse than stable v1's 0.9000 by more than 0.02"]


def test_figures_are_read_from_a_versions_metrics():
    figures = Figures.of_metrics({"rmse": 0.9, "ndcg@10": 0.3, "popularity": {"ndcg@10": 0.2}}, version=4)

    assert figures == Figures(rmse=0.9, ndcg=0.3, popularity_ndcg=0.2, version=4)
