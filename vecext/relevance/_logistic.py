"""Monotone logistic model with query-dependent slope and intercept (the shared core).

For query ``i`` with standardised inputs ``x_i`` (p,) and standardised similarities
``t_ij``::

    A_i = softplus(w_a . x_i + c_a)   (> 0, so the map is increasing in t)
    B_i = w_b . x_i + c_b
    P_ij = sigmoid(A_i * t_ij + B_i)

fitted by minimising ``sum_ij W_ij * logloss(P_ij, Y_ij) + lam/2 (|w_a|^2 + |w_b|^2)``
with L-BFGS and the analytic gradient. ``p = 0`` is global Platt scaling.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from vecext.relevance.checks import RelevanceError

__all__ = [
    "class_weights",
    "fit_monotone_logistic",
    "logits",
    "objective",
    "softplus",
    "softplus_inv",
]


def softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def softplus_inv(a: float) -> float:
    a = float(a)
    return a + float(np.log(-np.expm1(-a))) if a < 30 else a


def class_weights(Y: np.ndarray, mode: str | None) -> np.ndarray:
    """float64 pair weights summing to 1: ``balanced`` gives positives and negatives half
    the total weight each; ``None`` weighs every pair equally."""
    n_pos = int(Y.sum())
    n_neg = Y.size - n_pos
    if mode == "balanced":
        return np.where(Y, 0.5 / n_pos, 0.5 / n_neg)
    if mode is None or mode == "none":
        return np.full(Y.shape, 1.0 / Y.size)
    raise RelevanceError(f"class_weight must be 'balanced' or None, got {mode!r}")


def _softplus_sigmoid(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``softplus(U)`` and ``sigmoid(U)`` sharing one ``exp`` (stable for any U)."""
    E = np.exp(-np.abs(U))
    sp = np.maximum(U, 0.0) + np.log1p(E)
    inv = 1.0 / (1.0 + E)
    sig = np.where(U >= 0.0, inv, E * inv)
    return sp, sig


def _matvec(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    # numpy's own loop, not BLAS: these products are small, and multi-threaded BLAS on a
    # busy machine is 10-50x slower than one thread for them (and less reproducible).
    return np.einsum("ij,j->i", X, w)


def _rmatvec(X: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("ij,i->j", X, v)


def _unpack(theta: np.ndarray, p: int) -> tuple[np.ndarray, float, np.ndarray, float]:
    return theta[:p], float(theta[p]), theta[p + 1 : 2 * p + 1], float(theta[2 * p + 1])


def logits(theta: np.ndarray, X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The logits ``A_i * t_ij + B_i`` for parameters ``theta`` (standardised space)."""
    p = X.shape[1]
    wa, ca, wb, cb = _unpack(theta, p)
    A = softplus(_matvec(X, wa) + ca)
    B = _matvec(X, wb) + cb
    return A[:, None] * T + B[:, None]


def objective(
    theta: np.ndarray,
    X: np.ndarray,
    T: np.ndarray,
    Yf: np.ndarray,
    W: np.ndarray,
    lam: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Penalised weighted log-loss and its analytic gradient (``Yf`` float 0/1,
    ``lam`` a (p,) vector)."""
    p = X.shape[1]
    wa, ca, wb, cb = _unpack(theta, p)
    za = _matvec(X, wa) + ca
    A, sig_za = _softplus_sigmoid(za)
    B = _matvec(X, wb) + cb
    U = A[:, None] * T + B[:, None]
    spU, sigU = _softplus_sigmoid(U)
    loss = float(np.sum(W * (spU - Yf * U)))
    loss += 0.5 * float(lam @ (wa * wa) + lam @ (wb * wb))
    G = W * (sigU - Yf)  # d loss / d U
    dA = np.einsum("ij,ij->i", G, T)
    dB = G.sum(axis=1)
    dza = dA * sig_za  # softplus' = sigmoid
    grad = np.empty_like(theta)
    grad[:p] = _rmatvec(X, dza) + lam * wa
    grad[p] = dza.sum()
    grad[p + 1 : 2 * p + 1] = _rmatvec(X, dB) + lam * wb
    grad[2 * p + 1] = dB.sum()
    return loss, grad


def fit_monotone_logistic(
    X: np.ndarray,
    T: np.ndarray,
    Y: np.ndarray,
    W: np.ndarray,
    lam: float | np.ndarray,
    theta0: np.ndarray | None = None,
    *,
    max_iter: int = 1000,
) -> tuple[np.ndarray, dict]:
    """Fit ``theta = [w_a, c_a, w_b, c_b]`` (length ``2p + 2``). Returns (theta, info).

    ``lam`` is a scalar or a (p,) vector of per-input penalties (same for w_a and w_b).
    """
    nq, p = X.shape
    Yf = Y.astype(np.float64)
    if theta0 is None:
        theta0 = np.zeros(2 * p + 2)
        theta0[p] = softplus_inv(1.0)
    lam_v = np.array(np.broadcast_to(np.asarray(lam, dtype=np.float64), (p,)))
    res = minimize(
        objective,
        np.asarray(theta0, dtype=np.float64),
        args=(X, T, Yf, W, lam_v),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter), "maxcor": 20, "ftol": 1e-11, "gtol": 1e-7},
    )
    if not np.all(np.isfinite(res.x)):
        raise FloatingPointError("logistic fit diverged (non-finite parameters)")
    return res.x, {"loss": float(res.fun), "n_iter": int(res.nit), "converged": bool(res.success)}
