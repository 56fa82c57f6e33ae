"""Settings of the physics localizer: the optimization levels (presets of one
dataclass) and the constants of the method, each with the reason for its value."""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Level:
    """The work per frame of one optimization level.

    :ivar n_candidates: peaks kept per axis scan.
    :ivar n_pairs: (x, y) pairs kept from their product.
    :ivar n_explain: values of the strong axis whose echoes are removed before the weak axis
        is scanned again.
    :ivar n_polish: candidates polished.
    :ivar polish_iterations: their Gauss-Newton steps.
    :ivar max_iterations: iterations of the winner.
    :ivar n_heights: heights tried.
    :ivar yaw_step_deg: step of the heading offsets tried per wall candidate, deg.
    :ivar axis_rivals: whether a finished fix's evidence is scanned along x and y for rivals
        its candidates missed (:class:`~echoloc_ros.core.physics.axis_rivals.AxisRivals`).
    """

    n_candidates: int
    n_pairs: int
    n_explain: int
    n_polish: int
    polish_iterations: int
    max_iterations: int
    n_heights: int
    yaw_step_deg: float
    axis_rivals: bool = False


# The optimization levels, from least to most work per frame.
OPTIMIZATION_LEVELS = {
    'fast': Level(n_candidates=3, n_pairs=4, n_explain=1, n_polish=2, polish_iterations=1,
                  max_iterations=2, n_heights=1, yaw_step_deg=1.5),
    'balanced': Level(n_candidates=5, n_pairs=12, n_explain=1, n_polish=6,
                      polish_iterations=1, max_iterations=5, n_heights=1, yaw_step_deg=0.75,
                      axis_rivals=True),
    'accurate': Level(n_candidates=8, n_pairs=30, n_explain=2, n_polish=10,
                      polish_iterations=2, max_iterations=8, n_heights=2, yaw_step_deg=0.5,
                      axis_rivals=True),
}

