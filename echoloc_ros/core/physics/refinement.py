"""Refinement of candidate poses by variable-projection Gauss-Newton."""

import numpy as np

from echoloc_ros.core.physics.config import (N_THETA, PRIOR_SCALE, RESPONSE_HALF_S, STEP_LIMIT,
                                             STEP_TOLERANCE)
from echoloc_ros.core.physics.kernels import fit_terms
from echoloc_ros.core.physics.matched_filter import Frame
from echoloc_ros.core.physics.newton import near_pairs, newton_from
from echoloc_ros.core.physics.results import Fit


class Refinement:
    """Gauss-Newton (Levenberg-Marquardt) on the likelihood with the path amplitudes
    projected out, for a batch of starting points: a part of
    :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`."""

    def _fit(self, fr: Frame, thetas: np.ndarray, paths: np.ndarray, keep: np.ndarray,
             free: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Log likelihood (amplitudes solved for, no prior), its gradient and its Gauss-Newton
        information over ``free``: what each iteration of :meth:`_newton` evaluates
        (compiled, :mod:`~echoloc_ros.core.physics.newton`).

        In the raw-signal picture the model is ``S(theta) a`` (one column per path) and the
        likelihood is that of the least-squares fit with the amplitudes solved for (variable
        projection, Golub & Pereyra 1973). The gradient is ``2 Re <residual, J_k>`` and the
        information ``2 Re [J^H J - J^H S A^-1 S^H J]`` (Kaufman's approximation), with
        ``J_k = d(S a)/d theta_k`` and A the Gram matrix. Every inner product is one of the
        matched-filter outputs, its derivative, or the analytic point response r and its first
        two derivatives at the delay differences: ``<s_tau, s_t> = r(t - tau)``,
        ``<d s_tau, s_t> = -r'(t - tau)``, ``<d s_tau, d s_t> = -r''(t - tau)``.

        :param thetas: ``(K, 5)``.
        :param paths: image indices ``(P,)``.
        :param keep: which of them each row models ``(K, P)``.
        :param free: indices into theta of the parameters fitted ``(f,)``.
        :param pairs: ``(p, q)`` with p < q: the path pairs that may overlap.
        :return: ``(log likelihood (K,), gradient (K, f), information (K, f, f), amplitudes
            (K, P), log evidence with the amplitude prior (K,))``; none includes the heading
            prior.
        """
        tau, amp, _, dtau = self._paths(fr, thetas, paths, keep, free=free)
        evidence, grad, info, a, gram, b = fit_terms(tau, amp, dtau, *self._signal(fr, pairs),
                                                     True)
        return evidence, grad, info, a, self._with_prior(fr, gram, b)

    def _newton(self, fr: Frame, theta0: np.ndarray, valid: np.ndarray, free: np.ndarray,
                iterations: int, need_info: bool = True) -> Fit:
        """Maximise the likelihood over the ``free`` entries of ``theta`` by damped
        Gauss-Newton (Levenberg-Marquardt) steps, for several starting points at once.

        The paths modelled are those kept at each starting point. The heading prior enters the
        objective, its gradient and the step's information (a regulariser on psi), not the
        information returned.

        :param theta0: starting points ``(B, 5)``.
        :param valid: images that exist for each ``(B, P)``.
        :param need_info: return the information at the best points (else ``info`` is
            ``None``, and the last evaluation skips the derivatives).
        :return: the best point of each start, its evidence, information (inverse covariance
            of theta before scaling by the residual), amplitudes, and its paths' delays and
            predicted amplitudes.
        """
        free = np.asarray(free, dtype=np.int64)
        # The paths' start (:meth:`_starting_paths`) and the iterations in one compiled call.
        signal = self._signal(fr, (None, None))
        fit = newton_from(
            np.array(theta0, dtype=float), np.ascontiguousarray(valid, dtype=bool),
            self._geometry(fr, slice(None)), signal[:7] + signal[9:], free, iterations,
            need_info, need_info or iterations > 0, self._pair_limit_s(fr, iterations),
            fr.yaw_info, STEP_LIMIT[free], STEP_TOLERANCE[free], PRIOR_SCALE * fr.gain ** 2)
        return self._fit_result(free if need_info else None, *fit)

    @staticmethod
    def _fit_result(free: np.ndarray | None, theta: np.ndarray, evidence: np.ndarray,
                    info: np.ndarray, coef: np.ndarray, tau: np.ndarray, amp: np.ndarray,
                    paths: np.ndarray, keep: np.ndarray) -> Fit:
        """:func:`newton_from`'s outputs as a :class:`Fit`, the information over the ``free``
        parameters placed in the full ``(B, 5, 5)`` (``None``: no information)."""
        full = None
        if free is not None:
            full = np.zeros((len(theta), N_THETA, N_THETA))
            full[:, free[:, None], free[None, :]] = info
        return Fit(theta, evidence, full, coef, paths, keep, tau, amp)

    def _starting_paths(self, fr: Frame, theta0: np.ndarray, valid: np.ndarray,
                        free: np.ndarray, iterations: int, derivatives: bool
                        ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...],
                                   tuple[np.ndarray, np.ndarray]]:
        """The paths :meth:`_newton` models (those kept at some starting point), which each
        start keeps, their delays and amplitudes there (and with ``derivatives`` the delays'
        derivatives: the first evaluation's), and the path pairs that may overlap."""
        paths = np.flatnonzero(np.any(valid, axis=0))
        start = self._paths(fr, theta0, paths, valid=valid[:, paths],
                            free=free if derivatives else None)
        tau0, keep = start[0], start[2]
        used = np.any(keep, axis=0)
        paths, keep, tau0 = paths[used], keep[:, used], tau0[:, used]
        modelled = (tau0, start[1][:, used]) + ((start[3][:, used],) if derivatives else ())
        pairs = near_pairs(tau0, self._pair_limit_s(fr, iterations))
        return paths, keep, modelled, pairs

    @staticmethod
    def _pair_limit_s(fr: Frame, iterations: int) -> float:
        """How near two paths' delays at the start of :meth:`_newton` are for their overlap to
        be modelled, s: the point response's half-width and, as the delays move by at most a
        few steps' worth, two step limits per iteration (the pairs are found once)."""
        return RESPONSE_HALF_S + iterations * 2 * np.max(STEP_LIMIT[:3]) / fr.c0
