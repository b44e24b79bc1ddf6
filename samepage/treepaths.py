"""TreeSHAP for large batches, one tree at a time on one row per decision pattern.

LightGBM's path-dependent TreeSHAP (`pred_contrib`) gives each tree's share of a row's
contributions from the decisions the row takes at that tree's splits, and nothing else. Rows that
decide every split of a tree alike get that tree's share bit for bit alike. A tree has a dozen
splits on a few features, so a batch of 100,000 leads holds a few hundred decision patterns per
tree: `TreePaths` runs `pred_contrib` for one tree (`start_iteration=i, num_iteration=1`) on one
row per pattern and adds the shares up. The numbers are LightGBM's own; only the order of the sum
across trees differs (tests: within 1e-12 of `pred_contrib` on every row).

Decisions are read from the booster's dump (thresholds have 17 significant digits, exact doubles):
a number splits at `value <= threshold` (LightGBM reads |v| <= 1e-35 as a float32 as 0.0), NaN
gets a code of its own, and so does zero where a split treats zero as missing; a category splits
on membership of its integer code in the split's set, and any value that is not a non-negative
whole number keeps a code of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float): |v| <= this counts as zero
_DENSE = 1 << 22  # pattern keys below this are numbered with a table, above with a sort


@dataclass(frozen=True)
class Split:
    """One tree's splits on one feature: numeric thresholds, or the category sets that go left."""

    feature: int
    thresholds: np.ndarray | None  # sorted unique; None for a categorical feature
    zero_matters: bool = False  # a split with `missing_type: Zero` treats |v| <= ZERO as missing
    categories: tuple[frozenset[int], ...] = ()  # per categorical split: the codes that go left
    lookup: np.ndarray | None = None  # numeric: the feature's bin among all trees' thresholds -> bin here


@dataclass(frozen=True)
class TreePaths:
    """Every tree's splits, by feature; `contributions(X)` equals `pred_contrib` on `X`."""

    booster: Any
    trees: list[list[Split]]
    thresholds: dict[int, np.ndarray]  # numeric feature -> every tree's thresholds, sorted unique
    n_features: int

    @classmethod
    def of(cls, booster: Any) -> TreePaths:
        trees = [_tree_splits(tree["tree_structure"]) for tree in booster.dump_model()["tree_info"]]
        every: dict[int, set[float]] = {}
        for splits in trees:
            for split in splits:
                if split.thresholds is not None:
                    every.setdefault(split.feature, set()).update(split.thresholds.tolist())
        thresholds = {f: np.array(sorted(t), dtype=np.float64) for f, t in every.items()}
        trees = [[_with_lookup(s, thresholds) for s in splits] for splits in trees]
        return cls(booster, trees, thresholds, booster.num_feature())

    def trees_using(self, features: Sequence[int]) -> tuple[int, ...]:
        """The trees with a split on any of these features, in order: the only ones whose leaf can change with them."""
        using: set[int] = set()
        for f in set(features):
            using.update(self._trees_of_feature.get(f, ()))
        return tuple(sorted(using))

    @cached_property
    def _trees_of_feature(self) -> dict[int, tuple[int, ...]]:
        """Feature -> the trees that split on it (the `to_pass` search asks for a hundred sets a batch)."""
        out: dict[int, list[int]] = {}
        for i, splits in enumerate(self.trees):
            for f in {s.feature for s in splits}:
                out.setdefault(f, []).append(i)
        return {f: tuple(trees) for f, trees in out.items()}

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """`pred_contrib`'s (n, k + 1) matrix for `X`, on one thread: LightGBM keeps the iteration range
        of a prediction in the booster itself, so two at once on different trees would mix them up."""
        out = np.zeros((self.n_features + 1, len(X)), dtype=np.float64)  # by column: each add is one gather
        for i, splits, first, inverse in self._patterns(X):
            share = np.asarray(
                self.booster.predict(X[first], pred_contrib=True, start_iteration=i, num_iteration=1, num_threads=1)
            )
            for column in [s.feature for s in splits] + [self.n_features]:
                out[column] += share[:, column][inverse]
        return out.T

    def patterns(self, X: np.ndarray) -> list[int]:
        """How many decision patterns each tree finds among the rows of `X` (what `contributions` explains)."""
        return [len(first) for _, _, first, _ in self._patterns(X)]

    def _patterns(self, X: np.ndarray) -> Iterator[tuple[int, list[Split], np.ndarray, np.ndarray]]:
        """Per tree: (index, splits, first row of each pattern, each row's pattern)."""
        n = len(X)
        if n == 0:
            return
        bins = {f: _bins(X[:, f], t) for f, t in self.thresholds.items()}
        zeros: dict[int, np.ndarray] = {}
        categories: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, splits in enumerate(self.trees):
            codes = []
            for split in splits:
                f = split.feature
                if split.lookup is not None and split.thresholds is not None:
                    # its own bins: below each of its thresholds, above all of them, NaN
                    local, size = split.lookup[bins[f]], len(split.thresholds) + 2
                    if split.zero_matters:
                        zero = zeros.get(f)
                        if zero is None:
                            zero = zeros[f] = (np.abs(X[:, f]) <= ZERO).astype(np.int64)
                        local, size = local * 2 + zero, size * 2
                    codes.append((local, size))
                else:
                    if f not in categories:
                        values, inverse = np.unique(X[:, f], return_inverse=True)  # NaNs collapse into one
                        categories[f] = (values, inverse.reshape(-1))
                    codes.append(_category_codes(*categories[f], split.categories))
            first, inverse = _combine(codes, n)
            yield i, splits, first, inverse


