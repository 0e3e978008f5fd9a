"""The base of every augmentation step (``Augmentation``) and the parameter checks the steps
share; ``seqkit.speech.augment`` re-exports it."""

from __future__ import annotations

from ...errors import ParameterError

AUDIO, FEATURES = "audio", "features"


def _p(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ParameterError(f"`p` must be a probability in [0, 1]; received {value!r}.")
    return float(value)


def _range(name: str, value, low=None, high=None, unit="") -> tuple[float, float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise ParameterError(
            f"`{name}` must be a list of two numbers [low, high]; received {value!r}."
        )
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ParameterError(f"`{name}` must be [low, high] with low <= high; received {value!r}.")
    if (low is not None and lo < low) or (high is not None and hi > high):
        bounds = (
            f"[{low:g}, {high:g}]"
            if low is not None and high is not None
            else (f">= {low:g}" if low is not None else f"<= {high:g}")
        )
        raise ParameterError(f"`{name}` must lie in {bounds}{unit}; received {value!r}.")
    return lo, hi


def _int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"`{name}` must be an integer >= 0; received {value!r}.")
    return value


class Augmentation:
    """Base class: ``kind`` (``audio`` or ``features``), ``p``, ``draw``, ``apply``."""

    kind = AUDIO
    p = 1.0

    def bind(self, source=None, sample_rate=None) -> None:
        """Called once before training with the data source and the audio's sample rate."""

    def draw(self, rng, x, sr) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, x, sr, **settings):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x, sr, rng):
        if self.p < 1.0 and rng.random() >= self.p:
            return x
        return self.apply(x, sr, **self.draw(rng, x, sr))
