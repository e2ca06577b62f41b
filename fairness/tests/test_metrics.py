import math

import numpy as np
import pytest
import scipy.sparse as sp

from fairness import metrics


@pytest.mark.parametrize(
    ("counts", "bits"),
    [([5], 0.0), ([1, 1], 1.0), ([2, 2, 2, 2], 2.0), ([3, 1], 0.8113), ([0, 4, 0], 0.0), ([], 0.0)],
)
def test_entropy_is_in_bits(counts, bits):
    assert metrics.entropy(counts) == pytest.approx(bits, abs=1e-4)


@pytest.mark.parametrize(
    ("exposure", "expected"),
    [([1, 1, 1, 1], 0.0), ([0, 0, 0, 4], 0.75), ([0, 1], 0.5), ([1, 2, 3], 2 / 9), ([0, 0], 0.0)],
)
def test_gini_of_exposure(exposure, expected):
    assert metrics.gini(exposure) == pytest.approx(expected)


def test_jaccard_and_the_genre_diversity_of_a_list():
    assert metrics.jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert metrics.jaccard(set(), set()) == 1.0
    # pairs: (A,AB) 1-1/2, (A,C) 1, (AB,C) 1 -> 2.5 / 3
    lists = [frozenset("A"), frozenset("AB"), frozenset("C")]
    assert metrics.intra_list_diversity(lists) == pytest.approx(2.5 / 3)
    assert metrics.intra_list_diversity(lists[:1]) is None


def test_the_batched_list_diversity_equals_the_definition():
    genres = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32))
    top = np.array([[0, 1, 2], [0, 0, -1], [3, -1, -1], [1, 2, 3]])

    result = metrics.list_diversities(top, genres, batch=2)

    assert result[0] == pytest.approx(2.5 / 3)
    assert result[1] == 0.0  # the same movie twice: nothing differs
    assert math.isnan(result[2])  # one movie is no list to diversify
    # (AB,C) 1, (AB,{}) 1, (C,{}) 1: a movie without genres differs from every other
    assert result[3] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("values", "expected"), [([0.1, 0.3], 0.2), ([1.0, 2.0, 4.0], 2.0), ([0.5], None), ([0.2, float("nan")], None)]
)
def test_mean_absolute_deviation_averages_every_pair_of_groups(values, expected):
    result = metrics.mean_absolute_deviation(values)

    assert result == (None if expected is None else pytest.approx(expected))


def test_disparity_names_best_and_worst_and_their_distance():
    ndcg = metrics.disparity({"a": 0.30, "b": 0.24, "c": None}, higher_is_better=True)
    rmse = metrics.disparity({"a": 0.90, "b": 1.00}, higher_is_better=False)

    assert (ndcg.best, ndcg.worst) == ("a", "b")
    assert ndcg.difference == pytest.approx(0.06)
    assert ndcg.ratio == pytest.approx(0.8)
    assert ndcg.mad == pytest.approx(0.06)
    assert (rmse.best, rmse.worst) == ("a", "b")
    assert rmse.ratio == pytest.approx(0.9)
    assert metrics.disparity({"a": 1.0}, higher_is_better=True).best is None


def test_group_rmse_and_its_interval_are_known_in_advance():
    # Group a is estimated exactly, group b always one point off: whatever the resample, a's
    # RMSE is 0 and b's is 1, so their intervals are those points exactly.
    truth = np.array([1, 2, 3, 4, 5, 1, 2, 3], dtype=float)
    estimate = np.array([1, 2, 3, 4, 5, 2, 3, 4], dtype=float)
    groups = np.array(list("aaaaabbb"))

    result = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=50, seed=7)

    assert result.groups["a"] == metrics.GroupFigure(0.0, 0.0, 0.0)
    assert result.groups["b"] == metrics.GroupFigure(1.0, 1.0, 1.0)
    assert result.sizes == {"a": 5, "b": 3}
    assert result.overall.value == pytest.approx(math.sqrt(3 / 8))
    overall = result.overall
    assert overall.low is not None
    assert overall.high is not None
    assert overall.low <= overall.value <= overall.high  # type: ignore[operator]


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others():
    rng = np.random.default_rng(0)
    truth, estimate = rng.integers(1, 6, 400).astype(float), rng.normal(3, 1, 400)
    groups = rng.choice(["f", "m"], 400)

    first = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=40, seed=1)
    again = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=40, seed=1)
    other = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=40, seed=2)

    assert first == again
    assert first.groups["f"].low != other.groups["f"].low
    low, value, high = first.groups["f"].low, first.groups["f"].value, first.groups["f"].high
    assert low is not None
    assert value is not None
    assert high is not None
    assert low < value < high


