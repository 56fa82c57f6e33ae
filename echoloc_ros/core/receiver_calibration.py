"""The receivers' acoustic phase centres, measured from the echoes at known or tracked poses.

A receiver's phase centre differs from the drawing by fractions of a millimetre; 0.5 mm is a
fifth of a radian of the 40 kHz carrier's phase over a path (its wavelength is 8.6 mm), and
the localizer, which adds the receivers' matched-filter outputs coherently, loses the echo's
coherence and the fit's residual rises. The carrier phase measures it: at a known pose, each
isolated echo's matched-filter output at the delay the file's array predicts has, per
receiver, the phase ``-2 pi f_c (tau_true - tau_predicted)``; relative to the echo's coherent
sum over the receivers (its unknown reflection phase and any error of the pose common to
all) that is ``g_pi . delta_i - mean_j g_pj . delta_j``, with ``g_pi`` the delay's gradient
in receiver ``i``'s position along path ``p`` and ``delta_i`` its offset from the file. Over
frames whose echoes arrive from many directions (walls, floor, ceiling, corners) the offsets
follow by robust least squares, up to one shift common to every receiver, which the phase
cannot see (it moves every path's delay alike); the calibration keeps their mean at the
file's.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from echoloc_ros.core.array_geometry import (ArrayGeometry, array_from_dict, tilt_matrix,
                                             yaw_matrix)
from echoloc_ros.core.array_calibration import DIRECT_C_MPS
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor, direct_explained
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.paths import resolve_config
from echoloc_ros.core.physics.matched_filter import sample

# An echo whose delay lies within this of another path's at any receiver is not used: the
# point response's main lobe (83 us at 12 kHz) would mix their phases.
ISOLATION_S = 120e-6
# Echoes whose coherent power over the receivers is below this (noise units) are not used.
MIN_POWER = 100.0
# A phase further than this from the echo's mean is an echo the model does not have (a
# reflection of higher order), not an offset of 0.5 mm (0.37 rad), rad.
MAX_PHASE_RAD = 1.5
# Step of the numerical gradient of the delays in the receivers' positions, m.
GRADIENT_STEP_M = 1e-4
# What the calibration cannot resolve of each receiver's offset from the others, one standard
# deviation per coordinate, m: on dev worlds (3c, model-error seed 1, from the fixes) its rms
# error with the turn about the axis removed was 6-27 um where its least squares stated 3-5
# um, and 10-30 um at known poses (a dilation of the array, some of it), not growing with
# the offsets: a floor the stated doubt does not go below.
RESOLUTION_M = 2e-5
# Groups of frames left out in turn for the offsets' spread (a delete-a-group jackknife): an
# echo's phase error is shared by the echoes of its frame (its pose's error), which the least
# squares' own standard deviation, echo by echo, does not hold.
GROUPS = 10


@dataclass
class ReceiverCalibrationResult:
    """The receivers' offsets from the array file.

    :ivar offsets_m: each receiver's phase centre minus the file's position, array frame
        ``(n, 3)``, m (their mean is zero along the directions the phases cannot see: see the
        module's docstring and :func:`equaliser_advance`).
    :ivar std_m: their standard deviations ``(n, 3)``, m: the larger of the least squares'
        own and the spread of the solutions with a tenth of the frames left out in turn
        (:data:`GROUPS`), which also holds what an echo's frame shares (its pose's error),
        with :data:`RESOLUTION_M`.
    :ivar n_echoes: echoes the solution used.
    :ivar spread_m: how far the file's receivers lay from each other's phase centres, one
        standard deviation per coordinate (the offsets' spread about their mean), m: the
        measured size of the file's own error, of which the common shift is one more draw.
    :ivar unseen_axes: how much of each array axis ``(3,)`` the common shift the phases
        cannot see lies along (1: wholly unseen, 0: seen).
    """

    offsets_m: np.ndarray
    std_m: np.ndarray
    n_echoes: int
    spread_m: float = 0.0
    unseen_axes: np.ndarray = field(default_factory=lambda: np.ones(3))

    def array(self, array: ArrayGeometry) -> ArrayGeometry:
        """``array`` with its receivers at the measured phase centres and the doubt the
        calibration achieved (:meth:`position_std_m`, :meth:`common_std_m`)."""
        return replace(array, receivers_m=array.receivers_m + self.offsets_m,
                       position_std_m=self.position_std_m(array),
                       common_std_m=self.common_std_m(array))

    def position_std_m(self, array: ArrayGeometry) -> np.ndarray:
        """What the calibrated receivers' positions are still unsure of, each on its own
        ``(n, 3)``, m: each offset's standard deviation (``std_m``)."""
        return np.broadcast_to(self.std_m, array.receivers_m.shape).copy()

    def common_std_m(self, array: ArrayGeometry) -> np.ndarray:
        """The doubt of the receivers' common shift ``(3,)``, m, which the phases cannot see and
        the calibration keeps at the file's: the file's (its own ``common_std_m`` with its
        receivers' doubt over the square root of their number) or, where larger, the file's
        error the calibration measured (``spread_m``) over the same square root (the mean of
        ``n`` draws of it, widened as a Student t's of the spread's degrees of freedom), along
        the unseen axes. A file that states no doubt but whose receivers the calibration finds
        0.3 mm from the drawing has a common shift of that order too (issue 18: with the
        shipped arrays' 0 the term added nothing)."""
        n = array.n_receivers
        told = np.hypot(array.common_std_m,
                        np.sqrt(np.mean(array.position_std_m ** 2, axis=0)) / np.sqrt(n))
        # The spread is measured on 3 (n - 1) degrees of freedom: the shift's predictive
        # distribution is Student's t, whose variance is dof / (dof - 2) of the estimate's.
        dof = 3 * (n - 1)
        measured = self.spread_m / np.sqrt(n) * np.sqrt(dof / max(dof - 2, 1))
        return np.maximum(told, measured) * self.unseen_axes

    def to_dict(self) -> dict:
        """The offsets and their standard deviations in mm, for a JSON report."""
        return {'offsets_mm': np.round(1e3 * self.offsets_m, 3).tolist(),
                'std_mm': np.round(1e3 * self.std_m, 3).tolist(), 'n_echoes': self.n_echoes,
                'spread_mm': round(1e3 * self.spread_m, 4)}


class ReceiverCalibration:
    """Collects the per-receiver phases of isolated echoes at known poses (:meth:`add`) and
    solves for the receivers' offsets (:meth:`solve`).

    :param localizer: a physics localizer of the room and the array file (its processor made
        the features).
    """

    def __init__(self, localizer: PhysicsLocalizer) -> None:
        self.localizer = localizer
        self.rows: list[np.ndarray] = []
        self.phases_s: list[np.ndarray] = []
        self.weights: list[float] = []
        # Which frame (call of add) each echo came from.
        self.frame_of: list[int] = []
        self._frames = 0
        # The equaliser's advance per unit offset (equaliser_advance): where it differs
        # between receivers, their common shift is seen too.
        self.advance_gradient = equaliser_advance(localizer)[1]

    @property
    def n_echoes(self) -> int:
        """Echoes collected so far."""
        return len(self.weights)

    def add(self, features: EchoFeatures, position_m: np.ndarray, yaw_rad: float,
            temperature_c: float | None = None,
            tilt_rad: tuple[float, float] | None = None) -> int:
        """Measure one frame's echoes at a known pose.

        :param position_m: the array's position, room frame ``(3,)``, m.
        :param yaw_rad: its heading, rad.
        :param temperature_c: the air's, degC; ``None``: the room file's (the speed of sound
            is fitted to the echoes at the pose).
        :param tilt_rad: the array's roll and pitch while the frame was taken (an IMU's), rad;
            ``None``: level. The offsets are solved in the array's own frame, so a tilt known
            here is not taken for receivers moved up and down (and counted again when the
            localizer is told it).
        :return: the echoes of the frame that were used.
        """
        loc = self.localizer
        temperature = loc.room.temperature_c if temperature_c is None else temperature_c
        fr = loc.frame(features, yaw_rad, temperature, tilt_rad)
        rotation = yaw_matrix(yaw_rad) @ (np.eye(3) if tilt_rad is None
                                          else tilt_matrix(*tilt_rad))
        emitter = np.asarray(position_m, dtype=float) + rotation @ loc.array.emitter_m
        theta = loc.fit_room_at(fr, emitter).theta
        paths = np.flatnonzero(loc._valid_batch(fr, theta)[0])
        every = np.ones(paths.size, dtype=bool)
        tau, amp, _ = loc._paths(fr, theta, paths, every)
        tau, amp = tau[0], amp[0]
        usable = self._isolated(fr, tau, amp)
        if not usable.any():
            return 0
        tau, amp = tau[usable], amp[usable]
        z = sample(fr, tau)
        weighted = amp * fr.weights
        coherent = np.sum(weighted * z, axis=-1)
        power = np.abs(coherent) ** 2 / np.maximum(np.sum(weighted * amp, axis=-1), 1e-300)
        phase = np.angle(z * np.conj(coherent)[:, None])
        gradient = self._gradient(fr, theta, paths[usable], tau) @ rotation
        advance_s, advance_gradient = equaliser_advance(loc)
        self.advance_gradient = advance_gradient
        gradient = gradient - advance_gradient[None]
        used = 0
        for p in np.flatnonzero((power >= MIN_POWER)
                                & np.all(np.abs(phase) <= MAX_PHASE_RAD, axis=-1)):
            # The phase relative to the coherent sum: each receiver's term less their mean.
            n = tau.shape[1]
            row = np.zeros((n, n, 3))
            row[np.arange(n), np.arange(n)] = gradient[p]
            row -= gradient[p][None] / n
            self.rows.append(row.reshape(n, 3 * n))
            self.phases_s.append(-phase[p] / (2 * np.pi * features.carrier_hz)
                                 + advance_s - advance_s.mean())
            self.weights.append(float(power[p]))
            self.frame_of.append(self._frames)
            used += 1
        self._frames += 1
        return used

    def _isolated(self, fr, tau: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """Which paths ``(P,)`` are heard at every receiver with no other path within
        :data:`ISOLATION_S` of them at any receiver."""
        heard = np.all((tau > fr.t_min) & (tau < fr.t_max) & (amp > 0), axis=-1)
        gap = np.abs(tau[:, None] - tau[None])
        gap[np.arange(len(tau)), np.arange(len(tau))] = np.inf
        return heard & np.all(gap.min(axis=1) > ISOLATION_S, axis=-1)

    def _gradient(self, fr, theta: np.ndarray, paths: np.ndarray,
                  tau: np.ndarray) -> np.ndarray:
        """Each path's delay's gradient in its receiver's position, room axes
        ``(P, n, 3)``, s/m (a delay depends on its own receiver alone)."""
        out = np.empty(tau.shape + (3,))
        every = np.ones(paths.size, dtype=bool)
        for k in range(3):
            moved = replace(fr, offsets=fr.offsets + GRADIENT_STEP_M * np.eye(3)[k])
            out[..., k] = (self.localizer._paths(moved, theta, paths, every)[0][0]
                           - tau) / GRADIENT_STEP_M
        return out

    def solve(self, min_echoes: int = 50) -> ReceiverCalibrationResult:
        """The receivers' offsets from the echoes collected: weighted least squares (weights
        the echoes' coherent power), echoes beyond 3.5 robust standard deviations dropped once,
        and the offsets' mean held at zero along the directions the phases cannot see
        (:meth:`_unseen_shifts`).

        :raises ValueError: fewer than ``min_echoes`` echoes were collected.
        """
        if self.n_echoes < min_echoes:
            raise ValueError(f'{self.n_echoes} isolated echoes collected; need at least '
                             f'{min_echoes} (more frames, or poses with more echoes)')
        rows = np.concatenate(self.rows)
        phases = np.concatenate(self.phases_s)
        n = self.rows[0].shape[0]
        weights = np.repeat(self.weights, n)
        keep = np.ones(phases.size, dtype=bool)
        unseen = self._unseen_shifts()
        for _ in range(2):
            offsets, cov = self._least_squares(rows[keep], phases[keep], weights[keep], n,
                                               unseen)
            residual = (phases - rows @ offsets) * np.sqrt(weights)
            scale = 1.4826 * np.median(np.abs(residual[keep]))
            keep = np.abs(residual) <= 3.5 * max(scale, 1e-30)
        dof = max(np.count_nonzero(keep) - 3 * n + unseen.shape[0], 1)
        chi2 = np.sum(weights[keep] * (phases[keep] - rows[keep] @ offsets) ** 2) / dof
        variance = np.maximum(np.diag(cov), 0.0) * chi2
        group = np.repeat(np.asarray(self.frame_of) % GROUPS, n)
        left = [self._least_squares(rows[keep & (group != g)], phases[keep & (group != g)],
                                    weights[keep & (group != g)], n, unseen)[0]
                for g in range(GROUPS) if np.any(keep & (group == g))]
        if len(left) > 1:
            spread = np.var(left, axis=0) * (len(left) - 1)
            variance = np.maximum(variance, spread)
        offsets = offsets.reshape(n, 3)
        relative = offsets - offsets.mean(axis=0)
        return ReceiverCalibrationResult(
            offsets, np.sqrt(variance + RESOLUTION_M ** 2).reshape(n, 3), int(self.n_echoes),
            spread_m=float(np.sqrt(np.sum(relative ** 2) / (3 * max(n - 1, 1)))),
            unseen_axes=np.sqrt(np.sum(unseen ** 2, axis=0)))

    def _unseen_shifts(self) -> np.ndarray:
        """Directions ``(k, 3)`` of a shift common to every receiver that the phases cannot
        see: all three, unless the equaliser's advance differs between the receivers (a shift
        moves each one's direct path by its own amount) along some of them."""
        spread = self.advance_gradient - self.advance_gradient.mean(axis=0)
        _, sv, vt = np.linalg.svd(spread)
        seen = np.zeros(3, dtype=bool)
        seen[:sv.size] = sv > 1e-3 * max(float(np.max(sv, initial=0.0)), 1e-300)
        return vt[~seen] if sv.size and sv.max() > 0 else np.eye(3)

    @staticmethod
    def _least_squares(rows: np.ndarray, phases: np.ndarray, weights: np.ndarray,
                       n: int, unseen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offsets ``(3 n,)`` and their covariance up to the residual's scale, their mean held
        at zero along the ``unseen`` directions ``(k, 3)``."""
        normal = rows.T @ (weights[:, None] * rows)
        rhs = rows.T @ (weights * phases)
        # The common shift as a constraint: the sum over receivers along each unseen axis = 0.
        mean = np.tile(unseen, n)
        size, k = 3 * n, unseen.shape[0]
        kkt = np.zeros((size + k, size + k))
        kkt[:size, :size] = normal
        kkt[:size, size:] = mean.T
        kkt[size:, :size] = mean
        solution = np.linalg.lstsq(kkt, np.concatenate([rhs, np.zeros(k)]), rcond=None)[0]
        inverse = np.linalg.pinv(kkt)[:size, :size]
        return solution[:size], inverse


def equaliser_advance(localizer: PhysicsLocalizer) -> tuple[np.ndarray, np.ndarray]:
    """How the processor's array calibration moves each channel's echoes, for receivers at
    ``localizer``'s positions plus offsets ``delta``: ``a + G delta`` earlier, s.

    The equaliser (:meth:`~echoloc_ros.core.array_calibration.ArrayCalibration.equaliser`)
    maps each channel's measured direct arrival onto the one its processor's array predicts,
    delay included: a receiver whose phase centre lies farther from the emitter than the
    processor's array has it arrives later on the direct path, and the equaliser advances
    every echo of that channel by as much. The phases then see ``g - u / c`` per receiver
    (``u`` the unit vector from the emitter), not ``g``; once the processor reads the
    calibrated array (:func:`equalised_with`), the advance is gone.

    :return: ``a`` ``(n,)`` and ``G`` ``(n, 3)`` (array axes, s/m); zero without a
        calibration.
    """
    array = localizer.array
    processor = localizer.processor
    n = array.n_receivers
    if processor is None or processor.calibration is None or processor.array is None:
        return np.zeros(n), np.zeros((n, 3))
    arm = array.receivers_m - array.emitter_m
    distance = np.linalg.norm(arm, axis=1)
    told = np.linalg.norm(processor.array.receivers_m - processor.array.emitter_m, axis=1)
    return (distance - told) / DIRECT_C_MPS, arm / (distance[:, None] * DIRECT_C_MPS)


def equalised_with(processor: EchoProcessor, array: ArrayGeometry) -> None:
    """Let ``processor``'s equaliser read ``array`` (the file's with the receivers at their
    phase centres, same transducers): each channel's direct arrival is then expected where
    that receiver really is, and the echoes are not moved by its offset (see
    :func:`equaliser_advance`).

    :raises ValueError: an array with another number of receivers or other transducers.
    """
    now = processor.array
    if now is not None and (array.n_receivers != now.n_receivers
                            or array.transducer_center_hz != now.transducer_center_hz
                            or array.transducer_bandwidth_hz != now.transducer_bandwidth_hz):
        raise ValueError(f'array {array.name!r} ({array.n_receivers} receivers) is not the '
                         f'processor\'s array {now.name!r} ({now.n_receivers}) with its '
                         'receivers moved')
    processor.array = array
    processor.set_calibration(processor.calibration)


def calibrated_localizer(localizer: PhysicsLocalizer,
                         frames: Iterable[tuple[EchoFeatures, np.ndarray, float]],
                         min_echoes: int = 50
                         ) -> tuple[PhysicsLocalizer, ReceiverCalibrationResult]:
    """``localizer`` (of the array file) with its receivers at the phase centres measured on
    ``frames``: ``(features, position_m, yaw_rad)`` at known poses, room file frame, each with
    the array's ``(roll, pitch)`` after it where known (an IMU's; the offsets are then solved
    in the array's frame); a frame whose direct arrival the processor's model does not explain
    is skipped.

    :param min_echoes: isolated echoes needed (:meth:`ReceiverCalibration.solve`).
    :raises ValueError: too few isolated echoes (:meth:`ReceiverCalibration.solve`).
    """
    calibration = ReceiverCalibration(localizer)
    for features, position_m, yaw_rad, *tilt in frames:
        if direct_explained(features):
            calibration.add(features, position_m, yaw_rad, tilt_rad=tilt[0] if tilt else None)
    result = calibration.solve(min_echoes)
    return localizer.with_array(result.array(localizer.array)), result


def localized(localizer: PhysicsLocalizer,
              frames: Iterable[tuple[EchoFeatures, np.ndarray, float]],
              yaw_std_rad: float | None = None) -> list[tuple[EchoFeatures, np.ndarray, float]]:
    """``frames`` ``(features, position_m, yaw_rad)`` with each pose replaced by
    ``localizer``'s own fix (searched around the heading given, told the tilt a frame carries
    after it, which it keeps; a frame whose direct arrival the model does not explain is left
    out)."""
    out = []
    for features, _, yaw_rad, *tilt in frames:
        if direct_explained(features):
            estimate = localizer.localize(features, yaw_rad, yaw_std_rad=yaw_std_rad,
                                          tilt_rad=tilt[0] if tilt else None)
            out.append((features, estimate.position_m, estimate.yaw_rad, *tilt))
    return out


def calibrated_from_fixes(localizer: PhysicsLocalizer,
                          frames: list[tuple[EchoFeatures, np.ndarray, float]],
                          passes: int = 2, yaw_std_rad: float | None = None,
                          min_echoes: int = 50
                          ) -> tuple[PhysicsLocalizer, ReceiverCalibrationResult, list[dict]]:
    """The receivers calibrated without known poses: from the localizer's own fixes.

    Pass one measures the phases at the poses ``frames`` carry (the tracked poses of a
    recording, or fixes with the file's array); each further pass localizes every frame
    again with the array of the pass before and measures the phases at those fixes, always
    against the file's array (an error of the pose common to the receivers drops out of the
    phases, so one pass is close; the next removes what the file's array biased the fixes by).

    :param localizer: the physics localizer of the room and the array file.
    :param frames: ``(features, position_m, yaw_rad)``, room file frame.
    :param passes: calibrate-and-relocalize passes, at least 1.
    :param yaw_std_rad: the heading's standard deviation for the re-localization, rad.
    :param min_echoes: isolated echoes needed (:meth:`ReceiverCalibration.solve`).
    :return: the localizer with the calibrated array, the last pass' result and per pass
        ``{'echoes': n, 'change_mm': rms change of the offsets from the pass before}``.
    :raises ValueError: ``passes`` below 1, or too few isolated echoes.
    """
    if passes < 1:
        raise ValueError(f'passes must be >= 1, got {passes}')
    history, offsets, posed = [], np.zeros_like(localizer.array.receivers_m), frames
    for k in range(passes):
        calibrated, result = calibrated_localizer(localizer, posed, min_echoes)
        change = np.sqrt(np.mean(np.sum((result.offsets_m - offsets) ** 2, axis=1)))
        history.append({'echoes': result.n_echoes, 'change_mm': round(1e3 * float(change), 4)})
        offsets = result.offsets_m
        if k + 1 < passes:
            posed = localized(calibrated, posed, yaw_std_rad)
    return calibrated, result, history


# What array_yaml adds to the description of the array file it writes.
CALIBRATED_NOTE = 'receivers at their acoustic phase centres (echoloc calibrate-receivers'


def receivers_calibrated(array: ArrayGeometry) -> bool:
    """Whether ``array`` was read from a file :func:`array_yaml` wrote (its description says
    so): its receivers stand at their measured phase centres."""
    return CALIBRATED_NOTE in array.description


def array_yaml(source: str | Path, result: ReceiverCalibrationResult) -> str:
    """The array file ``source`` (an array name or YAML path) as YAML text with its receivers
    at the phase centres ``result`` measured (to the micrometre) and the doubt it achieved
    (:meth:`ReceiverCalibrationResult.position_std_m` and ``common_std_m``); its name and
    every other field as written, so that frames naming the array still match it. A comment at
    the top gives the offsets from the file and their standard deviations."""
    data = yaml.safe_load(resolve_config('arrays', source).read_text(encoding='utf-8'))
    receivers = np.asarray(data['receivers_m'], dtype=float) + result.offsets_m
    data['receivers_m'] = np.round(receivers, 6).tolist()
    note = f'{CALIBRATED_NOTE}, {result.n_echoes} echoes)'
    data['description'] = f'{data.get("description", "")} ({note})'.strip()
    array = array_from_dict({**data, 'receivers_m': receivers})
    data['position_std_m'] = np.round(result.position_std_m(array), 7).tolist()
    data['common_std_m'] = np.round(result.common_std_m(array), 7).tolist()
    header = ''.join(f'# receiver {i}: offset {np.round(1e3 * o, 3).tolist()} mm, std '
                     f'{np.round(1e3 * s, 3).tolist()} mm\n'
                     for i, (o, s) in enumerate(zip(result.offsets_m, result.std_m)))
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
