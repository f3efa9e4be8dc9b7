"""Sequential evidence on Bernoulli counts: e-detectors, e-processes, a two-sample test.

Pure arithmetic in logs over per-evaluation batches ``(n, k)``: ``n`` requests, ``k`` hits (an
error, or a request slower than a latency threshold). Every statistic here is a nonnegative
supermartingale under its null hypothesis, so by Ville's inequality the chance that it EVER
reaches ``1/alpha`` is at most ``alpha``, however often it is looked at (Howard, Ramdas,
McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021;
Ramdas, Grünwald, Vovk, Shafer, "Game-theoretic statistics and safe anytime-valid inference").

`ChangeDetector` -- "the rate went ABOVE p0 at some point": a weighted Shiryaev-Roberts
e-detector (Shin, Ramdas, Rinaldo, "E-detectors: a nonparametric framework for sequential
change detection", 2023). For an alternative q > p0 a batch's likelihood ratio is
``LR = (q/p0)^k ((1-q)/(1-p0))^(n-k)``; with prior mass ``pi_t`` on "the change happened at
batch t" (``sum pi <= 1``), ``D_t = LR_t (D_{t-1} + pi_t)`` is the mixture over change points
of the e-processes started at each of them, and ``D_t + sum_{s>t} pi_s`` is a nonnegative
supermartingale starting at ``<= 1`` under any ``p <= p0`` (E[LR] <= 1 there): P(sup D >= 1/alpha)
<= alpha over the whole infinite horizon. The evidence runs over a whole rollout (from its
first step, or from the step after a rollback), so the budget is per rollout, not per step.
The prior (indexed by REQUEST count N, so low volume pays little for waiting): ``prior_start``
(1/2) on the rollout's step starts, ``prior_start / (k (k + 1))`` on the k-th (a handler that
breaks under a new step's load pays 1.4, 2.5, 3.2 nats at steps 1, 2, 3), the other half
spread as ``M(N) = (1 - prior_start) (1 - 1/ln ln(N + e^e))`` over request indices, a batch
getting the mass of its indices ``M(N_t) - M(N_{t-1})``. A step start is known before the
batch's outcomes (the events' config version), so its mass is predictable and validity holds.
The index density ~ 1/(N ln N (ln ln N)^2) is much heavier-tailed than 1/N^2: a change after
N requests costs ``-ln(mass)`` nats, e.g. ~14 nats for a 100-request batch two hours into a
100 req/s step (1/(N(N+1)) would cost ~23), ~8 nats for one request after 100. A mixture
over alternatives ``q_j = p0 * m_j`` with weights ``w_j`` (sum 1) keeps the guarantee:
``D = sum_j w_j D^j``.

Robustness to clustered hits (errors come in bursts in real traffic): each batch's log-LR is
capped at ``max_batch_nats`` (min(LR, C) has E <= 1 too, so validity holds), so one burst inside
one evaluation step cannot alone reach the threshold once the prior's mass on a change that
recent is small (with the defaults, after ~5,000 requests of a step); it takes hits spread over
several steps. Bursts spread over several steps do look like a short regression: see README's
"False-rollback budget" for what they cost. Each component's log D is capped at
``ln(1/alpha) + headroom`` (min(D, C) keeps the supermartingale), so a detector that fired
comes back below the line soon after the rate falls.

`UpperEvidence` -- "the rate is BELOW p_warn": the same mixture for alternatives q < p_warn
without change points (a test martingale from the step start, capped the same way so a later
regression removes the evidence within a few nats). Healthy needs it: no errors yet is not
evidence of health.

`RatioDetector` -- "unified's rate is above legacy's" on the same metric (Lindon & Malek,
"Anytime-valid inference for multinomial count data", 2022; Netflix's sequential canary
testing). Conditional on a hit in a batch, P(it is unified's) = n_u p_u / (n_u p_u + n_l p_l),
which under p_u <= p_l is at most theta0 = n_u / (n_u + n_l). For relative risk rho > 1,
theta = rho n_u / (rho n_u + n_l) and the batch LR is (theta/theta0)^k_u ((1-theta)/(1-theta0))^k_l:
binomial in the hits, so E[LR] <= 1 under H0 whatever the rates. A change detector over hit
counts, like `ChangeDetector`.

Bursts (run starts, `Dispersion`): hits that come in runs of consecutive requests, or
cluster in time, are not independent evidence of a higher rate. The change detectors are fed
run STARTS (`streams.verdicts.Counts.starts`): the requests whose previous request of the same
target was not a hit (or came more than the run gap before), and the hits among them. Under
independent requests at rate p a hit after a non-hit has chance p, so the thinned sample is
Bernoulli(p) and every guarantee holds exactly, for the price of the requests after hits (a
share p of them: 0.5 % at the critical error rate). When hits are positively dependent (a run
of failures, a pause: P(hit | previous hit) = a >= p), then from p = p a + (1 - p) b the chance
after a non-hit is b = p (1 - a) / (1 - p) <= p (exactly so for a Markov chain of hits), so the
thinned sample is at most as likely to hit as the rate itself: a run of ten failures is one
start, not ten independent events, however few requests came before it. Only a run's first
`max_run` (20) hits are thinned: past that every hit counts again, or a handler failing every
request would leave nothing in the sample (valid as long as healthy runs that long are rare:
at a mean run of 3, one in 2,200; at 10, one in 7). Clustering in time beyond consecutive
requests is the dispersion's: every log-LR is tempered by the
overdispersion estimated before the batch (a predictable weight in (0, 1]: valid by Jensen);
under independent requests it stays 1.

`sample_ratio_log_e` -- "the routing is not what the config says": the share of a domain's
requests on unified against the configured percentage, a tempered mixture test of a composite
null (the share within a relative tolerance of the configured one), on the step's totals.

Every state is a short list of floats (`to_list` / `from_list`), updated in O(alternatives).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

_EE = math.exp(math.e)
"""e^e: where the change-point prior's request index starts (ln ln of it is 1)."""