# Standard deviation of the heading given to :meth:`PhysicsLocalizer.localize` when the caller
# does not say: an IMU or compass heading indoors is good to a degree or two.
DEFAULT_YAW_STD_RAD = float(np.deg2rad(2.0))
# Heading offsets are searched within this many standard deviations of the given heading, and
# never beyond YAW_SPAN_MAX_RAD: the first wall scans run at the given heading, and 1 deg of
# error already costs a receiver 0.9 rad of carrier phase, so much larger errors lose the walls.
YAW_SPAN_SIGMAS = 3.0
YAW_SPAN_MAX_RAD = float(np.deg2rad(10.0))
# The wall scans run again at the heading found when it is this far from the one scanned: the
# coherent score of a wall's echoes loses ~40 % at 1 deg, ~90 % at 2 deg.
YAW_RESCAN_RAD = float(np.deg2rad(1.5))
# The heading step before the wall scans (:mod:`~echoloc_ros.core.physics.heading_step`): the
# walls' first-order echoes scored over heading offsets within WALL_HEADING_SIGMAS standard
# deviations of the given heading (never beyond YAW_SPAN_MAX_RAD) at WALL_HEADING_STEP_RAD, on
# distances at WALL_HEADING_GRID_M. The scans start from the offset found only when it is at
# least WALL_HEADING_MIN_RAD from the given heading (otherwise the frame is searched as before),
# and the heading grid is widened to cover its span around that offset too. Off: measured on
# dev and held out (docs/results.md, issue 19, branch r31-52) it fixed as many frames as it
# broke, within a frame or two, and cost 0.3-0.55 ms a frame at a 1 deg heading std and
# 1.0-1.5 ms at the default 2 deg. Still off after r32-63: with HEADING_BOTH_STARTS it removed
# 2 gross frames on partial dev runs (one per SNR) and broke none, too few to decide on.
HEADING_STEP = False
WALL_HEADING_SIGMAS = 4.0
WALL_HEADING_STEP_RAD = float(np.deg2rad(0.5))
WALL_HEADING_GRID_M = 0.006
WALL_HEADING_MIN_RAD = float(np.deg2rad(1.0))
# The same threshold in standard deviations of the given heading, where set (not None): the
# step's offset must be this many of the given heading's standard deviations from it, so a
# looser prior (DEFAULT_YAW_STD_RAD, 2 deg) does not start the scans twice as often.
WALL_HEADING_MIN_SIGMAS = None
# In a plan that is not a shoebox, where the step moved the start, the plan is also scanned
# from the given heading and both starts' candidates are kept (the evidence chooses), as the
# shoebox keeps the better of its two starts (HEADING_START_GAP).
HEADING_BOTH_STARTS = False
# The given heading's prior in the step's choice of offset, weighted: the walls' scores are
# logs of their coherent power (a wall 1.5 deg off its heading loses about 1 of some 23 log
# units summed), so the full prior (weight 1) outweighs them and keeps the step at 0 where the
# heading is 1.5-3 deg off; the evidence, not the step, then chooses between the two starts.
WALL_HEADING_PRIOR_WEIGHT = 1.0
# In a shoebox the axes are scanned from both the given heading and the step's, and the step's
# start is kept only where its best peaks (with the heading's prior) score this much higher
# (log units; :meth:`CandidateSearch._axis_peaks`).
HEADING_START_GAP = 1.0
# The baseband is upsampled by this factor once per frame so that interpolating it at any delay
# is accurate to ~0.2 % even linearly (the echoes occupy +-5 kHz around the carrier).
UPSAMPLE = 4
# The point response is negligible (< 0.2 % of its peak) beyond this lag, s.
RESPONSE_HALF_S = 0.5e-3
# Prior on path amplitudes: E|a|^2 = PRIOR_SCALE * gain^2 with the gain fitted on the floor and
# ceiling (reflection coefficients and directivity are only known roughly).
PRIOR_SCALE = 2.0
# Log-evidence gap to the best distinct competitor for full confidence, and the temperature of
# the competitor's weight 1 / (1 + exp(gap / AMBIGUOUS_GAP)) in the covariance. Over simulated
# frames, wrong fixes had gaps below ~15 and correct ones mostly above 30 at 10-20 dB; the
# evidence is overconfident (the noise model and amplitudes are approximate), hence the
# temperature above 1. See docs/physics.md.
CONFIDENT_GAP = 30.0
AMBIGUOUS_GAP = 5.0
# Parameters theta: emitter x, y, z (m), kappa = c / c0 and psi, the heading's offset from the
# one given (rad). Gauss-Newton stops when every step is below this: 0.1 mm, 1e-5 in kappa
# (0.05 mm at 5 m) and 1e-4 rad (7 um at a receiver 7 cm from the emitter).
STEP_TOLERANCE = np.array([1e-4, 1e-4, 1e-4, 1e-5, 1e-4])
STEP_LIMIT = np.array([0.01, 0.01, 0.01, 0.003, 0.01])
N_THETA = 5
YAW = 4
# The weaker axis is scanned again with the stronger axis' echoes removed unless its best
# score already leads the runner-up by this much (log units; over simulated frames at 10 dB no
# frame above it needed the second scan).
EXPLAIN_GAP = 3.0
# In a plan that is not a shoebox, the axes are scanned through this many of the plan search's
# best candidates.
N_PLAN_SCANS = 3
# ... and once more through the best polished candidate, keeping this many peaks per axis.
N_SECOND_LOOK = 5
# A second height is proposed only when its floor/ceiling evidence is within this of the best.
HEIGHT_GAP = 1.0
# A fit that leaves more than this many times the noise power in its echoes' main lobes
# (Estimate.residual_ratio) does not explain the frame: the echoes it fits may not be the room's
# at that pose, and its covariance then holds the whole room (Covariance._anywhere). Tuned on
# the dev split of generated rooms (30 rooms, 360 frames per SNR): above 3 lay 31 of the 44
# gross fixes at 20 dB and 28 of 76 at 10 dB, with 18 % and 10 % of all fixes; 2.5 with the
# gap below took the dev split's share outside the 99.9 % ellipsoid from 4.0 to 2.3 % at
# 20 dB and from 7.7 to 6.0 % at 10 dB (coverage_95 0.96 and 0.91), against 3 and 5. Later
# (rooms stated exact, weak axes and rivals covered: issue 19, third round; dev, 300 frames per
# SNR) 2.0 took the 10 dB fixes outside from 12 to 8 (2.3: 10) for 6 more fixes held
# doubtful at 10 dB and 4 at 20 dB, where none moved outside or in.
UNEXPLAINED_RATIO = 2.0
# A fix with a polished rival 5 cm or more away that explains the echoes within this much log
# evidence cannot be told from it, and the truth is seldom either of the two: over the dev split
# at 10 dB, the gross fixes the residual ratio let through mostly had such a rival within 5,
# against 3 % of the right fixes. Its covariance holds the whole room as well.
UNSEPARATED_GAP = 10.0
# x or y is held by weak echoes when its standard deviation is more than this many times the
# other horizontal axis', z when more than this many times the better horizontal one's: its
# covariance spans the room along it (Covariance._weak_axes_widened). Until issue 19's fourth
# round the reference was the best of all three axes at 15, but the floor and ceiling fix the
# height up to 30 times more sharply than any wall fixes x or y, so both horizontal axes of
# right fixes were published room-wide (every frame of a bare shoebox's tracked lap). Dev
# split, 300 frames, recorded covariance inputs replayed under each rule (outside 99.9 %, and
# right fixes widened): 20 dB old 2 / 17, horizontal 6: 1 / 15, 8: 2 / 7, 15: 2 / 4; 10 dB old
# 8 / 8, 6: 8 / 6, 8: 8 / 3, 15: 9 / 1; furnished_room 20 dB (seed 7) old 0 / 16, 6: 0 / 6,
# 8 and 15: 1 (a fix 18 cm off along an x 6.5 times weaker than y) / 3 and 0.
WEAK_AXIS_RATIO = 6.0
# A rival within CONFIDENT_GAP adds at least this share of its offset's outer product to the
# covariance: its Mahalanobis distance is then at most 1 / RIVAL_COVER_WEIGHT = 8, inside the
# 99 % ellipsoid (chi-square, 3 degrees of freedom: 11.3). On the dev split at 10 dB a third
# of the fixes outside their 99.9 % ellipsoid had such a rival, which the mixture's own weight
# (3 % at a gap of 17) did not cover; with this, 3.7 % of 300 frames were outside (4.0 %).
RIVAL_COVER_WEIGHT = 0.125
# A learned ranker's covariance (:meth:`Covariance._region_covariance`): its 95 % ellipsoid holds
# this much of the mixture, its components widened at most to this level.
REGION_MASS = 0.95
REGION_LEVEL_MAX = 0.999
# A plane this close to the emitter (m) echoes inside the direct arrival: not scored.
PLANE_MIN_DISTANCE_M = 0.02
# Rivals a learned ranker gives at least this probability are reported with the fix.
RIVAL_MIN_PROBABILITY = 0.01
# Issue 19, per-part seeding (branch r27-19). In a plan that is not a shoebox (and in a
# shoebox with known boxes, cut at their sides) the search also
# scans each part of the plan with that part's own walls (Room.axis_spans: a wing, a stem, an
# alcove is a shoebox along each axis), keeping this many peaks per span and this many (x, y)
# pairs per cell where an x span and a y span meet, so that a pose in a narrow wing is always
# a candidate (the plan-wide scores rank a wing below the wide part, whose walls are more).
# Dev split, 150 non-rectangular frames: 20 dB gross 15 -> 6 (with the height below).
N_PART_PEAKS = 4
N_PART_PAIRS = 2
# Issue 19/20: in a shoebox with known furniture the part scans run in every frame when True;
# when False only where the shoebox's own polished candidates leave the frame doubtful
# (CandidateSearch._part_look): furnished_room localize p50 16 -> 5 ms, the same gross fixes
# (dev split 20 dB, 10 of 300 both; furnished_room seed 20, 1000 frames: 1.2 -> 1.1 % at
# 20 dB, 2.8 % both at 10 dB).
PART_SCAN_ALWAYS = False
# When the best floor/ceiling pair puts the speed of sound more than this far (relative) from
# the one assumed at the room's temperature (1 %: 6 degC), the best height at the assumed speed
# is searched as well: a weak ceiling's stray echo paired with the floor gives a speed a few
# per cent off and a height centimetres off, at which the wall scans decohere.
SPEED_DOUBT = 0.01
# Issue 19: a fix that leaves its frame doubtful (a rival within CONFIDENT_GAP, or echoes it does
# not explain) is searched again (WiderLook._wider_look): each axis scanned through the refined
# fix keeping this many peaks, and this many of the best polished candidates refined in all
# parameters before the evidence chooses.
N_WIDER_PEAKS = 4
N_WIDER_REFINE = 4
WIDER_STEP_M = 0.012
# ... and so is a fix one of whose axes was widened toward the room (a variance this many times
# its own: the widening adds the room's spread, metres squared, to millimetres squared).
WIDENED_VARIANCE_RATIO = 100.0
WIDER_LOOK = True
# ... and its fix replaces the first only if it leaves at most this many times the first's
# residual over the noise (WiderLook._replaces): a ghost may gather more evidence while leaving
# far more of the echoes unexplained (dev laps, seed 7, rooms 0, 1, 9: 16 of 29 replacements
# that more than doubled the ratio turned a right fix into one 0.3-3 m off, none the reverse;
# tracked p95 17.1 -> 4.4 cm with this, per-frame dev split unchanged; branch r29-36). The
# value is UNEXPLAINED_RATIO's, not fitted.
WIDER_RATIO_GROWTH_MAX = UNEXPLAINED_RATIO
# ... and, where the first fix explains its echoes (a residual ratio of at most
# UNEXPLAINED_RATIO), only if its evidence exceeds the first's by at least
# WIDER_EVIDENCE_MARGIN (log units); below it the first fix stays, finished on the wider
# look's proposal so that its covariance covers the rival (WiderLook._choice, 'kept').
# WIDER_TIE_MARGIN is the margin built and measured (branch r30-44): the gap below which the
# rival's weight in the covariance's mixture, 1 / (1 + exp(gap / AMBIGUOUS_GAP)), is at least
# 1/8 (the tracker's HYPOTHESIS_COVER_WEIGHT), AMBIGUOUS_GAP ln 7 = 9.7. On tracked laps it
# helps (dev_7_001 p95 4.18 -> 2.83 cm; held-out room 24 14.8 -> 10.4 cm), but per frame on
# the dev split (300 frames) the swaps it refuses were right more often than not: 20 dB gross
# 3.67 -> 4.00 %, 10 dB 11.33 -> 12.67 % (5 right fixes lost at gains of 0.5-8.9, 1 won). So
# localize does not apply it (-inf: every wider-look fix the ratio rule allows replaces the
# first, as before); docs/results.md, r30-44.
WIDER_TIE_MARGIN = AMBIGUOUS_GAP * math.log(7.0)
WIDER_EVIDENCE_MARGIN = -math.inf
# Issue 19, no overconfident fix (branch r29-31): a fix confident against every proposed rival
# can still sit on the wrong wall along one axis (a far or soft wall's distance, a wing's
# offset), its true value among no candidate. Finishing a physics fix scans the full model's
# evidence along x and y through it (AxisRivals._axis_rivals: a grid of AXIS_STEP_M, each
# peak scored again at its parabola's vertex; 12 mm without the vertex found the same peaks
# within 1 log unit on 18 dev frames, 36 mm missed some) and takes the N_AXIS_RIVALS best
# peaks per axis at least AXIS_BASIN_M from it. Each is a rival of the covariance's mixture
# with the weight of a proposed one (AMBIGUOUS_GAP), and at least RIVAL_COVER_WEIGHT within
# AXIS_RIVAL_GAP (UNSEPARATED_GAP's value: not told apart). The confidence is left as the
# proposed rivals set it, so the search and the positions do not change. The scans cost about
# 12 ms of CPU a frame in the default room (localize p50 5 -> 17 ms), three times the rest of
# the frame (issue 20), for outside_999 1.96 -> 1.37 % at 10 dB on the held-out rooms: the
# `accurate` level ran them alone. Branch r30-41 scores the scans by the groups of paths that
# overlap at each pose (AxisRivals._scan_score: the same evidence, about 5.5 ms a frame in the
# default room) and refines the peaks the fix does not clearly beat (AXIS_REFINE_GAP); with
# both, dev at 10 dB (300 frames) gross 11.33 -> 10.33 %, outside_999 2.33 -> 1.00 %, and
# `balanced` runs them too (Level.axis_rivals); `fast` does not.
AXIS_STEP_M = 0.024
AXIS_BASIN_M = 0.05
N_AXIS_RIVALS = 3
AXIS_RIVAL_GAP = 10.0
# Issue 19, a better peak refined (branch r30-41): an axis peak whose evidence is within this
# of the fix's, or above it (gap below 0), is refined in all parameters as the wider look
# refines its candidates (WiderLook._wider_look), and the evidence chooses, under
# WiderLook._replaces' residual rule. Where the truth's value on an axis was among no
# candidate, its peak scored above the fix (dev, 10 dB: 5 of the 8 fixes outside their
# 99.9 % ellipsoid, by 16-277 log units refined).
AXIS_REFINE_GAP = 60.0
# Issue 20, the axis scans where they pay (branch r31-50): a peak of the scans refines the fix
# (AXIS_REFINE_GAP) or widens its published sigma by more than 1 % only within about 100 log
# units of the fix's evidence (the mixture weight 1 / (1 + exp(gap / AMBIGUOUS_GAP)) times a
# rival's offset squared, metres, against a sigma of a millimetre). A fix is scanned where it is
# doubtful, leaves more than AXIS_GATE_RATIO times the noise unexplained (a fix on the wrong
# wall along y, 3.38 m off: ratio 1.37, every other sign clear), has a proposed rival within
# AXIS_GATE_RIVAL_GAP, or where the echoes that move along x or y give it less than
# AXIS_GATE_SHARE (a pose along that axis that explains none of them scores about that much
# lower; AxisRivals._scans_pay). Chosen on dev seed 7 (300 frames at 10 and 20 dB,
# scripts/axis-gate-study.py): no scan that changed a fix left out, the tightest kept by a
# share of 494 and a rival at 437; docs/results.md, r31-50.
AXIS_GATE_RATIO = 1.2
AXIS_GATE_RIVAL_GAP = 500.0
AXIS_GATE_SHARE = 1000.0

