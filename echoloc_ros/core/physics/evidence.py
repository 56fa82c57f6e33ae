"""The evidence of the image-source model for candidate poses."""

import numpy as np

from echoloc_ros.core.physics.config import N_THETA, PRIOR_SCALE, RESPONSE_HALF_S, YAW
from echoloc_ros.core.physics.covariance import MIN_INFORMATION_RATIO
from echoloc_ros.core.physics.kernels import gram_terms, path_terms, residual_power, synthesis
from echoloc_ros.core.physics.late_orders import late_allowance
from echoloc_ros.core.physics.matched_filter import Frame, lower_quartile
from echoloc_ros.core.physics.newton import evidence_batch, near_pairs
from echoloc_ros.core.physics.fix_kernels import fit_residual, path_misfit, weighted_residual
from echoloc_ros.core.room_tolerance import (NONLINEAR_SHARE, delay_metric, doubt_allowance,
                                             residual_allowance, surface_shifts)


class Evidence:
    """The image-source model of a frame and its evidence: delays and amplitudes of the paths,
    the matched-filter outputs at them with the point response's overlap, the Bayesian
    evidence with a Gaussian prior on each path's amplitude, the synthesised fit and its
    residual: a part of :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`."""

    def _paths(self, fr: Frame, thetas: np.ndarray, paths: np.ndarray,
               keep: np.ndarray | None = None, valid: np.ndarray | None = None,
               free: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Delays and predicted amplitudes of image paths for a batch of parameters.

        :param thetas: ``(K, 5)``: emitter x, y, z (m), kappa = c / c0 and psi (rad).
        :param paths: indices of the images to model ``(P,)``.
        :param keep: which of them to keep ``(K, P)`` or ``(P,)``; ``None`` keeps those inside
            the window and stronger than ``min_relative_amplitude`` of the strongest wall echo.
        :param valid: ``(K, P)``: which paths exist for each (``None``: all).
        :param free: indices into ``theta``: also return the derivatives of tau with respect to
            them ``(K, P, n, f)``.
        :return: ``tau (K, P, n)`` s, ``amp (K, P, n)`` (0 for dropped paths), ``keep (K, P)``
            [, ``dtau``].
        """
        n_batch, n_paths = thetas.shape[0], len(paths)
        decide = keep is None
        if decide:
            keep = np.ones((n_batch, n_paths), dtype=bool) if valid is None else valid
        keep = np.ascontiguousarray(keep if keep.ndim == 2 else np.tile(keep, (n_batch, 1)))
        tau, amp, keep, dtau = path_terms(
            np.ascontiguousarray(thetas, dtype=float), *self._geometry(fr, paths), keep, decide,
            np.zeros(0, dtype=np.int64) if free is None else np.asarray(free, dtype=np.int64))
        if free is None:
            return tau, amp, keep
        return tau, amp, keep, dtau

    def _geometry(self, fr: Frame, paths: np.ndarray) -> tuple:
        """What :func:`~echoloc_ros.core.physics.kernels.path_terms` takes of the paths
        ``(P,)`` and the frame, from ``img_m`` to ``min_relative``."""
        array = self.array
        return (self._img_m[paths], self._img_t[paths], self._img_refl[paths],
                self._vertical_only[paths], fr.offsets, fr.c0, fr.absorb,
                2 * np.pi * self.chirp.center_hz / fr.c0 * array.piston_radius_m, array.gains,
                fr.t_min, fr.t_max, self.min_relative_amplitude)

    def _signal(self, fr: Frame, pairs: tuple[np.ndarray, np.ndarray]) -> tuple:
        """What :func:`~echoloc_ros.core.physics.kernels.fit_terms` takes of the frame, the
        path pairs ``(p, q)`` that may overlap and the point response, from ``weights`` to
        ``zero``."""
        features = fr.features
        return (fr.weights, fr.table, features.start_s,
                fr.table.shape[1] // features.baseband.shape[1] / features.bin_width_s,
                features.carrier_hz, fr.t_min, fr.t_max, pairs[0], pairs[1],
                self.response.table, self.response.step_s, RESPONSE_HALF_S, self.response.zero)

    def amplitude(self, fr: Frame, delta: np.ndarray, dist: np.ndarray,
                  reflection: np.ndarray | float) -> np.ndarray:
        """Predicted amplitude at each receiver of a path from an image ``delta`` away
        (receiver - image, ``(..., n, 3)``; ``dist`` its length ``(..., n)``): the surfaces'
        ``reflection``, spherical spreading, air absorption, both transducers' directivity and
        the receivers' gains."""
        directivity = self.array.directivity(self.chirp.center_hz, delta[..., 2] / dist,
                                             fr.c0) ** 2
        return (reflection / dist * np.exp(-fr.absorb * dist) * directivity
                * self.array.gains)

    def _evidence(self, fr: Frame, tau: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """Log evidence of the image-source model for a batch of path sets.

        With ``z`` the matched-filter outputs at the predicted delays, the least-squares fit of
        one complex amplitude per path (scaling its predicted amplitudes across receivers)
        needs only ``b_p = sum_i A_ip z_i(tau_ip) / s_i^2`` and the Gram matrix
        ``M_pq = sum_i A_ip A_iq r(tau_ip - tau_iq) / s_i^2`` (r: the analytic point response,
        also the correlation of the matched filter's noise). With a complex Gaussian prior of
        variance ``v`` on each amplitude the log evidence (noise units) is
        ``b^H (M + I / v)^-1 b - log det(I + v M)`` (:meth:`_with_prior`).

        :param tau: ``(K, P, n)`` s.
        :param amp: ``(K, P, n)``, 0 for paths not modelled.
        :return: ``(K,)``.
        """
        used = np.any(amp > 0, axis=(0, 2))
        gram, b = self._gram_terms(fr, tau[:, used], amp[:, used])
        return self._with_prior(fr, gram, b)

    def _gram_terms(self, fr: Frame, tau: np.ndarray,
                    amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gram matrices ``(K, P, P)`` and matched-filter outputs ``(K, P)`` of a batch of path
        sets (``tau``, ``amp``: ``(K, P, n)``), over the pairs of paths that may overlap."""
        return gram_terms(np.ascontiguousarray(tau), np.ascontiguousarray(amp),
                          *self._signal(fr, self._pairs(tau)))

    @staticmethod
    def _with_prior(fr: Frame, gram: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log evidence ``b^H (M + I / v)^-1 b - log det(I + v M)`` for Gram matrices
        ``(K, P, P)`` and outputs ``b (K, P)``, with ``v = PRIOR_SCALE * gain^2``."""
        return evidence_batch(np.ascontiguousarray(gram), np.ascontiguousarray(b),
                              PRIOR_SCALE * fr.gain ** 2)

    @staticmethod
    def _pairs(tau: np.ndarray, margin_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Path pairs ``(p, q)``, p < q, within ``RESPONSE_HALF_S + margin_s`` of each other on
        some receiver for some row of ``tau (K, P, n)``."""
        return near_pairs(np.ascontiguousarray(tau), RESPONSE_HALF_S + margin_s)

    def _score(self, fr: Frame, thetas: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Log evidence of the full model with the heading prior at each of ``thetas (K, 5)``;
        ``valid (K, P)``."""
        tau, amp, _ = self._paths(fr, thetas, np.arange(len(self._sequences)), valid=valid)
        return self._evidence(fr, tau, amp) + fr.yaw_prior(thetas[:, YAW])

    def _valid_batch(self, fr: Frame, thetas: np.ndarray) -> np.ndarray:
        """:meth:`_valid_images` for each of ``thetas (K, 5)``: ``(K, P)``."""
        if self._shoebox and not self._faces:
            return np.ones((thetas.shape[0], len(self._sequences)), dtype=bool)
        return self._valid_images(thetas[:, :3], thetas[:, :3] + fr.offsets.mean(axis=0))

    def synthesise(self, fr: Frame, tau: np.ndarray, amp: np.ndarray,
                   coef: np.ndarray) -> np.ndarray:
        """Baseband of the fitted paths ``coef_p amp_ip exp(-j 2 pi f_c tau_ip) g(t - tau_ip)``
        on the frame's bins ``(n, n_bins)``; ``tau, amp (P, n)``, ``coef (P,)``."""
        features = fr.features
        return synthesis(np.ascontiguousarray(tau), np.ascontiguousarray(amp),
                         np.ascontiguousarray(coef), features.baseband.shape[1],
                         features.start_s, features.bin_width_s, features.carrier_hz,
                         self.response.table[0], self.response.step_s, RESPONSE_HALF_S)

    def _fit_residual(self, fr: Frame, tau: np.ndarray, amp: np.ndarray,
                      coef: np.ndarray) -> tuple:
        """The fit ``tau, amp (P, n)``, ``coef (P,)`` synthesised, the residual's power over its
        paths' main lobes and their bins, and the residual in noise units, in one compiled
        call (:func:`fit_residual`): what :meth:`_residual_ratio` and
        :meth:`_information_ratio` read of a final fit (either takes it as ``fitted``)."""
        features = fr.features
        dt = features.bin_width_s
        return fit_residual(features.baseband, np.ascontiguousarray(tau),
                            np.ascontiguousarray(amp), np.ascontiguousarray(coef),
                            np.ascontiguousarray(fr.weights, dtype=float), features.start_s, dt,
                            features.carrier_hz, self.response.table[0], self.response.step_s,
                            RESPONSE_HALF_S,
                            int(np.ceil(1.2 * self.processor.mainlobe_half_width_s / dt)))

    def _residual_ratio(self, fr: Frame, tau: np.ndarray, amp: np.ndarray,
                        coef: np.ndarray, fitted: np.ndarray | tuple | None = None,
                        theta: np.ndarray | None = None, at_least: float | None = None
                        ) -> float:
        """Residual power of a fit over the noise floor in the main lobes of its paths.

        About 1 when the model explains the echoes; larger when echoes are missing from it
        (unknown furniture, higher orders) or the fit sits on the wrong echoes. The fitted
        amplitudes absorb part of the noise: each removes about one correlation length of bins.
        Given the fit's ``theta (5,)`` in a room that states a tolerance, the power is judged
        against the noise and the residual the tolerance is expected to leave
        (:meth:`_tolerance_allowance`, through :func:`doubt_allowance`); the allowance the
        tolerated rivals read is kept (``judged_allowance``: :data:`NONLINEAR_SHARE` of it).
        Given it in a final fit with the room's higher orders, also against what the orders
        it leaves out leave (:func:`late_allowance`).

        :param fitted: the fit's :meth:`synthesise`, where the caller has it already, or
            :meth:`_fit_residual`'s (its power over the main lobes too).
        :param at_least: the ratio is given as at least this. The late orders' allowance
            only lowers it, so where the ratio without it is at most ``at_least`` it is not
            computed (0.3-0.4 ms a fix): the same value either way. The stages bench's
            default-room frames at 20 dB skip it in 25 of the 34 fixes that take it, 71 of
            300 with every order simulated.
        """
        features = fr.features
        dt = features.bin_width_s
        half = int(np.ceil(1.2 * self.processor.mainlobe_half_width_s / dt))
        modelled = np.any(amp > 0, axis=1)
        # The allowance of the last ratio (PhysicsLocalizer._fix_fit keeps it for the
        # tolerated rivals).
        self.judged_allowance = 0.0
        if not modelled.any():
            return 1.0
        if isinstance(fitted, tuple):
            fitted, power, n_bins, _ = fitted
        else:
            if fitted is None:
                fitted = self.synthesise(fr, tau, amp, coef)
            power, n_bins = residual_power(features.baseband, fitted,
                                           np.ascontiguousarray(tau), np.ascontiguousarray(amp),
                                           fr.weights, features.start_s, dt, half)
        dof = max(n_bins - np.count_nonzero(modelled) * self._correlation_factor, 0.25 * n_bins)
        if theta is not None and self.room.tolerance_m > 0:
            expected = self._tolerance_allowance(fr, theta, tau, amp, coef)
            self.judged_allowance = NONLINEAR_SHARE * expected
            dof += doubt_allowance(expected)
        ratio = power / dof
        if theta is not None and not (at_least is not None and ratio <= at_least):
            ratio = power / (dof + late_allowance(self, fr, theta, tau, amp, coef, half))
        return float(ratio if at_least is None else max(ratio, at_least))

    def _tolerance_allowance(self, fr: Frame, theta: np.ndarray, tau: np.ndarray,
                             amp: np.ndarray, coef: np.ndarray) -> float:
        """The residual energy (noise units) the room file's tolerance is expected to leave
        in a fit at ``theta (5,)`` of paths ``tau, amp (P, n)``, ``coef (P,)``: the delays'
        derivatives in the surfaces' offsets (:func:`surface_shifts`, cached per model) and
        in the fitted parameters, through :func:`residual_allowance`."""
        paths = np.flatnonzero(np.any(amp > 0, axis=1))
        if paths.size == 0:
            return 0.0
        shifts = getattr(self, '_surface_shift_cache', None)
        if shifts is None or shifts.shape[0] != self._img_t.shape[0]:
            shifts = surface_shifts(self._img_m, self._img_t, self._sequences, self._normals,
                                    self._offsets)
            self._surface_shift_cache = shifts
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        _, _, _, d_theta = self._paths(fr, theta[None], paths, np.ones(paths.size, dtype=bool),
                                       free=free)
        # d tau / d img_t: minus the unit vector from the image to the receiver over the speed.
        rotated = fr.rotated_offsets(theta[YAW:YAW + 1])[0]
        images = np.einsum('pij,j->pi', self._img_m[paths], theta[:3]) + self._img_t[paths]
        toward = theta[:3] + rotated[None] - images[:, None]
        toward /= np.linalg.norm(toward, axis=-1, keepdims=True) * (fr.c0 * theta[3])
        d_offset = -np.einsum('pia,psa->pis', toward, shifts[paths])
        shape, carrier, echo = self._echo_moments(fr)
        metric = delay_metric(amp[paths], coef[paths], fr.weights, shape, carrier)
        energy = echo * np.abs(coef[paths]) ** 2 * np.sum(fr.weights * amp[paths] ** 2, axis=1)
        return residual_allowance(self.room.tolerance_m, metric, d_theta[0], d_offset, energy)

    def _echo_moments(self, fr: Frame) -> tuple[float, float, float]:
        """:func:`delay_metric`'s ``shape`` and ``carrier`` (one echo's delay derivative
        ``h = -j w g - g'`` against its point response ``g``) and ``sum |g|^2``, summed over
        the frame's bins."""
        features = fr.features
        key = (features.carrier_hz, features.bin_width_s)
        cached = getattr(self, '_echo_moment_cache', None)
        if cached is None or cached[0] != key:
            g, slope = self.response.table[0], self.response.table[1]
            h = -2j * np.pi * features.carrier_hz * g - slope
            per_bin = self.response.step_s / features.bin_width_s
            energy = float(np.sum(np.abs(g) ** 2))
            carrier = abs(np.sum(h * np.conj(g))) ** 2 / energy * per_bin
            shape = float(np.sum(np.abs(h) ** 2)) * per_bin - carrier
            cached = (key, (shape, carrier, energy * per_bin))
            self._echo_moment_cache = cached
        return cached[1]

    def _information_ratio(self, fr: Frame, tau: np.ndarray, amp: np.ndarray,
                           coef: np.ndarray, fitted: np.ndarray | tuple | None = None) -> float:
        """What the echoes' information is divided by in a fix's covariance: the product of
        :meth:`_residual_floor` and :meth:`_path_misfit`, at least ``MIN_INFORMATION_RATIO``.

        :meth:`_residual_ratio` (the residual in every modelled path's main lobes over the
        frame's floor) scaled every axis alike, and it overstates the error where the frame
        holds echoes the model leaves out: the frame's floor, the lower quartile of the whole
        window, counts the echoes the fit explains as noise, and the unmodelled higher orders
        among the late weak paths raise their residual, while the strong early paths that
        carry the information are fitted to the noise.

        :param fitted: the fit's :meth:`synthesise`, where the caller has it already, or
            :meth:`_fit_residual`'s (the residual too).
        """
        floor, misfit = self._residual_floor(fr, tau, amp, coef, fitted)
        return max(floor * misfit, MIN_INFORMATION_RATIO)

    @staticmethod
    def _missing_share(fr: Frame, amp: np.ndarray, coef: np.ndarray) -> float:
        """The share of the echo energy a fit's pose predicts that its fit does not find: over
        its modelled paths (``amp (P, n)``, 0 for paths not modelled; ``coef (P,)`` fitted),
        ``sum_p E_p (1 - min(|coef_p| / gain, 1))^2 / sum_p E_p`` with ``E_p = gain^2 sum_i
        amp_ip^2 / s_i^2`` each path's predicted energy in noise units (``gain``: the frame's
        amplitude scale, :attr:`~echoloc_ros.core.physics.matched_filter.Frame.gain`).

        The prediction holds each surface's absorption, the path's spreading and the
        transducers' directivity: in a soft room the soft surface's echo is predicted weak
        and its absence costs little, while a fix in the wrong place predicts strong echoes
        (a near wall's) where the frame has none, and its fit, free in each path's amplitude,
        sets them to about 0 and explains the rest at the noise. Dev, 10 dB, shoeboxes
        (branch r38-04): right fixes 0.002 at the median, at most 0.10; the confident fixes
        metres off 0.25-0.78 (:data:`~echoloc_ros.core.withhold.SHOEBOX_MISSING_SHARE`).
        0 where nothing is modelled.
        """
        energy = fr.gain ** 2 * np.sum(amp ** 2 * fr.weights, axis=1)
        total = float(energy.sum())
        if not total > 0.0:
            return 0.0
        found = np.minimum(np.abs(coef) / fr.gain, 1.0)
        return float(np.sum(energy * (1.0 - found) ** 2) / total)

    def _residual_floor(self, fr: Frame, tau: np.ndarray, amp: np.ndarray,
                        coef: np.ndarray, fitted: np.ndarray | tuple | None = None
                        ) -> tuple[float, float]:
        """The noise floor of the fit's residual over the frame's, and the paths' misfit
        over it (:meth:`_path_misfit`).

        The frame's floor (:meth:`frame`: the lower quartile of the power over the window,
        which sets the information's scale) is measured before any echo is explained; among
        dense echoes they fill more than a quarter of the window and raise it (by about 1.8
        in power with every order in the window). Measured the same way on the frame less
        its fitted echoes, it is the noise the fit leaves.

        :return: ``(floor, misfit)``, the floor in units of the frame's; ``(1, the pooled
            residual ratio)`` where the residual's floor is 0.
        """
        features = fr.features
        dt = features.bin_width_s
        if isinstance(fitted, tuple):
            fitted, residual = fitted[0], fitted[3]
        else:
            if fitted is None:
                fitted = self.synthesise(fr, tau, amp, coef)
            residual = weighted_residual(features.baseband, np.ascontiguousarray(fitted),
                                         np.ascontiguousarray(fr.weights, dtype=float))
        first = min(max(int(np.ceil((fr.t_min - features.start_s) / dt)), 0),
                    features.baseband.shape[1] - 1)
        floor = float(lower_quartile(residual[:, first:].reshape(1, -1))[0]) / np.log(4.0 / 3.0)
        if not floor > 0.0:
            # A residual without noise (a frame synthesised without it): nothing to compare.
            return 1.0, self._residual_ratio(fr, tau, amp, coef, fitted)
        return floor, self._path_misfit(fr, residual, floor, tau, amp, coef)

    def _path_misfit(self, fr: Frame, residual: np.ndarray, floor: float, tau: np.ndarray,
                     amp: np.ndarray, coef: np.ndarray) -> float:
        """Each modelled path's residual over the noise floor in its own main lobes (its bins
        within ``1.2`` main-lobe half-widths of its delay on each receiver that receives it,
        less the correlation length of bins its fitted amplitude absorbs), at least 1,
        weighted by its echo's energy ``|coef_p|^2 sum_i amp_ip^2 / s_i^2``, in proportion to
        which it carries information.

        A path an unmodelled echo overlaps is pulled by it, and the others are not: its
        information is divided by its own misfit, not by the pool's. Less than 1 is noise
        (a path's lobes hold about 6 independent samples).

        :param residual: the frame less the fit, in noise units ``(n, n_bins)``
            (:func:`weighted_residual`); ``floor``: the noise floor it is measured against.
        :param tau: ``(P, n)`` s; ``amp``: ``(P, n)``, 0 for paths not modelled; ``coef``:
            ``(P,)`` fitted amplitudes.
        :return: 1 when no path is modelled.
        """
        half = int(np.ceil(1.2 * self.processor.mainlobe_half_width_s
                           / fr.features.bin_width_s))
        return path_misfit(residual, floor, np.ascontiguousarray(tau, dtype=float),
                           np.ascontiguousarray(amp, dtype=float),
                           np.ascontiguousarray(coef), fr.weights, fr.features.start_s,
                           fr.features.bin_width_s, half, self._correlation_factor)
