"""What the physics localizer's wider look compared in each frame, kept so that a replacement
rule (:meth:`~echoloc_ros.core.physics.wider_look.WiderLook._replaces`) can be replayed on
recorded frames without localizing them again (the localizer keeps no state from frame to
frame; issue 19, ``scripts/tracker-replay.py`` and ``scripts/wider-margin-frames.py``)."""

import numpy as np

from echoloc_ros.core.physics.config import WIDER_EVIDENCE_MARGIN
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.wider_look import WiderLook
from echoloc_ros.core.physics.wider_rival import with_unchosen


class WiderLookRecorder:
    """While entered, keeps what each :meth:`PhysicsLocalizer.localize` call's wider look
    compared: ``{'first': the first fix, 'other': the wider look's fix, 'kept': the wider
    look's proposal finished at the first fix (the first fix with the wider look's rivals in
    its covariance; None where that is ``other``)}``, or ``None`` where the wider look did not
    run. ``localize`` decides as it would without it. :meth:`pop` gives the last call's;
    ``calls`` holds one entry per call, in order."""

    def __init__(self) -> None:
        self._last = None
        self._proposal = None
        self.calls: list[dict | None] = []

    def __enter__(self) -> 'WiderLookRecorder':
        self._saved = (WiderLook._wider_look, WiderLook._peaks_refined,
                       WiderLook.__dict__['_choice'], PhysicsLocalizer.localize)
        wider_look, peaks_refined, choice, localize = self._saved[0], self._saved[1], \
            WiderLook._choice, PhysicsLocalizer.localize

        def recorded(search):
            # The wider look (or its peaks alone, where the first fix is not doubtful):
            # its proposal and where the first fix stands in it.
            def searched(localizer, proposal, estimate, *args):
                out = search(localizer, proposal, estimate, *args)
                first = localizer._fix_theta(proposal, estimate)
                index = int(np.flatnonzero(np.all(out.thetas == first, axis=1))[0])
                self._proposal = (localizer, out, index)
                return out
            return searched

        def recorded_choice(first, other, *args):
            localizer, proposal, index = self._proposal
            kept = None if index == 0 else localizer.finish(proposal, index)
            self._last = {'first': first, 'other': other, 'kept': kept}
            return choice(first, other, *args)

        def recorded_localize(localizer, *args, **kwargs):
            self._last = None
            out = localize(localizer, *args, **kwargs)
            self.calls.append(self._last)
            return out

        WiderLook._wider_look = recorded(wider_look)
        WiderLook._peaks_refined = recorded(peaks_refined)
        WiderLook._choice = staticmethod(recorded_choice)
        PhysicsLocalizer.localize = recorded_localize
        return self

    def __exit__(self, *exc) -> None:
        (WiderLook._wider_look, WiderLook._peaks_refined, WiderLook._choice,
         PhysicsLocalizer.localize) = self._saved

    def pop(self) -> dict | None:
        """The last call's record (``None``: no wider look), forgotten."""
        last, self._last = self._last, None
        return last


def wider_choice(estimate, wider: dict | None, margin: float | None, kept: bool = False):
    """The frame's fix under :meth:`WiderLook._choice` at evidence ``margin`` (``None``:
    ``estimate``, the fix as localize chose it); its ``'kept'`` is the first fix finished on
    the wider look's proposal with ``kept``, the first as it was without."""
    if margin is None or wider is None:
        return estimate
    first, other = wider['first'], wider['other']
    choice = WiderLook._choice(first, other, margin)
    if choice == 'other':
        return other
    if choice == 'kept' and kept:
        return other if wider['kept'] is None else wider['kept']
    return first


def wider_rival(estimate, wider: dict | None, margin: float | None = None):
    """The frame's fix ``estimate`` (as :func:`wider_choice` gave it at ``margin``;
    ``None``: ``localize``'s margin) carrying the fix the wider look did not choose, as
    ``localize`` attaches it (:func:`~echoloc_ros.core.physics.wider_rival.with_unchosen`):
    the first fix where the wider look's replaced it, the wider look's where the first was
    kept at a tie; nothing where the ratio rule refused the wider look's fix or it did not
    run. For recordings made before ``localize`` attached it."""
    if wider is None:
        return estimate
    first, other = wider['first'], wider['other']
    choice = WiderLook._choice(first, other,
                               WIDER_EVIDENCE_MARGIN if margin is None else margin)
    if choice == 'other':
        return with_unchosen(estimate, first)
    if choice == 'kept':
        return with_unchosen(estimate, other)
    return estimate