def _tree_splits(root: dict[str, Any]) -> list[Split]:
    numeric: dict[int, set[float]] = {}
    zero: set[int] = set()
    categorical: dict[int, list[frozenset[int]]] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue
        feature = int(node["split_feature"])
        if node["decision_type"] == "<=":
            numeric.setdefault(feature, set()).add(float(node["threshold"]))
            if node.get("missing_type") == "Zero":
                zero.add(feature)
        else:  # "==": the codes listed go left
            categorical.setdefault(feature, []).append(frozenset(int(c) for c in str(node["threshold"]).split("||")))
        stack += [node["left_child"], node["right_child"]]
    splits = [Split(f, np.array(sorted(t), dtype=np.float64), f in zero) for f, t in numeric.items()]
    splits += [Split(f, None, categories=tuple(sets)) for f, sets in categorical.items()]
    return sorted(splits, key=lambda s: s.feature)


def _bins(column: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many thresholds lie below each value (`v <= t` is then alike for every t); NaN: len + 1."""
    nan = np.isnan(column)
    # LightGBM reads |v| <= ZERO in a dense row as an absent value, that is 0.0
    zero_or_nan = nan | (np.abs(column) <= ZERO)
    below = np.searchsorted(thresholds, np.where(zero_or_nan, 0.0, column), side="left")
    return np.where(nan, len(thresholds) + 1, below)


def _with_lookup(split: Split, thresholds: dict[int, np.ndarray]) -> Split:
    """A numeric split with its table from the feature's bin among all thresholds to its bin among its own."""
    if split.thresholds is None:
        return split
    every = thresholds[split.feature]
    # bin b > 0 holds values in (every[b-1], every[b]]: its own thresholds below them are those <= every[b-1]
    lookup = np.concatenate(
        [[0], np.searchsorted(split.thresholds, every, side="right"), [len(split.thresholds) + 1]]
    ).astype(np.int64)
    return Split(split.feature, split.thresholds, split.zero_matters, split.categories, lookup)


def _category_codes(
    values: np.ndarray, inverse: np.ndarray, sets: Sequence[frozenset[int]]
) -> tuple[np.ndarray, int]:
    """Codes equal exactly when every categorical split of the tree on this feature decides alike."""
    signatures: dict[tuple[Any, ...], int] = {}
    per_value = []
    for v in values.tolist():
        if v == v and v >= 0 and float(v).is_integer():  # a category code: which sets hold it
            signature: tuple[Any, ...] = tuple(int(v) in s for s in sets)
        else:  # NaN, negative or fractional: decided on its own
            signature = ("own", repr(v))
        per_value.append(signatures.setdefault(signature, len(signatures)))
    return np.asarray(per_value, dtype=np.int64)[inverse], max(len(signatures), 1)

def _combine(codes: list[tuple[np.ndarray, int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each pattern, each row's pattern) for per-feature codes combined."""
    key = np.zeros(n, dtype=np.int64)
    bound = 1
    for column, size in codes:
        if bound * size >= _DENSE:  # compress to dense ids before the key could grow too large
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1)
            bound = int(key.max()) + 1
        key = key * size + column
        bound *= size
    if bound >= _DENSE:
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    seen = np.zeros(bound, dtype=bool)
    seen[key] = True
    ids = np.cumsum(seen) - 1
    inverse = ids[key]
    first = np.empty(int(ids[-1]) + 1, dtype=np.int64)
    first[inverse[::-1]] = np.arange(n - 1, -1, -1)  # the last write wins: each pattern's first row
    return first, inverse
