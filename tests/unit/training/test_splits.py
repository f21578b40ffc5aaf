"""The out-of-time split: by cutoff, never by row; no test-period row reaches training."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.model.synthetic_snapshots import FEATURES, WEEK, snapshot_stack
from training.data import data_hash, feature_matrix, split_by_time, split_cutoffs


@pytest.fixture(scope="module")
def snapshots() -> pl.DataFrame:
    return snapshot_stack(visitors=200, cutoffs=5)


def test_latest_cutoff_is_test_and_the_one_before_is_validation(snapshots: pl.DataFrame) -> None:
    split = split_by_time(snapshots, FEATURES)
    cutoffs = sorted(snapshots["as_of"].unique().to_list())
    assert set(split.test.as_of.tolist()) == {np.datetime64(cutoffs[-1].replace(tzinfo=None))}
    assert set(split.validation.as_of.tolist()) == {np.datetime64(cutoffs[-2].replace(tzinfo=None))}
    assert split.train.rows + split.validation.rows + split.test.rows == snapshots.height


def test_no_test_period_row_in_training(snapshots: pl.DataFrame) -> None:
    split = split_by_time(snapshots, FEATURES, test_snapshots=2, validation_snapshots=1)
    assert split.train.as_of.max() < split.validation.as_of.min()
    assert split.validation.as_of.max() < split.test.as_of.min()
    test_keys = set(zip(split.test.visitor_id, split.test.as_of, strict=True))
    train_keys = set(zip(split.train.visitor_id, split.train.as_of, strict=True))
    assert not test_keys & train_keys


def test_label_windows_reaching_a_later_part_are_purged_or_refused() -> None:
    cutoffs = [snapshot_stack(visitors=5)["as_of"][0] + i * WEEK for i in range(5)]
    train, _, _ = split_cutoffs(cutoffs, 1, 1, horizon=WEEK)
    assert train == cutoffs[:3]
    train, _, _ = split_cutoffs(cutoffs, 1, 1, horizon=timedelta(days=0))
    assert train == cutoffs[:3]
    # Validation at week 3, test at week 5: a 2-week label from week 2 would reach into
    # the validation period, so that training cutoff is purged.
    spaced = [*cutoffs[:4], cutoffs[3] + 2 * WEEK]
    train, validation, _ = split_cutoffs(spaced, 1, 1, 2 * WEEK)
    assert validation == [cutoffs[3]]
    assert train == cutoffs[:2]
    with pytest.raises(ValueError, match="overlaps the test period"):
        split_cutoffs(cutoffs, 1, 1, horizon=2 * WEEK)


def test_too_few_cutoffs_and_broken_frames_are_refused(snapshots: pl.DataFrame) -> None:
    two = snapshots.filter(pl.col("as_of") <= pl.col("as_of").min() + WEEK)
    with pytest.raises(ValueError, match="at least 3"):
        split_by_time(two, FEATURES)
    with pytest.raises(ValueError, match="lack columns"):
        split_by_time(snapshots.drop("label"), FEATURES)
    with pytest.raises(ValueError, match="0/1"):
        split_by_time(snapshots.with_columns(label=pl.lit(2)), FEATURES)


def test_columns_are_taken_by_name_not_position(snapshots: pl.DataFrame) -> None:
    shuffled = snapshots.select(list(reversed(snapshots.columns)))
    assert np.array_equal(
        feature_matrix(snapshots, FEATURES), feature_matrix(shuffled, FEATURES), equal_nan=True
    )


def test_pandas_input_gives_the_same_split(snapshots: pl.DataFrame) -> None:
    from_polars = split_by_time(snapshots, FEATURES)
    from_pandas = split_by_time(snapshots.to_pandas(), FEATURES)
    np.testing.assert_array_equal(from_polars.test.label, from_pandas.test.label)


def test_data_hash_changes_with_the_data(snapshots: pl.DataFrame) -> None:
    columns = ["visitor_id", "as_of", "label", *FEATURES]
    same = data_hash(snapshots, columns)
    assert same == data_hash(snapshots.clone(), columns)
    flipped = snapshots.with_columns(label=1 - pl.col("label"))
    assert data_hash(flipped, columns) != same


def test_data_hash_changes_with_the_feature_configuration(snapshots: pl.DataFrame) -> None:
    """The same values computed with another window are another training set: a retrain
    after a change of session timeout is not skipped as 'unchanged'."""
    from datetime import timedelta

    from features.definitions import FeatureConfig

    columns = ["visitor_id", "as_of", "label", *FEATURES]
    default = data_hash(snapshots, columns, FeatureConfig())
    assert default == data_hash(snapshots, columns, FeatureConfig())
    shorter = FeatureConfig(session_timeout=timedelta(minutes=20))
    assert data_hash(snapshots, columns, shorter) != default
    assert data_hash(snapshots, columns) != default
