"""The neural localizer at run time: physics proposes, the network chooses, physics refines.

``NeuralLocalizer.localize(features, yaw_rad, temperature_c, yaw_std_rad)`` returns the same
:class:`~echoloc_ros.core.physics.results.Estimate` as :class:`PhysicsLocalizer`:

1. :meth:`PhysicsLocalizer.propose` finds and scores the candidate poses (at the optimization
   level the checkpoint was trained on, so that the network sees the candidates it learned);
2. the :class:`~echoloc_ros.core.model.CandidateRanker` reads the echoes each candidate
   predicts and gives the probability that each is right, and that none is;
3. when the network doubts the frame (it gives "none of them" more than
   :data:`WIDE_NONE_PROBABILITY`, or its best candidate less than
   :data:`WIDE_BEST_PROBABILITY`), the frame is proposed again by a wider search (physics'
   ``accurate`` level, :data:`WIDE_RESCAN` peaks on the weak axis' rescan), the network ranks
   those candidates too, and the proposal whose best candidate it trusts more is kept;
4. :meth:`PhysicsLocalizer.finish` refines the most probable candidate to sub-millimetre and
   gives its covariance, widened toward the other candidates by their probabilities and over
   the room by the probability that none is right;
5. physics' own fix of the frame (its best candidate refined, the peaks of the evidence along
   x, y and the height it does not clearly beat refined, and searched again where doubtful,
   exactly as :meth:`PhysicsLocalizer.localize` gives it: :data:`PHYSICS_SCANS`; for a
   room-independent network, that of the wide search's proposal where it was made and physics
   tells it apart from the first's as a better explained rival: :data:`PHYSICS_FROM_WIDE`)
   stands instead where the network's fix is elsewhere, physics' explains its echoes (or leaves
   them no less explained than the network's) and they prefer it by more than
   :data:`PHYSICS_KEPT_GAP` of log evidence (:meth:`NeuralLocalizer.physics_stands`): the
   network overrides a physics fix only where physics cannot tell the two apart, or where
   physics' fix leaves the echoes unexplained and the network's explains them better; where a
   room-independent network doubts the proposal it chose from (the wide search's test,
   :meth:`NeuralLocalizer.doubts`), physics' fix stands unless the network's explains the
   echoes better (:attr:`NeuralLocalizer.defer_doubted`): there the network's choice is a guess
   no better than physics' (dev split, 10 dB: docs/results.md, issue 19, branch r35-94), and
   physics' fix carries physics' own doubt (confidence 0 where a rival explains the echoes as
   well), as physics alone publishes it;
6. where the network and physics disagree, the fix published is given confidence 0 and a
   covariance that holds the other (:attr:`NeuralLocalizer.carry_doubt`,
   :meth:`NeuralLocalizer.disputed`), so that a node without a tracker withholds it as it
   withholds physics' doubted fixes: physics' own fix is elsewhere and the network doubts
   its choice, or the network's fix is published and the echoes do not tell physics' from
   it (:meth:`NeuralLocalizer.choice_doubted`). Without it the network published a wrong fix,
   sure of it, that physics withheld, and physics' confident wrong fixes where the network
   doubted and chose elsewhere (docs/results.md, issue 19, branch r36-05).

Optimization levels set how the network runs: ``accurate`` and ``balanced`` in eager float,
``fast`` as a frozen TorchScript graph of the same float model (same numbers, about half the
time: the model is small enough that the interpreter's per-op overhead dominates). Dynamic
int8 quantization (:func:`quantize`) is measured by ``echoloc optimize``; on this model it
is slower than float on a CPU, so no level uses it.
"""

import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.localization import Fix
from echoloc_ros.core.model import (CandidateRanker, ModelConfig, TrainedFor, load_checkpoint,
                                    model_inputs)
from echoloc_ros.core.nn_features import LAGS_S, candidate_example
from echoloc_ros.core.nn_inference import RankerForward
from echoloc_ros.core.physics.config import (RIVAL_COVER_WEIGHT, UNEXPLAINED_RATIO,
                                             UNSEPARATED_GAP)
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.results import Estimate, Proposal
from echoloc_ros.core.room import Room

