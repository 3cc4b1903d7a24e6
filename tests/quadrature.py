"""Exact posterior of the normal-normal hierarchical model with known standard errors.

Model (eight schools; Gelman et al. 2013, Bayesian Data Analysis, 3rd ed. [BDA3], §5.4-5.5):

    y_j | theta_j ~ N(theta_j, se_j^2),   theta_j | mu, tau ~ N(mu, tau^2),   j = 1..J,
    tau ~ p(tau),   mu | tau ~ N(m0, v0),
    v0 = inf ("flat": p(mu) ∝ 1), scale^2 ("normal") or tau^2 / kappa0 ("nix").

Given tau all is Gaussian. With s_j^2 = se_j^2 + tau^2 and w_j = 1/s_j^2, y_j | mu, tau ~
N(mu, s_j^2) independently, so (BDA3 eq. 5.20, plus a proper prior on mu)

    mu | tau, y ~ N(M, 1/P),   P = 1/v0 + sum_j w_j,   M = m0 + sum_j w_j (y_j - m0) / P,
    log p(y | tau) = sum_j log N(y_j | M, s_j^2) + log N(M | m0, v0) - log N(M | M, 1/P)
                   = sum_j log N(y_j | M, s_j^2) - log(1 + v0 sum_j w_j)/2 - (M - m0)^2/(2 v0)
                   = sum_j log N(y_j | M, s_j^2) + log(2 pi / P)/2                   (flat mu),

the flat case being the integral over mu against Lebesgue measure (eq. 5.21, the restricted
likelihood of tau). theta_j | mu, tau, y ~ N(V_j (y_j/se_j^2 + mu/tau^2), V_j) with
V_j = 1/(1/se_j^2 + 1/tau^2) (eq. 5.17), so, averaging over mu (BDA3 exercise 5.12), with
B_j = se_j^2 / s_j^2,

    E[theta_j | tau, y] = (1 - B_j) y_j + B_j M,    Var[theta_j | tau, y] = V_j + B_j^2 / P.

Finally p(tau | y) ∝ p(tau) p(y | tau) (eq. 5.21), integrated by the trapezoid rule in
u = log tau (integrand p(tau | y) tau) on n_grid points from tau_min = 1e-8 min(se) to a tau_max
past which the integrand of E[tau^2] is below e^-30 of its peak (or the prior's upper bound; a
warning if E[tau^2] does not exist, e.g. flat tau and mu with J <= 4); the mass on (0, tau_min)
is taken as tau_min p(tau_min | y). The marginals of mu and theta_j are then mixtures of normals
over the grid: moments are the mixtures' exact moments, quantiles invert the mixture CDF
sum_i w_i Phi((x - m_i)/s_i) with brentq, and tau's quantiles interpolate its trapezoid CDF.

Only numpy and scipy: this is the independent truth that NumPyro fits are tested against.
"""

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import optimize, special, stats

LOG_2PI = np.log(2 * np.pi)
FAMILIES = {"half_normal": ("scale",), "half_cauchy": ("scale",), "half_t": ("df", "scale"),
            "uniform": ("upper",), "inv_gamma": ("shape", "scale"),
            "scaled_inv_chi2": ("df", "scale"), "flat": ()}


