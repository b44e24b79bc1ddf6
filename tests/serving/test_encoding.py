"""One encoder: `FeatureEncoder.transform_columns` (what explain and `transform` use) equals pandas' encoding.

The reference below is the encoder as it was written with pandas (Categorical codes, `to_numeric`);
the fast path must give the same matrix for typed batches, object columns and one-row frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samepage.bundle import SMALL_FRAME, FeatureEncoder
from samepage.definitions import Definitions
from serving.explain import encode
from tests.serving.test_explain_mql import synthetic_frame

CATEGORIES = ["Finance", "Software", "2", "True", "2.5"]
ENCODER = FeatureEncoder(["industry", "employees", "is_icp"], {"industry": CATEGORIES})


def pandas_encoding(encoder: FeatureEncoder, frame: pd.DataFrame) -> np.ndarray:
    out = np.empty((len(frame), len(encoder.feature_keys)), dtype=np.float64)
    for j, key in enumerate(encoder.feature_keys):
        col = frame[key]
        if key in encoder.categories:
            codes = pd.Categorical(col.astype("string"), categories=encoder.categories[key]).codes
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = pd.to_numeric(col.astype("object").where(col.notna(), None), errors="coerce")
    return out


missing = st.sampled_from([None, float("nan"), pd.NA])
category_values = st.one_of(
    st.sampled_from(CATEGORIES + ["Unseen", " Software"]),
    st.text(max_size=6),
    st.integers(-3, 3),
    st.sampled_from([2.0, 2.5, True]),
    missing,
)
plain_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**53), 2**53), st.booleans(), st.just(None)
)
number_values = st.one_of(plain_numbers, st.sampled_from(["12", " 3.5", "1e3", "abc", "", "nan", "-inf"]), missing)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.sampled_from([1, 3, SMALL_FRAME, SMALL_FRAME + 5]))  # both sides of the one-conversion threshold
    rows = st.lists(st.tuples(category_values, number_values, plain_numbers), min_size=n, max_size=n)
    frame = pd.DataFrame(draw(rows), columns=["industry", "employees", "is_icp"], dtype=object)
    if draw(st.booleans()):  # as the feature store hands them over: typed columns
        frame["is_icp"] = pd.to_numeric(frame["is_icp"].where(frame["is_icp"].notna(), None), errors="coerce").astype("float64")
    if draw(st.booleans()):
        frame["extra"] = "not a feature"
    return frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_transform_columns_equals_the_pandas_encoding(frame: pd.DataFrame) -> None:
    expected = pandas_encoding(ENCODER, frame)
    np.testing.assert_array_equal(ENCODER.transform_columns(ENCODER.columns(frame)), expected)
    np.testing.assert_array_equal(ENCODER.transform(frame), expected)
    np.testing.assert_array_equal(encode(ENCODER, frame), expected)


def test_a_feature_frame_in_batches_and_one_row_at_a_time(definitions: Definitions) -> None:
    frame, _ = synthetic_frame(definitions, 300)  # as the feature store hands it over: object categories, float64 numbers
    enc = FeatureEncoder.fit(frame, definitions.feature_keys, [f.key for f in definitions.features if f.is_categorical])
    expected = pandas_encoding(enc, frame)
    assert enc.categories and not np.isnan(expected).all()
    np.testing.assert_array_equal(enc.transform(frame), expected)
    for i in (0, 1, len(frame) - 1):
        np.testing.assert_array_equal(enc.transform(frame.iloc[[i]]), expected[[i]])
    with pytest.raises(KeyError, match=enc.feature_keys[0]):
        enc.transform(frame.drop(columns=[enc.feature_keys[0]]))