OPTIMIZATION_LEVELS = ('fast', 'balanced', 'accurate')
#: The network doubts a frame when it gives "none of the candidates" more than this ...
WIDE_NONE_PROBABILITY = 0.3
#: ... or its best candidate less than this. In the furnished room at 10 dB about 10 % of
#: frames are doubted, and they hold every frame whose fix is > 10 cm off (docs/model.md).
WIDE_BEST_PROBABILITY = 0.7
#: The wide search: physics' ``accurate`` proposer (8 peaks per axis, 30 pairs, both axes'
#: echoes explained in turn, two heights, 0.5 deg heading steps) keeping this many peaks of the
#: weak axis' rescan. It misses the truth in far fewer frames, at 4-5 times the proposal time.
WIDE_LEVEL = 'accurate'
WIDE_RESCAN = 20
#: Physics' fix stands against the network's when its refined log evidence is higher by more
#: than this: physics' own rule for a rival it can tell from its fix (``UNSEPARATED_GAP``, not
#: fitted). On the dev split at 10 dB the general network's fixes that lost to physics' right
#: ones were 5-424 log units worse explained (docs/results.md, issue 19, r30-43).
PHYSICS_KEPT_GAP = UNSEPARATED_GAP
#: Two fixes closer than this are the same place (the gross-error threshold, m).
SAME_PLACE_M = 0.10
#: Physics' own fix, the one that may stand against the network's, is made as
#: :meth:`PhysicsLocalizer.localize` makes it, with the axis and height scans (at the
#: checkpoint's proposer level; not at the network's ``fast`` level). Without them the
#: guard compared the network against a physics that missed what physics itself finds
#: (docs/results.md, issue 19, branch r32-66).
PHYSICS_SCANS = True
#: Where the wide search ran, physics' own fix is also made from the wide proposal, and that
#: one stands where physics' rule for a rival it can tell apart says so (it explains the
#: echoes, is elsewhere and is better explained by more than :data:`PHYSICS_KEPT_GAP`;
#: :meth:`NeuralLocalizer.physics_stands`). The balanced proposal physics' fix came from can
#: miss the truth where the wide one holds it: on the dev split at 10 dB physics' fix of the
#: first proposal was 487 cm off on one doubted frame in 136, that of the wide proposal right
#: and 15.7 log units ahead, and no fix was lost (docs/results.md, issue 19, branch r37-04).
#: A room-independent network's path only (the one measured), as ``defer_doubted``.
PHYSICS_FROM_WIDE = True


def quantize(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the model's ``nn.Linear`` layers (a copy)."""
    with warnings.catch_warnings():
        # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao, which is not
        # a dependency; the eager API still works and is what we measure.
        warnings.simplefilter('ignore')
        from torch.ao.quantization import quantize_dynamic
        # The encoder's fused fast path reads float weights; quantized layers need the plain
        # path (process-wide switch; the float path gives the same numbers).
        torch.backends.mha.set_fastpath_enabled(False)
        quantized = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    quantized.config = model.config
    return quantized


def frozen_script(model: CandidateRanker, example: dict[str, np.ndarray]
                  ) -> torch.jit.ScriptModule:
    """The model traced on ``example`` (one :func:`candidate_example`, or a batch of them),
    frozen and optimised for inference: a TorchScript graph that runs any batch size."""
    inputs = model_inputs({k: torch.as_tensor(v) for k, v in example.items()})
    with torch.inference_mode(), warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated in favour of torch.compile, which needs a C++
        # compiler at run time; the frozen graph is what this machine can run and measure.
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model.eval(), inputs)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def _inference_forward(model: nn.Module):
    """:class:`~echoloc_ros.core.nn_inference.RankerForward` of an eager float
    :class:`CandidateRanker`; any other model (a frozen graph, a quantized model) itself."""
    if not isinstance(model, CandidateRanker):
        return model
    try:
        return RankerForward(model)
    except ValueError:
        return model