# Issue 19 (branch r31-53): the second search's fix is refined from its own axis peaks once
# more where one scores more than this above it (log units; PhysicsLocalizer._ahead_refined):
# a peak the fix does not beat is where the first fix's peaks were refined (AXIS_REFINE_GAP).
AHEAD_PEAK_GAP = 0.0
# Issue 19 (branch r31-53): where the axis scans run, the evidence is scanned along the height
# through the first fix too (WiderLook._height_peaks) and its peaks the fix does not clearly
# beat (AXIS_REFINE_GAP) are refined with the horizontal axes' (PhysicsLocalizer.settled).
HEIGHT_PEAKS = True

# Issue 19 (branch r32-62): where the axis scans run, the evidence is scanned along each
# horizontal axis again through the N_CROSS_SCANS best peaks along the other (those within
# CROSS_SCAN_GAP of the fix), keeping N_CROSS_PEAKS peaks a scan (AxisRivals._cross_peaks);
# those the fix does not clearly beat (AXIS_REFINE_GAP) are refined as candidates with the
# axes' own peaks (PhysicsLocalizer.settled): a fix off along x and y at once is crossed by
# neither axis' scan through it.
CROSS_SCANS = True
CROSS_GATE_RATIO = AXIS_GATE_RATIO
N_CROSS_SCANS = 1
N_CROSS_PEAKS = 2
CROSS_SCAN_GAP = 200.0

