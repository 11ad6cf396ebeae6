"""Analysis of rating studies: pure functions over a tidy table `image, method, worker, score`."""

from analysis.scale import Scale

__all__ = ["Scale"]
