r"""``echoloc`` with the rivals the room's tolerance cannot rule out left out of the published
covariance (:func:`~echoloc_ros.core.room_tolerance.with_tolerated_rivals` replaced by the
covariance as it was, r31-54's rule): the before of issue 18's held-out runs, on the same
frames as the after (issue 18, branch r32-64). The arguments are ``echoloc``'s.

    python scripts/tolerated-rivals-off.py evaluate --n 1000 --surface-offset-m 0.03 \\
        --room-tolerance-m 0.03 --air-drawn --model-error-seed 300 --model-error-draws 10
"""
import sys

import echoloc_ros.core.physics.localizer as localizer
from echoloc_ros.cli import main


def _as_it_was(covariance, *args):
    """The covariance without the tolerated rivals."""
    return covariance


if __name__ == '__main__':
    localizer.with_tolerated_rivals = _as_it_was
    sys.argv[0] = 'echoloc'
    sys.exit(main())
