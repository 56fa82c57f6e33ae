"""Which single-frame fixes are withheld rather than published (issue 19): the rule of
:attr:`~echoloc_ros.core.pipeline.Pipeline.withhold_doubted`, and its default, which the
localizer node's ``withhold_doubted`` parameter and ``echoloc evaluate --withhold-doubted``
share. Light (no localizer imported): the command line reads the default at start-up."""

#: Without a tracker, doubted fixes are withheld by default (the node's ``withhold_doubted``
#: with ``tracking`` false, ``echoloc evaluate`` on independent frames). On the dev split at
#: 10 dB it took the gross fixes from 4.2 % of all fixes to none of the published ones, every
#: gross fix being a doubted one, for 13 % of the frames withheld (branch r35-92).
WITHHOLD_DOUBTED = True

#: A fix whose final fit leaves more than this residual over the noise in its paths' main
#: lobes (:attr:`~echoloc_ros.core.physics.results.Estimate.residual_ratio`) is not published
#: alone, though below the localizer's ``UNEXPLAINED_RATIO`` (2.0, where it is doubtful and its
#: covariance holds the room): its paths do not explain the echoes where it puts them, and its
#: covariance, their information, is too narrow for where it is. Dev split, 10 dB (seeds 7, 8
#: and 13, 466 published fixes): of the right ones 6 are above 1.75 (1.3 %), 8 above 1.5; at
#: 20 dB (seed 10) 1 of 71 above 1.75, 4 above 1.5; one fix outside its 99.9 % ellipsoid was
#: above (1.79, 5.4 cm off with a 1.7 mm sigma). Branch r37-03, docs/results.md.
WITHHELD_RATIO = 1.75
#: In a shoebox a fix whose final fit does not find more than this share of the echo energy its
#: own pose predicts (:attr:`~echoloc_ros.core.physics.results.Estimate.missing_share`) is not
#: published alone: its pose puts strong echoes where the frame has none, and its residual ratio,
#: measured in its own paths' lobes after each path's amplitude is fitted (to about 0 for an
#: echo that is not there), does not see it. The count it replaces (at most 6 echoes modelled,
#: branch r37-03) ignored how many echoes the room gives at the pose: a soft ceiling or floor
#: gives two fewer, furniture hides walls, and the prediction, which holds each surface's
#: absorption, knows it. Dev, 10 dB, the shoeboxes of seeds 7, 13, 17 and 18 (1200 frames,
#: branch r38-04): of 997 right fixes neither doubted nor above the ratio, 0.002 at the
#: median, 0.054 at the 99th percentile, at most 0.10; the four confident ones metres off
#: 0.25-0.78 (three outside their 99.9 % ellipsoids, one of 18 echoes the count let through).
#: The count withheld three right fixes of 6 echoes (0.000-0.002 here) and three wrong ones.
#: Plans with wings: not measured for a choice; the count never applied there.
SHOEBOX_MISSING_SHARE = 0.2


def doubted(estimate, shoebox: bool = False) -> bool:
    """Whether a fix (an :class:`~echoloc_ros.core.physics.results.Estimate`) is not to be
    published alone: one the localizer cannot tell from a rival, confidence 0 (its fit leaves
    the frame unexplained, a polished rival 5 cm or more away explains the echoes within
    ``UNSEPARATED_GAP``, or a rival as well as it), so its published covariance holds the whole
    room or the rival; or one whose fit explains too little of the frame, a residual ratio
    above :data:`WITHHELD_RATIO` or, in a ``shoebox`` room, more than
    :data:`SHOEBOX_MISSING_SHARE` of its pose's predicted echo energy not found (a tracker
    still takes these, with the covariance the localizer gave them).

    No narrower rule kept more right fixes without publishing wrong ones (dev, 10 dB, branch
    r35-92): the doubted fixes' own covariances (their rivals' spread, before a weak axis or
    the doubt widens them to the room) are 12 cm to 5 m wide where the fit explains the frame,
    most along an axis the localizer holds weak, and a doubted fix 25 cm wide was 69 cm off;
    where the fit leaves the frame unexplained they are narrow and do not hold the truth (one
    2.4 mm wide was 133 cm off).
    """
    return (estimate.confidence <= 0.0 or estimate.residual_ratio > WITHHELD_RATIO
            or (shoebox and estimate.missing_share > SHOEBOX_MISSING_SHARE))