#: log of a value that is "zero" for every practical purpose (JSON has no -inf).
LOG_ZERO = -1e9


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b <= LOG_ZERO:
        return a
    return a + math.log1p(math.exp(b - a))


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top <= LOG_ZERO:
        return LOG_ZERO
    exp = math.exp
    return top + math.log(sum([exp(v - top) for v in values]))


def e_text(log_value: float) -> str:
    """An e-value for people and JSON (3 significant digits), from its log; capped where
    `exp` would overflow."""
    return f"{math.exp(min(log_value, 700.0)):.3g}"


def change_prior_mass(before: int, after: int, prior_start: float, step: int = 0) -> float:
    """Prior mass of "the change happened at a request index in (before, after]", plus, for
    the first batch of the rollout's ``step``-th step (1-based; 0: not a step's first batch),
    the mass on "at that step's start", ``prior_start / (step (step + 1))``: 1/4 on the
    first step's start, 1/12 on the second's, 1/24 on the third's (with ``prior_start`` 1/2).
    Sums to at most 1 over any sequence of batches and steps."""
    rest = 1.0 - prior_start
    mass = rest * (1.0 / math.log(math.log(before + _EE)) - 1.0 / math.log(math.log(after + _EE)))
    return mass + (prior_start / (step * (step + 1)) if step > 0 else 0.0)


class MixedValue:
    """The log of a mixture ``sum_j w_j e^(x_j)`` of components ``x`` in logs, computed only
    when asked for: the judge asks every evaluation whether a detector crossed its line, and
    the largest weighted component bounds the answer, ``top <= log value <= top + ln K``, so
    the sum itself is needed only in that band or for display."""

    __slots__ = ("_components", "_log_weights", "_spread", "_top", "_value")

    def __init__(self, log_weights: Sequence[float]) -> None:
        self._log_weights = tuple(log_weights)
        self._spread = math.log(len(self._log_weights)) if self._log_weights else 0.0
        self._components: Sequence[float] = ()
        self._top = LOG_ZERO
        self._value: float | None = LOG_ZERO

    def reset(self, components: Sequence[float]) -> None:
        """New components (held, not copied: reset again after changing them)."""
        self._components = components
        self._top = max([w + x for w, x in zip(self._log_weights, components, strict=True)],
                        default=LOG_ZERO)
        self._value = None

    def value(self) -> float:
        if self._value is None:
            self._value = _logsumexp([w + x for w, x in zip(
                self._log_weights, self._components, strict=True)])
        return self._value

    def at_least(self, line: float) -> bool:
        """Whether the log value is at least ``line``."""
        if self._top >= line:
            return True
        if self._top + self._spread < line:
            return False
        return self.value() >= line