# Issue 19 (branch r33-73): where the first fix leaves its frame doubtful, the wall scans are
# started again HEADING_RETRY_SIGMAS standard deviations of the given heading either side of
# it and the N_HEADING_RETRY best polished candidates of each start are refined with the wider
# look's (heading_retry.retry_starts): at the given heading a wall 1.5-3 deg off decoheres and
# no candidate lies near the truth. Dev, 20 dB, seeds 7 and 8 (600 frames, the same frames
# each; scripts/classify-gross.py --variants): gross 17 -> 9 at 1.5 sigma, 11 at 2 sigma (2
# broke a right shoebox frame that 1.5 kept), nothing else broken; 30 % more CPU a frame in
# those rooms, where many frames are doubtful; the default room's unchanged.
HEADING_RETRY = True
HEADING_RETRY_SIGMAS = 1.5
N_HEADING_RETRY = 2
# Issue 19 (branch r35-93): a fix that is not doubtful but set its heading this many of the
# given heading's standard deviations from it or more is searched again by the wider look
# (WiderLook._heading_moved): its place was found by scans at a heading it rules out (dev
# 10/23/9, heading given 2.7 sigma off: a confident fix 179 cm off, outside its 99.9 %
# ellipsoid; the wider look's retry finds the truth). None: off. Shipped off (stop 35): one
# dev pose chose 2.5, it costs about six full searches where it fires (~1.2 % of frames) and
# no held-out run has measured it.
HEADING_MOVED_SIGMAS = None

