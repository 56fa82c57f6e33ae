"""Which single-frame fixes are withheld rather than published (issue 19): the rule of
:attr:`~echoloc_ros.core.pipeline.Pipeline.withhold_doubted`, and its default, which the
localizer node's ``withhold_doubted`` parameter and ``echoloc evaluate --withhold-doubted``
share. Light (no localizer imported): the command line reads the default at start-up."""

#: Without a tracker, doubted fixes are withheld by default (the node's ``withhold_doubted``
#: with ``tracking`` false, ``echoloc evaluate`` on independent frames). On the dev split at
#: 10 dB it took the gross fixes from 4.2 % of all fixes to none of the published ones, every
#: gross fix being a doubted one, for 13 % of the frames withheld (branch r35-92).
WITHHOLD_DOUBTED = True


def doubted(estimate) -> bool:
    """Whether a fix (an :class:`~echoloc_ros.core.physics.results.Estimate`) is one the
    localizer cannot tell from a rival: confidence 0 (its fit leaves the frame unexplained, a
    polished rival 5 cm or more away explains the echoes within ``UNSEPARATED_GAP``, or a
    rival as well as it), so its published covariance holds the whole room or the rival.

    No narrower rule kept more right fixes without publishing wrong ones (dev, 10 dB, branch
    r35-92): the doubted fixes' own covariances (their rivals' spread, before a weak axis or
    the doubt widens them to the room) are 12 cm to 5 m wide where the fit explains the frame,
    most along an axis the localizer holds weak, and a doubted fix 25 cm wide was 69 cm off;
    where the fit leaves the frame unexplained they are narrow and do not hold the truth (one
    2.4 mm wide was 133 cm off).
    """
    return estimate.confidence <= 0.0
