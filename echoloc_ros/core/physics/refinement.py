"""Refinement of candidate poses by variable-projection Gauss-Newton."""

import numpy as np

from echoloc_ros.core.physics.kernels import fit_terms
from echoloc_ros.core.physics.matched_filter import Frame
from echoloc_ros.core.physics.results import Fit
from echoloc_ros.core.physics.config import (N_THETA, RESPONSE_HALF_S, STEP_LIMIT,
                                             STEP_TOLERANCE, YAW)


class Refinement:
    """Gauss-Newton (Levenberg-Marquardt) on the likelihood with the path amplitudes
    projected out, for a batch of starting points: a part of
    :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`."""

    def _fit(self, fr: Frame, thetas: np.ndarray, paths: np.ndarray, keep: np.ndarray,
             free: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], derivatives: bool = True,
             prior: bool = True, modelled: tuple[np.ndarray, ...] | None = None
             ) -> tuple[np.ndarray, ...]:
        """Log likelihood (amplitudes solved for, no prior), its gradient and its Gauss-Newton
        information over ``free``.

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
        :param derivatives: compute the gradient and information (else only the likelihood,
            amplitudes and evidence: the gradient and information returned are ``None``).
        :param prior: compute the log evidence with the amplitude prior (else the last entry
            is ``(gram (K, P, P), b (K, P), tau (K, P, n), amp (K, P, n))``, from which
            :meth:`_with_prior` gives it).
        :param modelled: :meth:`_paths`' ``(tau, amp)`` (with ``derivatives``, ``(tau, amp,
            dtau)``) at ``thetas``, when the caller has them already.
        :return: ``(log likelihood (K,), gradient (K, f), information (K, f, f), amplitudes
            (K, P), log evidence with the amplitude prior (K,))``; none includes the heading
            prior.
        """
        if modelled is None:
            modelled = (self._paths(fr, thetas, paths, keep, free=free) if derivatives
                        else self._paths(fr, thetas, paths, keep))
            modelled = modelled[:2] + modelled[3:]
        tau, amp = np.ascontiguousarray(modelled[0]), np.ascontiguousarray(modelled[1])
        dtau = (np.ascontiguousarray(modelled[2]) if derivatives
                else np.zeros(tau.shape + (0,)))
        features = fr.features
        factor = fr.table.shape[1] // features.baseband.shape[1]
        evidence, grad, info, a, gram, b = fit_terms(
            tau, amp, dtau, fr.weights, fr.table, features.start_s,
            factor / features.bin_width_s, features.carrier_hz, fr.t_min, fr.t_max,
            pairs[0], pairs[1], self.response.table, self.response.step_s, RESPONSE_HALF_S,
            self.response.zero, derivatives)
        last = self._with_prior(fr, gram, b)[0] if prior else (gram, b, tau, amp)
        if not derivatives:
            return evidence, None, None, a, last
        return evidence, grad, info, a, last

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
        n_start, f = theta0.shape[0], free.size
        paths, keep, modelled, pairs = self._starting_paths(fr, theta0, valid, free, iterations,
                                                            need_info or iterations > 0)
        n_paths = paths.size
        theta = np.array(theta0, dtype=float)
        best_theta = theta.copy()
        best_e = np.full(n_start, -np.inf)
        grad = np.zeros((n_start, f))
        info = np.zeros((n_start, f, f))
        coef = np.zeros((n_start, n_paths), dtype=complex)
        # What the evidence with the amplitude prior, and the caller, need at the best points.
        gram = np.zeros((n_start, n_paths, n_paths), dtype=complex)
        outputs = np.zeros((n_start, n_paths), dtype=complex)
        tau, amp = np.zeros(modelled[0].shape), np.zeros(modelled[0].shape)
        lam = np.full(n_start, 1e-3)
        active = np.ones(n_start, dtype=bool)
        limit, tolerance = STEP_LIMIT[free], STEP_TOLERANCE[free]
        # The heading prior's curvature on the free psi, if any.
        yaw_info = np.where(free == YAW, fr.yaw_info, 0.0)
        for iteration in range(iterations + 1):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            last = iteration == iterations
            e, g, h, a, (gm, b, tt, aa) = self._fit(fr, theta[rows], paths, keep[rows], free,
                                                    pairs, derivatives=need_info or not last,
                                                    prior=False,
                                                    modelled=modelled if iteration == 0 else None)
            e = e + fr.yaw_prior(theta[rows, YAW])
            better = e >= best_e[rows]
            won, lost = rows[better], rows[~better]
            best_theta[won], best_e[won] = theta[won], e[better]
            if g is not None:
                grad[won], info[won] = g[better], h[better]
            coef[won], gram[won], outputs[won] = a[better], gm[better], b[better]
            tau[won], amp[won] = tt[better], aa[better]
            lam[won] = np.maximum(lam[won] / 3.0, 1e-6)
            lam[lost] *= 10.0
            active[lost[lam[lost] > 1e3]] = False
            if last:
                # The step from the last point would not be evaluated.
                break
            rows = rows[active[rows]]
            if rows.size == 0:
                break
            step, solved = _damped_steps(info[rows], grad[rows], lam[rows],
                                         yaw_info * best_theta[rows, YAW, None], yaw_info)
            step = np.clip(step, -limit, limit)
            moving = solved & ~np.all(np.abs(step) < tolerance, axis=1)
            active[rows[~moving]] = False
            rows, step = rows[moving], step[moving]
            theta[rows] = best_theta[rows]
            theta[rows[:, None], free[None, :]] += step
        full = None
        if need_info:
            full = np.zeros((n_start, N_THETA, N_THETA))
            full[:, free[:, None], free[None, :]] = info
        return Fit(best_theta, self._evidence_at(fr, best_theta, best_e, gram, outputs), full,
                   coef, paths, keep, tau, amp)

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
        # Delays move by at most a few steps' worth: the overlapping pairs are found once.
        pairs = self._pairs(tau0, iterations * 2 * np.max(STEP_LIMIT[:3]) / fr.c0)
        return paths, keep, modelled, pairs

    def _evidence_at(self, fr: Frame, theta: np.ndarray, likelihood: np.ndarray,
                     gram: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Log evidence, with the amplitude and heading priors, of the fits at ``theta``
        ``(B, 5)`` whose likelihood is finite (0 for the others)."""
        evidence = np.zeros(len(theta))
        fitted = np.isfinite(likelihood)
        if np.any(fitted):
            evidence[fitted] = (self._with_prior(fr, gram[fitted], outputs[fitted])[0]
                                + fr.yaw_prior(theta[fitted, YAW]))
        return evidence


def _damped_steps(info: np.ndarray, grad: np.ndarray, lam: np.ndarray, prior_pull: np.ndarray,
                  yaw_info: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt steps for a batch: ``(info + lam |diag| + yaw_info) step = grad -
    prior_pull``, each row solved alone when the batch holds a singular system.

    :param info: information ``(B, f, f)``; ``grad`` ``(B, f)``; ``lam`` damping ``(B,)``.
    :param prior_pull: the heading prior's gradient at the current point ``(B, f)``.
    :param yaw_info: the heading prior's curvature on each free parameter ``(f,)``.
    :return: steps ``(B, f)`` (0 where singular) and which rows were solved ``(B,)``.
    """
    diagonal = np.arange(info.shape[-1])
    damped = info.copy()
    damped[:, diagonal, diagonal] += (lam[:, None] * np.abs(damped[:, diagonal, diagonal])
                                      + 1e-300 + yaw_info)
    rhs = grad - prior_pull
    try:
        return (np.linalg.solve(damped, rhs[..., None])[..., 0],
                np.ones(len(rhs), dtype=bool))
    except np.linalg.LinAlgError:
        step = np.zeros(rhs.shape)
        solved = np.zeros(len(rhs), dtype=bool)
        for r in range(len(rhs)):
            try:
                step[r] = np.linalg.solve(damped[r], rhs[r])
                solved[r] = True
            except np.linalg.LinAlgError:
                pass
        return step, solved
