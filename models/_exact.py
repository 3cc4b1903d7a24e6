"""Exact posterior of the normal hierarchical model with known standard errors, flat mu and a
uniform tau, as functions of tau: Gelman et al. (2013), Bayesian Data Analysis, 3rd ed. (BDA3),
§5.4, and the curves of §5.5.

    y_j | theta_j ~ N(theta_j, sigma_j^2),   theta_j | mu, tau ~ N(mu, tau^2),   j = 1..J,
    p(mu) ∝ 1,   p(tau) ∝ 1 on (0, A]   (A = inf: BDA3's improper p(mu, tau) ∝ 1).

Given tau all is Gaussian. With s_j^2 = sigma_j^2 + tau^2,

    mu | tau, y ~ N(mu_hat, V_mu),   mu_hat = sum_j y_j / s_j^2 / sum_j 1 / s_j^2,
                                     V_mu^-1 = sum_j 1 / s_j^2                        (eq. 5.20)
    p(tau | y) ∝ p(tau) V_mu^(1/2) prod_j s_j^-1 exp(-(y_j - mu_hat)^2 / (2 s_j^2))    (eq. 5.21)
    theta_j | mu, tau, y ~ N((y_j / sigma_j^2 + mu / tau^2) / (1/sigma_j^2 + 1/tau^2), V_j),
                       V_j = 1 / (1/sigma_j^2 + 1/tau^2)                               (eq. 5.17)

and, averaging eq. 5.17 over mu | tau, y, with B_j = sigma_j^2 / s_j^2 (the weight of mu):

    E(theta_j | tau, y) = (1 - B_j) y_j + B_j mu_hat,    Var(theta_j | tau, y) = V_j + B_j^2 V_mu,

the curves of BDA3 Figures 5.6 and 5.7. Written with B_j and V_j = sigma_j^2 tau^2 / s_j^2, they
hold at tau = 0 too (complete pooling: theta_j = mu). The tail of p(tau | y) under a flat tau falls
like tau^(1 - J), so with A = inf the posterior is proper only for J >= 3.

Every function is vectorised over tau (any shape; a trailing axis of length J is added for
per-group values). numpy and scipy only. This module's name starts with an underscore, so
``models.available()`` does not list it as a prior spec.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize


def _arrays(y, se):
    y, se = np.asarray(y, float), np.asarray(se, float)
    if y.ndim != 1 or y.shape != se.shape or y.size < 2:
        raise ValueError(f"y and se must be two vectors of the same length >= 2, got shapes "
                         f"{y.shape} and {se.shape}")
    if not (se > 0).all():
        raise ValueError("every standard error must be > 0")
    return y, se


def mu_conditional(y, se, tau):
    """(mu_hat, V_mu): the mean and variance of mu | tau, y (eq. 5.20); each of tau's shape."""
    y, se = _arrays(y, se)
    precision = 1.0 / (se**2 + np.square(np.asarray(tau, float))[..., None])  # 1 / s_j^2
    v_mu = 1.0 / precision.sum(-1)
    return (precision * y).sum(-1) * v_mu, v_mu


def theta_conditional(y, se, tau):
    """(E, sd) of theta_j | tau, y, mu integrated out; each of shape tau.shape + (J,)."""
    y, se = _arrays(y, se)
    tau2 = np.square(np.asarray(tau, float))[..., None]
    mu_hat, v_mu = mu_conditional(y, se, tau)
    shrink = se**2 / (se**2 + tau2)  # B_j
    mean = (1 - shrink) * y + shrink * mu_hat[..., None]
    var = se**2 * tau2 / (se**2 + tau2) + shrink**2 * v_mu[..., None]
    return mean, np.sqrt(var)


def log_tau_kernel(y, se, tau):
    """log of the right-hand side of eq. 5.21 with p(tau) = 1: p(tau | y) up to a constant."""
    y, se = _arrays(y, se)
    s2 = se**2 + np.square(np.asarray(tau, float))[..., None]
    mu_hat, v_mu = mu_conditional(y, se, tau)
    return 0.5 * np.log(v_mu) - 0.5 * (np.log(s2) + (y - mu_hat[..., None]) ** 2 / s2).sum(-1)


@dataclass(frozen=True)
class TauPosterior:
    """p(tau | y) under p(mu) ∝ 1 and p(tau) ∝ 1 on (0, upper], normalised by quadrature."""

    y: np.ndarray
    se: np.ndarray
    upper: float  # A, the end of the prior's support (inf: improper flat prior)
    log_norm: float  # log of the integral of exp(log_tau_kernel) over (0, upper]

    def density(self, tau):
        """p(tau | y) at tau (any shape); 0 outside (0, upper]."""
        tau = np.asarray(tau, float)
        inside = (tau >= 0) & (tau <= self.upper)
        safe = np.where(inside, tau, 0.0)
        return np.where(inside, np.exp(log_tau_kernel(self.y, self.se, safe) - self.log_norm), 0.0)

    def cdf(self, tau):
        """P(tau' <= tau | y), by adaptive quadrature of the density; vectorised over tau."""
        def one(t):
            return min(1.0, _integral(self.density, 0.0, min(max(t, 0.0), self.upper), self.se))

        return np.vectorize(one, otypes=[float])(np.asarray(tau, float))[()]

    def quantile(self, q):
        """tau with P(tau' <= tau | y) = q, by root finding on ``cdf``; vectorised over q."""
        def one(p):
            if not 0 < p < 1:
                raise ValueError(f"quantile level {p} not in (0, 1)")
            hi = min(10.0 * self.se.max(), self.upper)
            while hi < self.upper and self.cdf(hi) < p:  # the tail may be heavy (J = 3: tau^-2)
                hi = min(10.0 * hi, self.upper)
            return optimize.brentq(lambda t: self.cdf(t) - p, 0.0, hi, xtol=1e-10, rtol=1e-12)

        return np.vectorize(one, otypes=[float])(np.asarray(q, float))[()]


def _integral(f, a, b, se) -> float:
    """The integral of f over (a, b), split at 1, 10 and 100 times the largest standard error
    (where the bulk of p(tau | y) lies) so that adaptive quadrature sees the peak."""
    knots = [a] + [k * se.max() for k in (1, 10, 100) if a < k * se.max() < b] + [b]
    return sum(integrate.quad(f, lo, hi, limit=200, epsabs=0, epsrel=1e-11)[0]
               for lo, hi in zip(knots[:-1], knots[1:]))


def tau_posterior(y, se, upper=np.inf) -> TauPosterior:
    """p(tau | y) of eq. 5.21 under p(tau) ∝ 1 on (0, upper]; ``upper`` = inf needs J >= 3."""
    y, se = _arrays(y, se)
    upper = float(upper)
    if not upper > 0:
        raise ValueError(f"upper={upper!r}: the uniform prior's upper bound must be > 0")
    if np.isinf(upper) and y.size < 3:
        raise ValueError(f"with {y.size} groups p(tau | y) ∝ tau^-{y.size - 1} in the tail is "
                         "improper under a flat prior on tau: give a finite upper bound")
    # the kernel's largest value, from a coarse log grid: subtracted before exponentiating
    reach = upper if np.isfinite(upper) else 1e6 * max(se.max(), np.ptp(y))
    coarse = np.concatenate([[0.0], np.geomspace(1e-6 * se.min(), reach, 2000)])
    peak = log_tau_kernel(y, se, coarse).max()
    total = _integral(lambda t: np.exp(log_tau_kernel(y, se, t) - peak), 0.0, upper, se)
    return TauPosterior(y=y, se=se, upper=upper, log_norm=float(peak + np.log(total)))