class NeuralLocalizer:
    """A trained :class:`CandidateRanker` over a :class:`PhysicsLocalizer` for one room.

    :param model: the network (eval mode).
    :param checkpoint: its checkpoint dict.
    :param physics: the localizer that proposes and refines, at the checkpoint's level.
    :param device: ``'cpu'`` or ``'cuda'``.
    :param wide_search: propose again, more widely (:attr:`wide`), the frames the network
        doubts.
    :param physics_guard: physics' own fix stands where the echoes prefer it clearly
        (:meth:`physics_stands`); ``False``: the network's choice always.
    :param defer_doubted: with the guard, where the network doubts the proposal it chose
        from (:meth:`doubts`), physics' own fix stands unless the network's explains the
        echoes better (:meth:`physics_stands` with ``network_doubts``); ``False``: as where
        it is sure; ``None``: for a room-independent network (the one it was measured on),
        not a room's own.
    :param carry_doubt: with the guard, the fix published is given confidence 0 where the
        network and physics disagree (:meth:`choice_doubted`); ``False``: as it was made;
        ``None``: as ``defer_doubted`` (a room-independent network's only).
    """

    def __init__(self, model: nn.Module, checkpoint: dict[str, Any],
                 physics: PhysicsLocalizer, device: str = 'cpu',
                 wide_search: bool = True, physics_guard: bool = True,
                 defer_doubted: bool | None = None,
                 carry_doubt: bool | None = None) -> None:
        self.model = model
        #: what :meth:`probabilities` runs: the model's operations without its modules'
        #: calls (:class:`~echoloc_ros.core.nn_inference.RankerForward`, the same logits), or
        #: the model itself where that cannot run it (a frozen graph, a quantized model).
        self.forward = _inference_forward(model)
        self.checkpoint = checkpoint
        self.physics = physics
        self.wide_search = wide_search
        self.physics_guard = physics_guard
        self._wide: PhysicsLocalizer | None = None
        self.device = torch.device(device)
        self.temperature = float(checkpoint.get('temperature', 1.0))
        #: scale of the physics covariance of a right fix, fitted on held-out frames.
        self.covariance_scale = float(checkpoint.get('covariance_scale', 1.0))
        self.config = ModelConfig.from_dict(checkpoint['config'])
        self.n_candidates = int(self.config.n_candidates)
        #: a room-independent network (any room; :mod:`echoloc_ros.core.model`).
        self.general = bool(self.config.room_independent)
        #: where the network doubts its proposal, physics' fix stands unless the network's
        #: explains the echoes better (see ``defer_doubted`` above).
        self.defer_doubted = self.general if defer_doubted is None else bool(defer_doubted)
        #: the fix published, confidence 0 where the two disagree (``carry_doubt``).
        self.carry_doubt = self.general if carry_doubt is None else bool(carry_doubt)
        lags = checkpoint.get('input_spec', {}).get('lags_s')
        if lags is not None and not np.allclose(lags, LAGS_S):
            raise ValueError(f'model was trained on lags {lags}; this build reads '
                             f'{LAGS_S.tolist()}')

    @classmethod
    def from_checkpoint(cls, path: str | Path, room: Room, array: ArrayGeometry, chirp: Chirp,
                        fs_hz: float = 250e3, processor: EchoProcessor | None = None,
                        device: str = 'cpu', optimization_level: str = 'balanced',
                        num_threads: int | None = 1,
                        wide_search: bool = True,
                        physics_scans: bool | None = None) -> 'NeuralLocalizer':
        """Load a checkpoint for ``room``/``array``/``chirp``.

        :param optimization_level: ``'fast'`` (the float model as a frozen TorchScript graph,
            physics' own fix without the axis scans, as physics' ``fast``), ``'balanced'`` or
            ``'accurate'`` (eager float).
        :param num_threads: torch intra-op threads; ``None`` leaves torch's setting.
        :param wide_search: propose again, more widely, the frames the network doubts.
        :param physics_scans: physics' own fix (:meth:`physics_fix`, the guard's) scans the
            evidence along x, y and the height as :meth:`PhysicsLocalizer.localize` does;
            ``False``: without them, as before; ``None``: :data:`PHYSICS_SCANS`.
        :raises ValueError: missing or unreadable checkpoint, another room (unless the
            checkpoint is room-independent), array or chirp, unknown level or device, CUDA
            asked for but absent.
        """
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f'optimization_level must be one of {OPTIMIZATION_LEVELS}, got '
                             f'{optimization_level!r}')
        if device not in ('cpu', 'cuda'):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('device cuda requested but torch sees no CUDA device')
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        expect = TrainedFor(room=room.name, array=array.to_dict(), chirp=chirp.to_dict())
        model, ckpt = load_checkpoint(path, expect, map_location=device)
        if not isinstance(model, CandidateRanker):
            raise ValueError(f'{path} does not hold a candidate ranker')
        # The proposer the training data was made with (checkpoints before n_rescan: None).
        spec = ckpt.get('input_spec', {})
        physics_scans = PHYSICS_SCANS if physics_scans is None else bool(physics_scans)
        # The axis and height scans run in physics' own fix only (physics_fix, the guard's):
        # the network's finish, given its probabilities, does not read them.
        physics = PhysicsLocalizer(room, array, chirp, fs_hz, processor=processor,
                                   optimization_level=spec.get('optimization_level', 'balanced'),
                                   n_rescan=spec.get('n_rescan'),
                                   axis_rivals=physics_scans and optimization_level != 'fast')
        model = model.to(device)
        if optimization_level == 'fast':
            # Trace on one frame's input with every slot filled (shapes are what matter).
            example = candidate_example(physics, None, model.config.n_candidates,
                                        general=model.config.room_independent)
            example['keep'][:] = True
            example['present'][:] = True
            example = {k: v[None] for k, v in example.items()}
            model = frozen_script(model, example)
        return cls(model, ckpt, physics, device, wide_search)

    def with_room(self, room: Room) -> 'NeuralLocalizer':
        """This network over a physics localizer for ``room`` as it stands now (the same room
        with its furniture moved in the room file): the model was trained on the room with
        its furniture moved about, so it stays valid."""
        return NeuralLocalizer(self.model, self.checkpoint, self.physics.with_room(room),
                               str(self.device), self.wide_search, self.physics_guard,
                               self.defer_doubted, self.carry_doubt)

    @property
    def room(self) -> Room:
        """The room the network localizes in (its physics localizer's)."""
        return self.physics.room

    @property
    def wide(self) -> PhysicsLocalizer:
        """The wide proposer: physics at :data:`WIDE_LEVEL` over :attr:`physics`' room, built
        on first use (most frames never need it)."""
        if self._wide is None:
            p = self.physics
            self._wide = PhysicsLocalizer(p.room, p.array, p.chirp, p.fs_hz,
                                          processor=p.processor, optimization_level=WIDE_LEVEL,
                                          n_rescan=WIDE_RESCAN)
        return self._wide

    def probabilities(self, examples: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities ``(B, M + 1)`` (each candidate, then none) for a batch of
        :func:`~echoloc_ros.core.nn_features.candidate_example` outputs stacked on axis 0."""
        batch = {k: torch.as_tensor(v) for k, v in examples.items()}
        with torch.inference_mode():
            logits = self.forward(*model_inputs(batch, self.device)) / self.temperature
            return torch.softmax(logits.float(), dim=1).double().cpu().numpy()

    def rank(self, proposal: Proposal) -> tuple[np.ndarray, float]:
        """The network's probabilities for ``proposal``'s candidates, then none
        ``(len(proposal.thetas) + 1,)``: candidates beyond the network's slots get 0 (they
        count as wrong with the rest of "none"); and the seconds the forward pass took."""
        example = candidate_example(self.physics, proposal, self.n_candidates,
                                    general=self.general)
        t0 = time.perf_counter()
        p = self.probabilities({k: v[None] for k, v in example.items()})[0]
        inference_s = time.perf_counter() - t0
        m = min(self.n_candidates, len(proposal.thetas))
        full = np.zeros(len(proposal.thetas) + 1)
        full[:m] = p[:m]
        full[-1] = p[-1]
        return full, inference_s

    def fix(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None = None,
            yaw_std_rad: float | None = None, wide_search_allowed: bool = True,
            tilt_rad: tuple[float, float] | None = None) -> Fix:
        """One fix, with whether the network doubted it and searched it widely; the
        arguments are :meth:`~echoloc_ros.core.localization.Localizer.fix`'s.

        :raises ValueError: as :meth:`PhysicsLocalizer.localize` (wrong channel count, no
            floor or ceiling echo, non-finite heading, ...).
        """
        fix, _, _ = self.fixes(features, yaw_rad, temperature_c, yaw_std_rad,
                               wide_search_allowed, tilt_rad)
        return fix

    def fixes(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None = None,
              yaw_std_rad: float | None = None, wide_search_allowed: bool = True,
              tilt_rad: tuple[float, float] | None = None
              ) -> tuple[Fix, Estimate, Estimate | None]:
        """:meth:`fix`'s fix, the network's own fix and physics' own (``None`` without the
        guard), of which :meth:`physics_stands` chose the published one (by its
        ``network_doubts`` rule where the network doubts the proposal it chose from and
        :attr:`defer_doubted`; what ``scripts/nn-outside-study.py`` and
        ``scripts/nn-tie-study.py`` record). Same arguments."""
        proposal = first = self.physics.propose(features, yaw_rad, temperature_c, yaw_std_rad,
                                                tilt_rad)
        p, inference_s = self.rank(proposal)
        doubted = self.doubts(p)
        wide = wide_search_allowed and self.wide_search and doubted
        kept = False
        wider = None
        if wide:
            wider = self.wide.propose(features, yaw_rad, temperature_c, yaw_std_rad,
                                      tilt_rad)
            q, wide_s = self.rank(wider)
            inference_s += wide_s
            if q[:-1].max() > p[:-1].max():
                proposal, p = wider, q
                kept = True
        index = int(np.argmax(p[:-1]))
        network_fix = estimate = self.physics.finish(proposal, index, p,
                                                     self.covariance_scale)
        physics_fix = None
        if self.physics_guard:
            from_wide = PHYSICS_FROM_WIDE and self.general
            physics_fix = self.physics_fix(first, wider if from_wide else None)
            network_doubts = self.defer_doubted and self.doubts(p)
            stands = self.physics_stands(physics_fix, network_fix, network_doubts)
            estimate = physics_fix if stands else network_fix
            if (self.carry_doubt and estimate.confidence > 0.0
                    and self.choice_doubted(network_fix, physics_fix, p, stands)):
                estimate = self.disputed(estimate, network_fix if stands else physics_fix)
        return Fix(estimate, doubted, wide, kept, inference_s), network_fix, physics_fix

    @staticmethod
    def doubts(p: np.ndarray) -> bool:
        """Whether the network doubts a proposal it gave the probabilities ``p`` (each
        candidate, then none): "none" more than :data:`WIDE_NONE_PROBABILITY` or its best
        candidate less than :data:`WIDE_BEST_PROBABILITY`."""
        return bool(p[-1] > WIDE_NONE_PROBABILITY or p[:-1].max() < WIDE_BEST_PROBABILITY)

    def physics_fix(self, proposal: Proposal, wider: Proposal | None = None) -> Estimate:
        """Physics' own fix from its ``proposal`` (:meth:`PhysicsLocalizer.settled`, as
        :meth:`PhysicsLocalizer.localize` gives it, with the axis and height scans unless the
        localizer was built without them: ``physics_scans``, the network's ``fast`` level);
        given the wide search's proposal ``wider``, physics' fix of that one instead where it
        stands against the first by :meth:`physics_stands` (:data:`PHYSICS_FROM_WIDE`). The
        wide proposal is settled only where its best candidate is elsewhere than the first's
        (:data:`SAME_PLACE_M`): from the same start it settles where the first did, and in
        9 of 12 doubted dev frames timed at 10 dB the two start there (the settling costs
        0.1-0.4 s of CPU a frame)."""
        fix = self.physics.settled(proposal)
        if wider is None or np.linalg.norm(
                wider.positions_m()[0] - proposal.positions_m()[0]) < SAME_PLACE_M:
            return fix
        other = self.physics.settled(wider)
        return other if self.physics_stands(other, fix) else fix

    @staticmethod
    def physics_stands(physics_fix: Estimate, network_fix: Estimate,
                       network_doubts: bool = False) -> bool:
        """Whether physics' fix stands against the network's: physics' fix explains its
        echoes (a residual over the noise of at most physics' ``UNEXPLAINED_RATIO``, or of at
        most the network fix's own where that leaves them less explained still: else its
        evidence is not to be trusted against the network's) and, where the network is sure
        of its choice, the two are not the same place (:data:`SAME_PLACE_M` apart or more)
        and physics' explains the echoes better by more than :data:`PHYSICS_KEPT_GAP` of log
        evidence (both refined alike, so their evidence compares); where the network doubts
        (``network_doubts``), physics' explains them at least as well."""
        explained = max(UNEXPLAINED_RATIO, network_fix.residual_ratio)
        if physics_fix.residual_ratio > explained:
            return False
        if network_doubts:
            return bool(physics_fix.score >= network_fix.score)
        apart = np.linalg.norm(physics_fix.position_m - network_fix.position_m) >= SAME_PLACE_M
        return bool(apart and physics_fix.score > network_fix.score + PHYSICS_KEPT_GAP)

    @staticmethod
    def choice_doubted(network_fix: Estimate, physics_fix: Estimate, p: np.ndarray,
                       physics_published: bool = False) -> bool:
        """Whether the fix published, the network's or physics' own (``physics_published``:
        :meth:`physics_stands`), is one neither vouches for: the two are elsewhere
        (:data:`SAME_PLACE_M` or more apart) and the network doubts the proposal it chose from
        (probabilities ``p``, :meth:`doubts`), or, the network's fix published, physics' own
        is within ``UNSEPARATED_GAP`` of its log evidence (physics' own rule for a rival it
        cannot tell from its fix).

        Physics' doubt alone does not withhold the network's fix: on the dev split at 10 dB
        the network's fix published where physics' own was doubted was right in 22 of 23
        frames, and the wrong one was elsewhere and not told apart (docs/results.md, issue 19,
        branch r36-05)."""
        apart = np.linalg.norm(physics_fix.position_m - network_fix.position_m) >= SAME_PLACE_M
        unseparated = physics_fix.score > network_fix.score - UNSEPARATED_GAP
        return bool(apart and (NeuralLocalizer.doubts(p)
                               or not physics_published and unseparated))

    @staticmethod
    def disputed(estimate: Estimate, other: Estimate) -> Estimate:
        """``estimate`` as a fix :meth:`choice_doubted` found disputed by ``other``:
        confidence 0 (withheld without a tracker, as physics' doubted fixes are) and its
        covariance widened to hold ``other`` inside its 99 % ellipsoid, as physics widens a fix
        toward a rival it cannot rule out (``RIVAL_COVER_WEIGHT`` of the offset's outer
        product); the rest, a tracker's covariances among it, as it was."""
        offset = other.position_m - estimate.position_m
        return replace(estimate, confidence=0.0, covariance_m2=estimate.covariance_m2
                       + RIVAL_COVER_WEIGHT * np.outer(offset, offset))

    def localize(self, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None = None,
                 yaw_std_rad: float | None = None,
                 tilt_rad: tuple[float, float] | None = None) -> Estimate:
        """:meth:`fix`'s estimate, the wide search allowed."""
        return self.fix(features, yaw_rad, temperature_c, yaw_std_rad,
                        tilt_rad=tilt_rad).estimate