@dataclass(slots=True)
class ChangePrior:
    """A detector's place in its change-point prior: the index seen (requests, or hits for
    `RatioDetector`), the rollout's step, and whether that step's start mass is still to be
    spent on its first batch."""

    start: float
    seen: int = 0
    step: int = 1
    step_open: bool = True

    def take(self, n: int) -> float:
        """log of the mass on a change in the next ``n`` indices (and, on a step's first
        batch, at the step's start); moves past them."""
        mass = change_prior_mass(self.seen, self.seen + n, self.start,
                                 self.step if self.step_open else 0)
        self.seen += n
        self.step_open = False
        return math.log(mass)

    def new_step(self) -> None:
        self.step += 1
        self.step_open = True

    def pack(self, log_d: Sequence[float]) -> list[float]:
        """A change detector's state as one list: ``[seen, *log_d, step, step_open]``."""
        return [float(self.seen), *log_d, float(self.step), float(self.step_open)]

    def unpack(self, data: Sequence[float], width: int) -> list[float]:
        """Restore from `pack`'s list and give back its ``width`` log values. State written
        before steps carried evidence has no ``[step, step_open]`` tail: a step then was the
        rollout's first."""
        self.seen = int(data[0])
        tail = data[1 + width:]
        if tail:
            self.step, self.step_open = int(tail[0]), bool(tail[1])
        else:
            self.step, self.step_open = 1, self.seen == 0
        return [float(x) for x in data[1:1 + width]]


def bernoulli_log_lr(n: int, k: int, q: float, p0: float) -> float:
    """log of (q/p0)^k ((1-q)/(1-p0))^(n-k)."""
    return k * math.log(q / p0) + (n - k) * (math.log1p(-q) - math.log1p(-p0))


