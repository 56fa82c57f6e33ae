"""The array on a serial port: fake-device (emulated, with faults), hw-test."""
import json
import signal
import time

from echoloc_ros.cli.common import add_model_error_args, interrupt


def cmd_fake_device(args) -> int:
    import numpy as np
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.device.fake_device import FakeArrayDevice, FaultConfig
    from echoloc_ros.core.room import load_room
    from echoloc_ros.sim.simulator import EchoSimulator, Scenario
    room, array = load_room(args.room), load_array(args.array)
    sim = EchoSimulator(room, array, Chirp(), fs_hz=250e3)
    rng = np.random.default_rng(args.seed)
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    position = np.array(args.position)

    def frame_source(seq: int) -> np.ndarray:
        return sim.simulate(position, args.yaw, scenario=scenario, rng=rng)

    faults = FaultConfig(bit_flip_rate=args.bit_flip_rate, drop_byte_rate=args.drop_byte_rate,
                         stall_at_s=args.stall_at, stall_s=args.stall_for,
                         dead_channel=args.dead_channel, clip_channel=args.clip_channel,
                         seed=args.seed)
    device = FakeArrayDevice(frame_source, link_path=args.link, n_channels=array.n_receivers,
                             window_samples=sim.n_samples, frame_rate_hz=args.rate,
                             faults=faults, array_id=array.name)
    signal.signal(signal.SIGTERM, interrupt)
    device.start()
    print(json.dumps({'port': device.path, 'position_m': args.position, 'yaw_rad': args.yaw}),
          flush=True)
    try:
        start = time.monotonic()
        disappeared = False
        while True:
            time.sleep(0.05)
            if (args.disappear_at is not None and not disappeared
                    and time.monotonic() - start >= args.disappear_at):
                disappeared = True
                device.disappear(args.disappear_for)
    except KeyboardInterrupt:
        pass
    finally:
        device.stop()
    return 0


def cmd_hw_test(args) -> int:
    import serial
    from echoloc_ros.device.hw_test import run_hw_test
    try:
        checks = run_hw_test(args.port, timeout_s=args.timeout)
    except serial.SerialException as exc:
        print(f'FAIL  open   {args.port}: {exc}')
        return 2
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<6} {check.detail}")
    if args.json:
        print(json.dumps({c.name: {'ok': c.ok, **c.data} for c in checks}))
    return 0 if all(c.ok for c in checks) else 1


def add_parsers(sub) -> None:
    p = sub.add_parser('fake-device', help='emulate the array on a pseudo-terminal, streaming '
                       'simulated echoes, with optional faults')
    p.add_argument('--link', default='/tmp/echoloc_array', help='stable symlink to the pty '
                   '(give it to the driver as port)')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--position', type=float, nargs=3, default=[2.0, 1.5, 0.3],
                   metavar=('X', 'Y', 'Z'), help='where the emulated array sits [m]')
    p.add_argument('--yaw', type=float, default=0.0, help='its heading [rad]')
    p.add_argument('--rate', type=float, default=25.0, help='default frame rate [Hz]')
    p.add_argument('--snr-db', type=float, default=20.0)
    p.add_argument('--seed', type=int, default=0)
    add_model_error_args(p)
    p.add_argument('--bit-flip-rate', type=float, default=0.0, help='per byte')
    p.add_argument('--drop-byte-rate', type=float, default=0.0, help='per byte')
    p.add_argument('--stall-at', type=float, help='seconds after start to go silent')
    p.add_argument('--stall-for', type=float, default=0.0, help='seconds of silence')
    p.add_argument('--dead-channel', type=int)
    p.add_argument('--clip-channel', type=int)
    p.add_argument('--disappear-at', type=float, help='seconds after start to unplug')
    p.add_argument('--disappear-for', type=float, default=2.0, help='seconds unplugged')
    p.set_defaults(func=cmd_fake_device)

    p = sub.add_parser('hw-test', help='check an array on a port: ping, info, status, a frame')
    p.add_argument('--port', required=True)
    p.add_argument('--timeout', type=float, default=1.0, help='seconds per reply')
    p.add_argument('--json', action='store_true', help='also print the results as JSON')
    p.set_defaults(func=cmd_hw_test)