def test_bootstrapping_a_sample_keeps_the_figures_of_every_row():
    rng = np.random.default_rng(1)
    truth, estimate = rng.integers(1, 6, 3000).astype(float), rng.normal(3, 1, 3000)
    groups = rng.choice(["f", "m"], 3000)

    full = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=0, seed=0)
    sampled = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=20, seed=0, max_boot_rows=500)

    assert sampled.groups["f"].value == full.groups["f"].value
    assert full.groups["f"].low is None
    # The interval's spread is the sample's own, placed around the figure of every row.
    rows = np.sort(np.random.default_rng(0).choice(3000, 500, replace=False))
    sample = metrics.grouped_metric(metrics.RMSE, truth[rows], estimate[rows], groups[rows], n_boot=20, seed=0)
    for group in ("f", "m"):
        low, _, high = _known(sampled.groups[group])
        own_low, own_value, own_high = _known(sample.groups[group])
        every = _known(full.groups[group], interval=False)[1]
        assert low == pytest.approx(every - (own_value - own_low))
        assert high == pytest.approx(every + (own_high - own_value))
        assert low < every < high
    low, _, high = _known(sampled.overall)
    assert low < _known(full.overall, interval=False)[1] < high


def _known(figure: metrics.GroupFigure, *, interval: bool = True) -> tuple[float, float, float]:
    """The figure and its bounds, which the test expects to be there."""
    assert figure.value is not None
    if not interval:
        return figure.value, figure.value, figure.value
    assert figure.low is not None
    assert figure.high is not None
    return figure.low, figure.value, figure.high


def test_genre_entropy_by_group_counts_as_the_definition_says_on_random_watches():
    from collections import Counter, defaultdict

    rng = np.random.default_rng(4)
    names = ["Drama", "Comedy", "Horror", "Sci-Fi", "Romance"]
    genres = {movie: list(rng.choice(names, int(rng.integers(0, 4)))) for movie in range(1, 80)}
    watched = {viewer: set(rng.integers(1, 100, int(rng.integers(1, 12))).tolist()) for viewer in range(300)}
    group_of = {viewer: str(rng.choice(["f", "m", "x"])) for viewer in watched}

    # The definition, viewer by viewer: each watched movie's genres once (unknown movies: none).
    together: dict[str, Counter[str]] = defaultdict(Counter)
    for viewer, movies in watched.items():
        counted = Counter(genre for movie in movies for genre in set(genres.get(movie, ())))
        together[group_of[viewer]].update(counted)
        together["everyone"].update(counted)
    expected = {group: round(metrics.entropy(list(c.values())), 4) for group, c in sorted(together.items())}

    assert metrics.genre_entropy_by_group(watched, group_of, genres) == expected


def test_genre_entropy_of_what_each_group_watched_together():
    watched = {1: {10, 11}, 2: {10}, 3: {12}}
    genres = {10: ["Drama"], 11: ["Comedy"], 12: []}  # a movie without genres adds nothing

    by_group = metrics.genre_entropy_by_group(watched, {1: "f", 2: "m", 3: "m"}, genres)

    # Everyone: Drama twice, Comedy once.
    assert by_group == {"everyone": 0.9183, "f": 1.0, "m": 0.0}


def test_ratio_of_sums_is_the_share_over_every_viewers_answers_together():
    # Viewers with 1 of 1 and 0 of 3 answers followed: 1 of 4, not the mean of 1 and 0.
    assert metrics.ratio_of_sums(np.array([1.0, 0.0]), np.array([1.0, 3.0])) == 0.25
    assert math.isnan(metrics.ratio_of_sums(np.array([]), np.array([])))


def test_a_single_row_is_its_own_figure_and_interval():
    # Fairlearn cannot take one row of sensitive features; a day served to one viewer has one.
    figure = metrics.grouped_metric(
        metrics.RATIO_OF_SUMS, np.array([1.0]), np.array([4.0]), np.array(["f"]), n_boot=10, seed=0
    )
    without = metrics.grouped_metric(metrics.RMSE, np.array([3.0]), np.array([4.0]), np.array(["f"]), n_boot=0, seed=0)

    assert figure.overall == figure.groups["f"] == metrics.GroupFigure(0.25, 0.25, 0.25)
    assert figure.sizes == {"f": 1}
    assert without.groups["f"] == metrics.GroupFigure(1.0, None, None)


