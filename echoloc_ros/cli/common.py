"""What several command groups share: the simulated scenario and model-error options, and
SIGTERM handled as Ctrl-C."""


def interrupt(signum, frame):
    raise KeyboardInterrupt


def scenario_from_args(args, array=None):
    """The scenario of the arguments; with ``array``, its hardware drawn from the model-error
    arguments (``evaluate`` draws the hardware and the room itself)."""
    from echoloc_ros.sim.simulator import Scenario
    error = model_error_from_args(args)
    hardware = error.draw_hardware(array) if array is not None and error.changes_array else None
    return Scenario(snr_db=args.snr_db, temperature_c=args.temperature_c,
                    gain_mismatch_db=args.gain_mismatch_db, dead_channel=args.dead_channel,
                    n_random_clutter=args.clutter, seed=args.seed, hardware=hardware)


def model_error_from_args(args):
    from echoloc_ros.sim.model_error import ModelError
    try:
        return ModelError(
            resonance_offset_hz=args.resonance_offset_hz,
            resonance_spread_hz=args.resonance_spread_hz,
            bandwidth_range_hz=args.bandwidth_range_hz, gain_db=args.channel_gain_db,
            delay_s=args.channel_delay_s, receiver_offset_m=args.receiver_offset_m,
            emitter_offset_m=args.emitter_offset_m, tilt_deg=args.tilt_deg,
            surface_offset_m=args.surface_offset_m, seed=args.model_error_seed,
            draws=getattr(args, 'model_error_draws', 1),
            air_std_c=getattr(args, 'air_std_c', 0.0))
    except ValueError as err:
        raise SystemExit(f'echoloc: {err}') from None


def add_model_error_args(p) -> None:
    """The options of how the simulated array and room differ from their files."""
    g = p.add_argument_group('model error', 'how the simulated array and room differ from '
                             'their files (each drawn uniform in +-the value, once per run; '
                             'the localizer reads the files)')
    g.add_argument('--resonance-offset-hz', type=float, default=0.0,
                   help='every transducer\'s resonance off the file, drawn once per array [Hz]')
    g.add_argument('--resonance-spread-hz', type=float, default=0.0,
                   help='each transducer\'s resonance further off [Hz]')
    g.add_argument('--bandwidth-range-hz', type=float, nargs=2, metavar=('LO', 'HI'),
                   help='the array\'s transducer bandwidth drawn in [LO, HI] [Hz]')
    g.add_argument('--channel-gain-db', type=float, default=0.0,
                   help='each channel\'s gain off nominal [dB]')
    g.add_argument('--channel-delay-s', type=float, default=0.0,
                   help='each channel\'s extra delay [s]')
    g.add_argument('--receiver-offset-m', type=float, default=0.0,
                   help='each receiver coordinate off the array file [m]')
    g.add_argument('--emitter-offset-m', type=float, default=0.0,
                   help='each emitter coordinate off the array file [m]')
    g.add_argument('--tilt-deg', type=float, default=0.0, help='array roll and pitch [deg]')
    g.add_argument('--surface-offset-m', type=float, default=0.0,
                   help='each room surface off the room file (evaluate only) [m]')
    g.add_argument('--model-error-seed', type=int, default=0, help='seed of the draw')


def add_scenario_args(p) -> None:
    p.add_argument('--snr-db', type=float, default=20.0, help='echo SNR [dB]')
    p.add_argument('--temperature-c', type=float, help='true air temperature [C] '
                   '(default: the room file\'s; the localizer is told the room file\'s)')
    p.add_argument('--gain-mismatch-db', type=float, default=0.0,
                   help='std of each receiver\'s gain error [dB]')
    p.add_argument('--dead-channel', type=int, help='receiver that outputs only noise')
    p.add_argument('--clutter', type=int, default=0,
                   help='random panels per frame that the room file does not know')
    p.add_argument('--seed', type=int, default=0)
    add_model_error_args(p)
