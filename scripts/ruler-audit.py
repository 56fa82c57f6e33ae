"""Both rulers of the calibrated room from one drive per world: ``echoloc evaluate
--calibrate-room-s`` as given (its ruler, ``--calibrate-room-ruler``, default ``auto``, which
keeps one of the two per world), with the same drive's calibration also solved with the other
ruler (with ``auto``: with each of ``temperature`` and ``both``) and scored on the same frames
(issue 18's ruler decision, at half the drives' cost of two runs).

    python scripts/ruler-audit.py EVALUATE-OPTIONS...

e.g. the room +-3 cm off its file, on held-out worlds: ``--room default_room
--calibrate-room-s 60 --n 300 --heading-noise-deg 1 --surface-offset-m 0.03
--room-tolerance-m 0.03 --model-error-seed 500 --model-error-draws 3``.

Prints evaluate's JSON line with, besides its ``calibrated_*`` figures (the ruler given),
``calibrated_{other}_*`` and ``surface_error_mm_max_{other}``, and per world
``{other}_surface_error_mm_max``, ``{other}_median_cm``, ``{other}_coverage_95`` and the scale
it kept. The drive's frames, scans and the ruler given's figures are those of evaluate's own
run of the same options (only the solution's kept scale depends on the ruler). Refused with
``--receiver-passes`` > 0 (the receivers are then calibrated in the room solved, which
depends on the ruler): run evaluate once per ruler there.
"""
import functools
import sys

from echoloc_ros.cli import main as echoloc
from echoloc_ros.offline import room_calibration

# The rulers solved besides the one given (``auto`` keeps one of these per world).
RULERS = ('temperature', 'both')


def other_rulers(args: list[str]) -> tuple[str, ...]:
    """The rulers of :data:`RULERS` besides the one ``args`` give evaluate
    (``--calibrate-room-ruler R`` or ``--calibrate-room-ruler=R``; none: ``auto``)."""
    given = 'auto'
    for k, arg in enumerate(args):
        if arg == '--calibrate-room-ruler' and k + 1 < len(args):
            given = args[k + 1]
        elif arg.startswith('--calibrate-room-ruler='):
            given = arg.split('=', 1)[1]
    return tuple(r for r in RULERS if r != given)


def main() -> None:
    """Run the evaluation with the other rulers solved from the same drives."""
    args = sys.argv[1:]
    if '--calibrate-room-s' not in args and not any(
            a.startswith('--calibrate-room-s=') for a in args):
        raise SystemExit('ruler-audit: expected evaluate options with --calibrate-room-s S '
                         f'(a drive to calibrate the room from); got {" ".join(args)!r}')
    room_calibration.evaluate_room_calibration = functools.partial(
        room_calibration.evaluate_room_calibration, also_rulers=other_rulers(args))
    raise SystemExit(echoloc(['evaluate', *args]))


if __name__ == '__main__':
    main()