def test_the_vectorised_bootstrap_gives_fairlearns_own_intervals():
    from fairlearn.metrics import MetricFrame

    rng = np.random.default_rng(3)
    truth, estimate = rng.integers(1, 6, 600).astype(float), rng.normal(3, 1.2, 600)
    groups = rng.choice(["f", "m", "x"], 600, p=[0.5, 0.4, 0.1])

    ours = metrics.grouped_metric(metrics.RMSE, truth, estimate, groups, n_boot=1000, seed=5)
    theirs = MetricFrame(
        metrics=metrics.rmse, y_true=truth, y_pred=estimate, sensitive_features=groups,
        n_boot=1000, ci_quantiles=[0.025, 0.975], random_state=5,
    )  # fmt: skip

    low, high = theirs.by_group_ci
    for group in ("f", "m", "x"):
        assert ours.groups[group].value == pytest.approx(theirs.by_group[group])
        # Two seeded streams of 1,000 resamples: the same interval within a few hundredths.
        assert ours.groups[group].low == pytest.approx(low[group], abs=0.03)
        assert ours.groups[group].high == pytest.approx(high[group], abs=0.03)
    assert ours.overall.low == pytest.approx(theirs.overall_ci[0], abs=0.02)


@pytest.mark.parametrize("metric", [metrics.RATIO_OF_SUMS, metrics.RMSE, metrics.MEAN_OF_TRUTH])
def test_repeated_rows_given_to_metricframe_once_with_their_weight_give_every_rows_figures(metric):
    from fairlearn.metrics import MetricFrame

    # Per-viewer counts, as the served report has them: 5,000 viewers, a few dozen distinct rows.
    rng = np.random.default_rng(11)
    answered = rng.integers(1, 6, 5000).astype(float)
    followed = rng.binomial(answered.astype(int), 0.3).astype(float)
    groups = rng.choice(["f", "m", "x"], 5000, p=[0.5, 0.4, 0.1])
    assert len(np.unique(np.column_stack([followed, answered]), axis=0)) < 100

    ours = metrics.grouped_metric(metric, followed, answered, groups, n_boot=0, seed=0)
    theirs = MetricFrame(metrics=metric.function, y_true=followed, y_pred=answered, sensitive_features=groups)

    assert ours.overall.value == pytest.approx(theirs.overall)
    for group in ("f", "m", "x"):
        assert ours.groups[group].value == pytest.approx(theirs.by_group[group])
    assert ours.sizes == {name: int((groups == name).sum()) for name in ("f", "m", "x")}


def _noise_report(seed: int, *, groups: int = 21, viewers: int = 3000) -> tuple[int, int]:
    """Flags raised on per-viewer NDCG drawn independently of the viewer's group: every
    difference is noise. (corrected flags, uncorrected point flags) over the groups' pairs."""
    rng = np.random.default_rng(seed)
    ndcg = rng.beta(0.5, 2.0, viewers)
    labels = rng.choice([f"g{index:02d}" for index in range(groups)], viewers)
    grouped = metrics.grouped_metric(metrics.MEAN_OF_TRUTH, ndcg, ndcg, labels, n_boot=100, seed=seed)
    values = {group: figure.value for group, figure in grouped.groups.items()}
    confidence = metrics.corrected_confidence(0.05, metrics.pairs(groups))
    gap = metrics.disparity(values, higher_is_better=True, resamples=grouped.resamples, confidence=confidence)
    return int(gap.ratio_below(0.8)), int(gap.ratio is not None and gap.ratio < 0.8)


def test_on_noise_the_corrected_intervals_flag_no_more_than_the_stated_false_alarm_rate():
    # 21 groups of about 140 viewers: the best and the worst of them are apart by chance alone.
    runs = [_noise_report(seed) for seed in range(20)]

    corrected = sum(flag for flag, _ in runs)
    uncorrected = sum(flag for _, flag in runs)

    assert uncorrected >= 10  # the point figures alone would flag most of these reports
    assert corrected <= 1  # 5 % of 20 reports, one at most


def test_a_real_gap_is_flagged_with_an_interval_that_excludes_the_bound():
    rng = np.random.default_rng(4)
    labels = rng.choice(["a", "b", "c"], 3000)
    ndcg = rng.beta(0.5, 2.0, 3000) * np.where(labels == "c", 0.5, 1.0)  # c gets half the quality
    grouped = metrics.grouped_metric(metrics.MEAN_OF_TRUTH, ndcg, ndcg, labels, n_boot=100, seed=0)

    gap = metrics.disparity(
        {group: figure.value for group, figure in grouped.groups.items()},
        higher_is_better=True,
        resamples=grouped.resamples,
        confidence=metrics.corrected_confidence(0.05, metrics.pairs(3)),
    )

    assert gap.worst == "c"
    assert gap.ratio_low is not None
    assert gap.ratio_high is not None
    assert gap.ratio_low < gap.ratio < gap.ratio_high < 0.8  # type: ignore[operator]
    assert gap.ratio_below(0.8)
    assert "interval" in gap.interval_text("ratio")


def test_groups_all_at_zero_have_no_best_or_worst():
    gap = metrics.disparity({"a": 0.0, "b": 0.0}, higher_is_better=True)

    assert gap.best is None
    assert gap.ratio is None
    assert gap.why_not == "every group compared is at 0"
    assert not gap.ratio_below(0.8)