def tau_log_prior(family: str, **params) -> Callable[[np.ndarray], np.ndarray]:
    """Log prior density of tau >= 0 (-inf below); "flat" (p(tau) ∝ 1, improper) up to a constant.

    half_normal(scale), half_cauchy(scale), half_t(df, scale): the scipy.stats laws folded at 0;
    uniform(upper): U(0, upper); inv_gamma(shape, scale): tau^2 ~ InvGamma(shape, scale), so
    p(tau) = IG(tau^2) 2 tau; scaled_inv_chi2(df, scale): tau^2 ~ Scaled-Inv-chi^2(df, scale^2)
    = InvGamma(df/2, df scale^2/2). The returned function's ``upper`` is the end of the support.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown tau prior family {family!r}; known: {', '.join(FAMILIES)}")
    if set(params) != set(FAMILIES[family]):
        raise TypeError(f"tau prior {family!r} takes {FAMILIES[family]}, got {tuple(params)}")
    p = params

    def ig(a, b):  # density of tau when tau^2 ~ InvGamma(a, b)
        return lambda x: stats.invgamma(a, scale=b).logpdf(x * x) + np.log(2 * x)

    logpdf = {
        "half_normal": lambda: stats.halfnorm(scale=p["scale"]).logpdf,
        "half_cauchy": lambda: stats.halfcauchy(scale=p["scale"]).logpdf,
        "half_t": lambda: lambda x: np.log(2) + stats.t(p["df"], scale=p["scale"]).logpdf(x),
        "uniform": lambda: stats.uniform(0, p["upper"]).logpdf,
        "inv_gamma": lambda: ig(p["shape"], p["scale"]),
        "scaled_inv_chi2": lambda: ig(p["df"] / 2, p["df"] * p["scale"] ** 2 / 2),
        "flat": lambda: np.zeros_like,
    }[family]()

    def log_prior(tau):
        tau = np.asarray(tau, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(tau >= 0, logpdf(np.where(tau >= 0, tau, 1.0)), -np.inf)

    log_prior.upper = p["upper"] if family == "uniform" else np.inf
    return log_prior


def conditional(y, se, tau, mu_prior=("flat",)):
    """Given tau (any shape S): log p(y | tau), E and Var of mu | tau, y (shape S), E and Var of
    theta | tau, y (shape S + (J,)), by the formulas above. mu_prior: ("flat",),
    ("normal", loc, scale) or ("nix", loc, kappa0). log p(y | tau) is normalised but for flat."""
    y, se2 = np.asarray(y, float), np.square(np.asarray(se, float))
    tau2 = np.square(np.asarray(tau, float))[..., None]
    kind, *args = mu_prior
    if kind not in ("flat", "normal", "nix"):
        raise ValueError(f"unknown mu prior {mu_prior!r}")
    m0, v0 = {"flat": lambda: (0.0, np.inf), "normal": lambda: (args[0], args[1] ** 2),
              "nix": lambda: (args[0], tau2[..., 0] / args[1])}[kind]()
    w = 1 / (se2 + tau2)
    sum_w = w.sum(-1)
    precision = 1 / v0 + sum_w
    mean = m0 + (w * (y - m0)).sum(-1) / precision
    log_lik = -0.5 * (LOG_2PI - np.log(w) + w * (y - mean[..., None]) ** 2).sum(-1)
    if kind == "flat":
        log_lik += 0.5 * (LOG_2PI - np.log(precision))
    else:
        log_lik += -0.5 * np.log1p(v0 * sum_w) - 0.5 * (mean - m0) ** 2 / v0
    shrink = se2 * w  # B_j
    theta_mean = (1 - shrink) * y + shrink * mean[..., None]
    theta_var = se2 * tau2 * w + shrink**2 / precision[..., None]
    return log_lik, mean, 1 / precision, theta_mean, theta_var


def _normal_pdf(x, m, s):
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def _mixture_quantile(q, w, m, s):
    """Quantiles of sum_i w_i N(m_i, s_i^2), by brentq on the mixture CDF."""
    keep = w > 1e-16 * w.max()
    w, m, s = w[keep], m[keep], s[keep]
    mean = w @ m
    sd = np.sqrt(w @ (s**2 + (m - mean) ** 2))
    cdf = lambda x: w @ special.ndtr((x - m) / s)  # noqa: E731

    def one(p):
        if not 0 < p < 1:
            raise ValueError(f"quantile level {p} not in (0, 1)")
        guess, step = mean + sd * special.ndtri(p), 0.25 * sd  # a normal's quantile
        lo, hi = guess - step, guess + step
        while cdf(lo) > p:
            lo, step = lo - step, 2 * step
        while cdf(hi) < p:
            hi, step = hi + step, 2 * step
        return optimize.brentq(lambda x: cdf(x) - p, lo, hi, xtol=1e-12 * sd, rtol=1e-14)

    return np.vectorize(one, otypes=[float])(q)


@dataclass
class Reference:
    """Posterior of (tau, mu, theta) given y; see ``posterior``."""

    tau_mean: float
    tau_sd: float
    mu_mean: float
    mu_sd: float
    theta_mean: np.ndarray  # (J,)
    theta_sd: np.ndarray  # (J,)
    tau_mode: float  # argmax of p(tau | y) as a density in tau; 0.0 at the lower boundary
    tau: np.ndarray = field(repr=False)  # the grid, (n,)
    weights: np.ndarray = field(repr=False)  # quadrature weights of p(tau | y) there, sum 1
    mu_m: np.ndarray = field(repr=False)  # E and sd of mu | tau, y on the grid, (n,)
    mu_s: np.ndarray = field(repr=False)
    theta_m: np.ndarray = field(repr=False)  # E and sd of theta | tau, y on the grid, (n, J)
    theta_s: np.ndarray = field(repr=False)
    tau_cdf: np.ndarray = field(repr=False)  # P(tau <= grid point | y), (n,)
    log_joint: Callable = field(repr=False)  # log p(tau) + log p(y | tau)
    log_norm: float = field(repr=False)  # log of its integral over tau

    def tau_quantile(self, q):
        return np.exp(np.interp(q, self.tau_cdf, np.log(self.tau)))

    def mu_quantile(self, q):
        return _mixture_quantile(q, self.weights, self.mu_m, self.mu_s)[()]

    def theta_quantile(self, q):
        """Shape np.shape(q) + (J,)."""
        return np.stack([_mixture_quantile(q, self.weights, m, s)
                         for m, s in zip(self.theta_m.T, self.theta_s.T)], axis=-1)

    def tau_density(self, t):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(self.log_joint(np.asarray(t, float)) - self.log_norm)

    def mu_density(self, x):
        return _normal_pdf(np.asarray(x, float)[..., None], self.mu_m, self.mu_s) @ self.weights

    def theta_density(self, x):
        """Density of theta_j at x_j; x scalar or broadcastable to (..., J)."""
        x = np.asarray(x, float)
        x = x[..., None, :] if x.ndim else np.full((1, self.theta_m.shape[1]), x)
        pdf = _normal_pdf(x, self.theta_m, self.theta_s)
        return np.einsum("...nj,n->...j", pdf, self.weights)


def posterior(y, se, *, tau_log_prior, mu_prior=("flat",), n_grid=20_000,
              tau_max=None) -> Reference:
    """Posterior of the model above. tau_log_prior: from ``tau_log_prior``, or any vectorised
    log density on tau > 0 (an ``upper`` attribute caps the grid); mu_prior: as in
    ``conditional``; tau_max: the end of the grid, None to find it."""
    y, se = np.asarray(y, float), np.asarray(se, float)
    log_joint = lambda t: tau_log_prior(t) + conditional(y, se, t, mu_prior)[0]  # noqa: E731
    tau_min = 1e-8 * se.min()
    if tau_max is None:  # where the integrand of E[tau^2] over u = log tau is e^-30 of its peak
        coarse = np.geomspace(tau_min, 1e10 * max(se.max(), np.ptp(y)), 4000)
        log_g = log_joint(coarse) + 3 * np.log(coarse)
        last = np.flatnonzero(log_g > log_g.max() - 30)[-1]
        if last == coarse.size - 1:  # not negligible yet: is the tail ~ tau^slope integrable?
            slope = (log_g[-1] - log_g[-2]) / np.log(coarse[-1] / coarse[-2])
            if slope > -0.5 or log_g[-1] - log_g.max() > np.log(1e-8):
                warnings.warn(f"p(tau | y) has too heavy a tail for E[tau^2]: cut at "
                              f"{coarse[-1]:g}")
        tau_max = coarse[min(last + 1, coarse.size - 1)]
    tau_max = min(tau_max, getattr(tau_log_prior, "upper", np.inf))
    u = np.linspace(np.log(tau_min), np.log(tau_max), n_grid)
    tau = np.exp(u)
    tau[[0, -1]] = tau_min, tau_max
    log_tau_post = log_joint(tau)  # unnormalised log density in tau
    log_f = log_tau_post + u  # ... in u
    h = u[1] - u[0]
    trap = np.full(n_grid, h)
    trap[[0, -1]] = h / 2
    trap[0] += 1  # (0, tau_min): tau_min p(tau_min | y) = f(u_0)
    log_norm = special.logsumexp(log_f + np.log(trap))
    f = np.exp(log_f - log_norm)
    weights = f * trap
    cdf = f[0] + np.concatenate([[0.0], np.cumsum(h * (f[1:] + f[:-1]) / 2)])

    _, mu_m, mu_v, theta_m, theta_v = conditional(y, se, tau, mu_prior)
    mu_mean, theta_mean, tau_mean = weights @ mu_m, weights @ theta_m, weights @ tau
    i = int(np.argmax(log_tau_post))
    if tau[i] <= 1e-6 * se.min():  # at the lower end, to rounding of log p: the mode is 0
        tau_mode = 0.0
    elif i == n_grid - 1:
        tau_mode = float(tau_max)
    else:
        tau_mode = optimize.minimize_scalar(
            lambda t: -log_joint(np.array([t]))[0], bounds=(tau[i - 1], tau[i + 1]),
            method="bounded", options={"xatol": 1e-12 * tau[i]}).x
    return Reference(
        tau_mean=float(tau_mean), tau_sd=float(np.sqrt(weights @ (tau - tau_mean) ** 2)),
        mu_mean=float(mu_mean), mu_sd=float(np.sqrt(weights @ (mu_v + (mu_m - mu_mean) ** 2))),
        theta_mean=theta_mean,
        theta_sd=np.sqrt(weights @ (theta_v + (theta_m - theta_mean) ** 2)),
        tau_mode=float(tau_mode), tau=tau, weights=weights, mu_m=mu_m, mu_s=np.sqrt(mu_v),
        theta_m=theta_m, theta_s=np.sqrt(theta_v), tau_cdf=cdf, log_joint=log_joint,
        log_norm=float(log_norm))


def reml_tau(y, se) -> float:
    """REML estimate of tau: the mode of p(tau | y) under p(tau) ∝ 1 and flat mu, whose
    p(y | tau) is the restricted likelihood (mu integrated out under a flat prior)."""
    return posterior(y, se, tau_log_prior=tau_log_prior("flat"), mu_prior=("flat",)).tau_mode
