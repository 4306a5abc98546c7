"""Seeded randomness: one independent, reproducible stream per part of the generator.

Each part gets its own stream derived from (seed, part name), so adding draws in one channel
does not shift the values of another, and no process-level hash seed leaks into the output.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


def stream(seed: int, part: str) -> random.Random:
    """A random stream for one part; string seeds are hashed with SHA-512, stable across runs."""
    return random.Random(f"cdp-synthetic:{seed}:{part}")


class Weighted(Generic[T]):
    """Draw keys of a {value: weight} mapping (or a sequence, uniformly) quickly and repeatably."""

    def __init__(self, weights: Mapping[T, float] | Sequence[T]):
        if isinstance(weights, Mapping):
            self.values = list(weights.keys())
            self.cumulative = list(itertools.accumulate(float(w) for w in weights.values()))
        else:
            self.values = list(weights)
            self.cumulative = [float(i + 1) for i in range(len(self.values))]
        self.total = self.cumulative[-1]

    def __call__(self, r: random.Random) -> T:
        return self.values[bisect.bisect_right(self.cumulative, r.random() * self.total)]


def poisson(r: random.Random, mean: float) -> int:
    """Knuth's method: means here are small, so this is fast and exact."""
    limit, k, product = pow(2.718281828459045, -mean), 0, r.random()
    while product > limit:
        k += 1
        product *= r.random()
    return k


class IdMint:
    """Unique random ids: they reveal neither creation order nor which records belong together."""

    def __init__(self, prefix: str, width: int, seed: int):
        self.prefix, self.width, self.modulus = prefix, width, 10**width
        self.random = stream(seed, f"ids:{prefix}")
        self.issued: set[int] = set()

    def __call__(self) -> str:
        if len(self.issued) > self.modulus // 2:
            raise OverflowError(f"id space for {self.prefix} is too crowded")
        number = below(self.random, self.modulus)
        while number in self.issued:
            number = below(self.random, self.modulus)
        self.issued.add(number)
        return f"{self.prefix}{number:0{self.width}d}"


def below(r: random.Random, n: int) -> int:
    """Uniform integer in [0, n); much cheaper than randrange in the per-record hot paths."""
    return int(r.random() * n)


def between(r: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high)."""
    return low + int(r.random() * (high - low))


def pick(r: random.Random, items: Sequence[T]) -> T:
    """Uniform choice from a non-empty sequence."""
    return items[int(r.random() * len(items))]