# Issue 19 (branch r33-74): where the fix is scanned across (AxisRivals._cross_pays), the
# evidence is also scanned along each horizontal axis through the middle of every strip of the
# plan the fix is not in (Room.axis_spans: a wing of an L or T plan, an alcove), at the fix's
# height, speed and heading, and across through the N_PLAN_PEAKS best peaks of each such scan
# (AxisRivals._plan_peaks); the peaks the fix does not clearly beat (AXIS_REFINE_GAP) are
# refined as candidates with the axes' own (PhysicsLocalizer.settled). A fix in the wrong wing
# is crossed by no scan through it or its axis peaks. A shoebox has one strip: nothing is run.
PLAN_SCANS = True
N_PLAN_PEAKS = 2
PLAN_LINE_M = math.inf

# Issue 19 (branch r34-83): the search ranks its candidates by their polished evidence (the
# scans' height and speed, x, y and the heading polished), the fix's by its refined evidence
# (every parameter, the final model); a rival's polished evidence can sit far below what it
# reaches refined (dev seed 10 room 1 frame 8 at 20 dB, an 8-box L room: the truth polished
# 1644 log units below the fix, refined 125 above it; the fix 3.6 m off, confidence 1). So the
# N_POLISHED_RIVALS best polished candidates 5 cm or more from the fix are refined as the fix
# is (WiderLook._polished_rivals), and those within CONFIDENT_GAP of it or above are refined
# again as candidates with the axes' peaks (PhysicsLocalizer.settled). r34-83 shipped 2 and
# off: with WIDER_NO_LOSS they righted the four dev frames they were built for, but on held-out
# seed 45 (20 dB, 1020 frames) gross went 31 -> 32 (one righted, two broken, both published
# with confidence 0 inside their ellipsoid) for about +2 ms a full search. r35-93: one, and
# only where the fix is not doubtful (a doubtful fix's wider look refines the best polished
# candidates itself): on dev the one confident fix outside its 99.9 % ellipsoid the
# search's ranking left (10/1/8 above) is right with it. Shipped off (stop 35): +1.3 ms a full
# search (+17 %), and held out (seed 49, 20 dB) gross 3.73 % with it, no run of main beside.
N_POLISHED_RIVALS = 0
# Issue 19 (branch r36-03): where the plan is not a rectangle, the two checks above run with
# these values instead (NON_RECTANGULAR_POLISHED_RIVALS for N_POLISHED_RIVALS,
# NON_RECTANGULAR_HEADING_MOVED_SIGMAS for HEADING_MOVED_SIGMAS). The confident fixes outside
# their 99.9 % ellipsoid are there: the general search ranks candidates polished at the scans'
# height and speed, and its wings and alcoves hold places whose walls one heading error
# decoheres (dev: both classes r35-93 found, 10/1/8 an L plan and 10/23/9 an alcove; held out,
# stop 35's seed 56: outside 1.13 % of the published non-rectangular fixes at 20 dB against
# 0.22 % of the shoeboxes'). A shoebox, searched along its own axes
# (CandidateSearch._shoebox_candidates), and with it the default room, keeps the values above
# and their cost.
NON_RECTANGULAR_POLISHED_RIVALS = 1
NON_RECTANGULAR_HEADING_MOVED_SIGMAS = 2.5
# Issue 19 (branch r38-03): where the plan is not a rectangle, a fix whose heading still sits
# this many of the given heading's standard deviations from it or more after the wider look
# (the prior the caller states rules it out: a right fix's heading is the true one, drawn
# within 3.5 sigma of the given one in all but 0.05 % of frames) is doubted: confidence 0, its
# covariance the room's (WiderLook._heading_ruled_out). Dev, 10 dB: the confident fixes outside
# their 99.9 % ellipsoid dev 14/5/7 (an L plan, 11 cm off, its heading 4.3 sigma from the
# given one, 3.8 deg from the true one) and 15/1/1 (a chamfer, 57 cm off, 4.0 sigma). None:
# off; a shoebox keeps None (HEADING_RULED_OUT_SIGMAS), its fixes main's to the bit.
HEADING_RULED_OUT_SIGMAS = None
NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS = 3.5
# Issue 19 (branch r38-03): where the plan is not a rectangle, a fix is refined again from
# LOBE_STEP_M either side of it along its sharpest direction (WiderLook._lobe_rivals), and a
# refit that lands LOBE_MOVED_M or more from it with higher evidence is refined as a candidate
# with the axes' peaks (PhysicsLocalizer.settled): the fit can stop on the side of a carrier
# lobe (dev seed 13 room 3 frame 17 at 10 dB, an alcove: the fix 2.4 mm off with a 0.18 mm
# sigma along x, d2 177; refined from 2 mm either side along x it lands within 1.1 mm of the
# truth, 2.2 and 8.9 log units higher). The step is a quarter of the carrier's wavelength
# (8.6 mm at 40 kHz): within the next lobe, short of the one beyond. A shoebox keeps
# LOBE_STEPS off: its fixes are main's to the bit. Off in every plan since stop 38's merge:
# near l_shaped_room's notch the restarts' second pass puts every full search's fix at the
# truth's translational twin across the L (3.9 m off; the truth was a candidate before), so
# no rival track forms, the track search fixes the twin's track locally and publishes it
# with a 0.1 mm sigma (test_track_search_rivals.py: 21 of 22 tracked poses outside their
# 99.9 % ellipsoid with it on, none with it off). Kept as an option until the twin is named.
LOBE_STEP_M = 0.002
LOBE_MOVED_M = 0.0005
LOBE_STEPS = False
NON_RECTANGULAR_LOBE_STEPS = False
# ... and where the first fix explains its echoes (a residual ratio of at most
# UNEXPLAINED_RATIO), a wider-look fix whose refined evidence is below the first's does not
# replace it: the first is kept, its covariance spanning the rivals (WiderLook._choice,
# 'kept'). The wider look's best is refined again from its own start, and that refit can land
# below the first (dev seed 9 room 17 frame 5 at 20 dB: the first fix right at 3712.7, the
# wider look's 2.9 m off at 3693.4 replaced it). Off: on held-out seed 45 it broke a right fix.
WIDER_NO_LOSS = False