@dataclass(frozen=True, slots=True)
class Mixture:
    """Alternatives (multiples of the null rate) and their weights, normalised."""

    multiples: tuple[float, ...]
    weights: tuple[float, ...]
    log_weights: tuple[float, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_weights", tuple(math.log(w) for w in self.weights))

    @classmethod
    def of(cls, multiples: Sequence[float], weights: Sequence[float] | None = None) -> Mixture:
        if not multiples:
            raise ValueError("a mixture needs at least one alternative")
        raw = list(weights) if weights is not None else [1.0] * len(multiples)
        if len(raw) != len(multiples) or min(raw) <= 0:
            raise ValueError("one positive weight per alternative")
        total = sum(raw)
        return cls(tuple(float(m) for m in multiples), tuple(w / total for w in raw))


@dataclass(slots=True)
class ChangeDetector:
    """Weighted Shiryaev-Roberts e-detector for "rate above p0 since some change point"."""

    p0: float
    mixture: Mixture
    log_threshold: float
    max_batch_nats: float
    headroom_nats: float
    prior: ChangePrior
    log_d: list[float]
    #: Per alternative: log(q/p0) per hit and log((1-q)/(1-p0)) per miss.
    _terms: tuple[tuple[float, float], ...] = field(default=(), compare=False, repr=False)
    _mixed: MixedValue = field(default_factory=lambda: MixedValue(()), compare=False,
                               repr=False)

    def __post_init__(self) -> None:
        self._terms = tuple(
            (math.log(q / self.p0), math.log1p(-q) - math.log1p(-self.p0))
            for q in self.alternatives())
        self._mixed = MixedValue(self.mixture.log_weights)
        self._mixed.reset(self.log_d)

    @classmethod
    def new(cls, p0: float, mixture: Mixture, alpha: float, max_batch_nats: float,
            prior_start: float = 0.5, headroom_nats: float = 3.0) -> ChangeDetector:
        if not 0 < p0 < 1:
            raise ValueError(f"null rate must be in (0, 1), got {p0}")
        return cls(p0, mixture, math.log(1 / alpha), max_batch_nats, headroom_nats,
                   ChangePrior(prior_start), [LOG_ZERO] * len(mixture.multiples))

    def alternatives(self) -> list[float]:
        """The alternative rates, capped below 1 (a multiple past 1 is folded to 0.99)."""
        return [min(self.p0 * m, 0.99) for m in self.mixture.multiples]

    def update(self, n: int, k: int, weight: float = 1.0) -> None:
        """One batch: ``n`` requests, ``k`` hits; its log-LR tempered by ``weight`` in (0, 1]
        (`Dispersion.weight`, known before the batch: E[LR^w] <= E[LR]^w <= 1 keeps
        validity)."""
        if n <= 0:
            return
        log_mass = self.prior.take(n)
        cap = self.log_threshold + self.headroom_nats
        batch_cap = self.max_batch_nats
        log_d = self.log_d
        log1p, exp = math.log1p, math.exp
        for j, (hit, miss) in enumerate(self._terms):
            llr = (k * hit + (n - k) * miss) * weight
            if llr > batch_cap:
                llr = batch_cap
            # _logaddexp(log_d[j], log_mass), inlined: this loop is the judge's hottest.
            hi, lo = (log_mass, log_d[j]) if log_d[j] < log_mass else (log_d[j], log_mass)
            d = llr + (hi if lo <= LOG_ZERO else hi + log1p(exp(lo - hi)))
            log_d[j] = d if d < cap else cap
        self._mixed.reset(log_d)

    @property
    def log_value(self) -> float:
        return self._mixed.value()

    @property
    def fired(self) -> bool:
        return self._mixed.at_least(self.log_threshold)

    def to_list(self) -> list[float]:
        return self.prior.pack(self.log_d)

    def restore(self, data: Sequence[float]) -> None:
        self.log_d = self.prior.unpack(data, len(self.mixture.multiples))
        self._mixed.reset(self.log_d)


@dataclass(slots=True)
class UpperEvidence:
    """Test martingale against "rate >= p_max": large when the rate is shown below p_max."""

    p_max: float
    mixture: Mixture
    log_threshold: float
    headroom_nats: float
    requests: int
    log_e: list[float]
    _terms: tuple[tuple[float, float], ...] = field(default=(), compare=False, repr=False)
    _mixed: MixedValue = field(default_factory=lambda: MixedValue(()), compare=False,
                               repr=False)

    def __post_init__(self) -> None:
        self._terms = tuple(
            (math.log(m), math.log1p(-self.p_max * m) - math.log1p(-self.p_max))
            for m in self.mixture.multiples)
        self._mixed = MixedValue(self.mixture.log_weights)
        self._mixed.reset(self.log_e)

    @classmethod
    def new(cls, p_max: float, mixture: Mixture, alpha: float,
            headroom_nats: float = 2.0) -> UpperEvidence:
        if not 0 < p_max < 1 or max(mixture.multiples) >= 1:
            raise ValueError("healthy evidence needs 0 < p_max < 1 and multiples below 1")
        return cls(p_max, mixture, math.log(1 / alpha), headroom_nats, 0,
                   [0.0] * len(mixture.multiples))

    def update(self, n: int, k: int, weight: float = 1.0) -> None:
        """One batch, tempered by ``weight`` as in `ChangeDetector.update`."""
        if n <= 0:
            return
        cap = self.log_threshold + self.headroom_nats
        log_e = self.log_e
        for j, (hit, miss) in enumerate(self._terms):
            e = log_e[j] + (k * hit + (n - k) * miss) * weight
            log_e[j] = cap if e > cap else (LOG_ZERO if e < LOG_ZERO else e)
        self.requests += n
        self._mixed.reset(log_e)

    @property
    def log_value(self) -> float:
        return self._mixed.value()

    @property
    def shown(self) -> bool:
        return self._mixed.at_least(self.log_threshold)

    def to_list(self) -> list[float]:
        return [float(self.requests), *self.log_e]

    def restore(self, data: Sequence[float]) -> None:
        self.requests = int(data[0])
        self.log_e = [float(x) for x in data[1:]]
        self._mixed.reset(self.log_e)


#: How far above 1 (in standard errors, ~sqrt(2 / hits) for independent requests) the
#: dispersion estimate must stand before it tempers: independent requests pay nothing.
_DISPERSION_Z = 2.0


@dataclass(slots=True)
class Dispersion:
    """How many times more a target's hits per batch vary than independent requests would
    make them vary: a quasi-likelihood's overdispersion factor, estimated as the step goes.

    Errors and slow requests come in bursts (a flaky pool fails a run of requests, a pause
    slows a second's worth), and a likelihood of independent requests reads a burst as
    evidence of a higher rate. Each batch's log-LR is therefore tempered by ``1 / factor``
    (`weight`), the factor known BEFORE the batch: any predictable weight in (0, 1] keeps
    every statistic of this module a supermartingale under independent requests (Jensen),
    and with counts of variance ``phi`` times the binomial one, a weight of ``1 / phi``
    keeps ``E[LR^w] <= 1`` to second order (McCullagh & Nelder, "Generalized Linear Models",
    ch. 9, on quasi-likelihood; the same tempering as `sample_ratio_log_e`'s fixed one).

    The estimate compares consecutive batches, ``(k_t - r k_{t-1})^2`` against its mean
    ``phi (mu_t + r^2 mu_{t-1})`` with ``r = n_t / n_{t-1}`` and the hits as the means: a rate
    that drifts (a latency creep) cancels out of the difference, and the few differences
    that straddle a regression's onset are outweighed by the step's history once it has
    ``min_hits`` hits; before that the weight is 1 (no tempering). ``prior_hits`` pseudo-hits
    at factor 1 keep early estimates near 1. Never below 1: independent requests pay
    nothing but the estimate's noise above 1.
    """

    prior_hits: float
    min_hits: float
    squares: float = 0.0
    expected: float = 0.0
    last_n: int = 0
    last_k: int = 0

    @property
    def factor(self) -> float:
        if self.expected < self.min_hits:
            return 1.0
        hits = self.prior_hits + self.expected
        estimate = (self.prior_hits + self.squares) / hits
        return 1.0 + max(0.0, estimate - 1.0 - _DISPERSION_Z * math.sqrt(2.0 / hits))

    @property
    def weight(self) -> float:
        return 1.0 / self.factor

    def update(self, n: int, k: int) -> None:
        if n <= 0:
            return
        if self.last_n > 0:
            r = n / self.last_n
            self.squares += (k - r * self.last_k) ** 2
            self.expected += k + r * r * self.last_k
        self.last_n, self.last_k = n, k

    def to_list(self) -> list[float]:
        return [self.squares, self.expected, float(self.last_n), float(self.last_k)]

    def restore(self, data: Sequence[float]) -> None:
        self.squares, self.expected = float(data[0]), float(data[1])
        self.last_n, self.last_k = int(data[2]), int(data[3])


def ratio_log_lr(n_u: int, k_u: int, n_l: int, k_l: int, rho: float) -> float:
    """log LR of relative risk ``rho`` against 1 for one batch, conditional on its hits."""
    if n_u <= 0 or n_l <= 0 or k_u + k_l == 0:
        return 0.0
    theta0 = n_u / (n_u + n_l)
    theta = rho * n_u / (rho * n_u + n_l)
    return k_u * math.log(theta / theta0) + k_l * (math.log1p(-theta) - math.log1p(-theta0))


@dataclass(slots=True)
class RatioDetector:
    """Change detector for "unified's hit rate exceeds legacy's" (relative risk > 1)."""

    mixture: Mixture
    log_threshold: float
    max_batch_nats: float
    headroom_nats: float
    prior: ChangePrior
    log_d: list[float]

    @classmethod
    def new(cls, mixture: Mixture, alpha: float, max_batch_nats: float,
            prior_start: float = 0.5, headroom_nats: float = 3.0) -> RatioDetector:
        if min(mixture.multiples) <= 1:
            raise ValueError("relative risks must be above 1")
        return cls(mixture, math.log(1 / alpha), max_batch_nats, headroom_nats,
                   ChangePrior(prior_start), [LOG_ZERO] * len(mixture.multiples))

    def update(self, n_u: int, k_u: int, n_l: int, k_l: int) -> None:
        hits = k_u + k_l
        if n_u <= 0 or n_l <= 0 or hits == 0:
            return  # no hit, or one target silent: no information about the ratio
        log_mass = self.prior.take(hits)
        cap = self.log_threshold + self.headroom_nats
        for j, rho in enumerate(self.mixture.multiples):
            llr = min(ratio_log_lr(n_u, k_u, n_l, k_l, rho), self.max_batch_nats)
            self.log_d[j] = min(llr + _logaddexp(self.log_d[j], log_mass), cap)

    @property
    def log_value(self) -> float:
        return _logsumexp([w + d for w, d in zip(self.mixture.log_weights, self.log_d,
                                                 strict=True)])

    @property
    def fired(self) -> bool:
        return self.log_value >= self.log_threshold

    def to_list(self) -> list[float]:
        return self.prior.pack(self.log_d)

    def restore(self, data: Sequence[float]) -> None:
        self.log_d = self.prior.unpack(data, len(self.mixture.multiples))


def sample_ratio_log_e(n: int, k: int, share: float, tolerance: float, dispersion: float,
                       multiples: Sequence[float]) -> float:
    """log e-value against "the share of `k` among `n` is within `tolerance` (relative) of
    `share`": the sample-ratio test, a function of the step's totals only.

    The null is composite, the band ``[lo, hi] = share * (1 -+ tolerance)`` (clipped to
    [0, 1]): routing by sticky sender makes the realised share differ a little from the
    configured one, which is not a mismatch. Alternatives are odds ratios ``m`` (< 1) off the
    band's edges: below it ``odds(q) = m odds(lo)`` against ``lo``, above it
    ``odds(q) = odds(hi) / m`` against ``hi`` (symmetric: unified too low is legacy too high).
    A batch's likelihood ratio of ``q < lo`` against ``lo`` has mean ``<= 1`` under every
    ``p >= lo`` (and ``q > hi`` against ``hi`` under every ``p <= hi``), so each is a
    supermartingale under the whole band, and so is their mixture (half per side, uniform
    within). Tempered: the log-LR is divided by ``dispersion`` (>= 1); ``E[LR^(1/d)] <=
    E[LR]^(1/d) <= 1`` (Jensen), so validity holds, and requests arriving in sticky runs of
    about ``dispersion`` of one sender count as about one independent draw per run (a
    quasi-likelihood's overdispersion factor). The product over requests of tempered LRs is
    the tempered LR of the totals: the value depends on ``(n, k)`` alone, never on how they
    were batched, so it may be first looked at late (a configured share learnt after the
    step began) without losing validity: P(it ever reaches 1/alpha) <= alpha.
    """
    if n <= 0:
        return 0.0
    log_weight, terms = _sample_ratio_terms(share, tolerance, dispersion, tuple(multiples))
    if not terms:
        return 0.0
    return log_weight + _logsumexp([k * hit + (n - k) * miss for hit, miss in terms])


@functools.lru_cache(maxsize=1024)
def _sample_ratio_terms(share: float, tolerance: float, dispersion: float,
                        multiples: tuple[float, ...]
                        ) -> tuple[float, tuple[tuple[float, float], ...]]:
    """Per alternative of `sample_ratio_log_e`: its tempered log-LR per hit and per miss
    (the log-LR of k of n is ``k * hit + (n - k) * miss``), and the log weight of each."""
    lo, hi = share * (1 - tolerance), share * (1 + tolerance)
    edges: list[tuple[float, list[float]]] = []
    if lo > 0:
        odds = lo / (1 - lo)
        edges.append((lo, [odds * m / (1 + odds * m) for m in multiples]))
    if hi < 1:
        odds = hi / (1 - hi)
        edges.append((hi, [odds / m / (1 + odds / m) for m in multiples]))
    terms = tuple((math.log(q / edge) / dispersion,
                   (math.log1p(-q) - math.log1p(-edge)) / dispersion)
                  for edge, alternatives in edges for q in alternatives)
    return (-math.log(len(terms)) if terms else 0.0), terms
