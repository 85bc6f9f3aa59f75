"""The smoothing methods lmpipe knows: one entry each, the single list that ``fit``, the
command line, the experiment config and the report read.

Adding a method is one entry here plus its estimator (a function ``(Fitting, params) ->
NgramModel`` in :mod:`lmpipe.lm.ngram.model`) and its tests. The estimators are imported when
a model is fitted, so listing the methods (the CLI help, config validation) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmpipe.lm.errors import ConfigError

if TYPE_CHECKING:
    from lmpipe.lm.ngram.model import Fitting, NgramModel

# mkn's fallback discounts D1, D2, D3+ (lmplz --discount_fallback) and Katz's Good-Turing
# limits per order (SRILM's -gt1max 1, -gtnmax 7): the methods' defaults below.
DEFAULT_FALLBACK: tuple[float, float, float] = (0.5, 1.0, 1.5)
DEFAULT_GTMAX: tuple[int, ...] = (1, 7)
MAX_ORDER = 9  # the highest order lmpipe estimates and counts (the views' w1..w9)


class ParameterError(ConfigError, TypeError):
    """A parameter that the smoothing method does not take (a ``TypeError`` too, as an unknown
    keyword argument is)."""


def _estimator(name: str) -> Callable[[Fitting, dict[str, Any]], NgramModel]:
    def estimate(f: Fitting, p: dict[str, Any]) -> NgramModel:
        from lmpipe.lm.ngram import model

        fn: Callable[[Fitting, dict[str, Any]], NgramModel] = getattr(model, name)
        return fn(f, p)

    return estimate


@dataclass(frozen=True)
class Smoothing:
    """``params``: each parameter of the method with its default; ``normalized``: whether its
    scores are probabilities (stupid backoff's are not, so it is never ranked by perplexity);
    ``arpa``: whether the model has a backoff form that an ARPA file can hold."""

    name: str
    summary: str
    colour: str
    estimate: Callable[[Fitting, dict[str, Any]], NgramModel]
    params: dict[str, Any] = field(default_factory=dict)
    normalized: bool = True
    arpa: bool = True

    def parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        """The defaults with ``given`` on top; an unknown parameter is an error."""
        unknown = set(given) - set(self.params)
        if unknown:
            raise ParameterError(
                f"{self.name} takes no parameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(self.params) or 'none'}"
            )
        return {**self.params, **given}


SMOOTHING: dict[str, Smoothing] = {
    s.name: s
    for s in (
        Smoothing("mle", "maximum likelihood (an unseen n-gram has probability 0)", "#7f7f7f",
                  _estimator("estimate_count_ratio"), arpa=False),
        Smoothing("add-k", "add-k (Laplace for k = 1) with the full history", "#bcbd22",
                  _estimator("estimate_count_ratio"), {"k": 1.0}, arpa=False),
        Smoothing("witten-bell", "interpolated Witten-Bell", "#8c564b",
                  _estimator("estimate_witten_bell")),
        Smoothing("absolute", "interpolated absolute discounting", "#e377c2",
                  _estimator("estimate_discounted"), {"discount": None}),
        Smoothing("kn", "interpolated Kneser-Ney, one discount per order", "#ff7f0e",
                  _estimator("estimate_discounted"), {"discount": None}),
        Smoothing("mkn", "modified Kneser-Ney, bit for bit KenLM's lmplz", "#d62728",
                  _estimator("estimate_mkn"),
                  {"discount_fallback": DEFAULT_FALLBACK, "prune_counts": None}),
        Smoothing("katz", "Katz backoff with Good-Turing discounts (SRILM's)", "#17becf",
                  _estimator("estimate_katz"), {"gtmax": DEFAULT_GTMAX}),
        Smoothing("stupid-backoff", "stupid backoff (Brants et al. 2007): scores, not "
                  "probabilities", "#c7c7c7", _estimator("estimate_stupid_backoff"),
                  {"alpha": 0.4}, normalized=False, arpa=False),
    )
}  # fmt: skip
METHODS: tuple[str, ...] = tuple(SMOOTHING)
BACKOFF_METHODS: tuple[str, ...] = tuple(
    s.name for s in SMOOTHING.values() if s.arpa and s.normalized
)


def smoothing(name: str) -> Smoothing:
    try:
        return SMOOTHING[name]
    except KeyError:
        raise ConfigError(
            f"unknown smoothing {name!r}; choose one of: {', '.join(METHODS)}"
        ) from None
