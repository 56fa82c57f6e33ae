"""Run and watch the graph: bringup, monitor, bench, record, metrics."""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from echoloc_ros.cli.common import interrupt
from echoloc_ros.ros.graph import ONE_PROCESS_DEFAULT, parse_override


def _overrides(pairs: list[str]) -> dict[str, dict]:
    """``node.param=value`` pairs as per-node parameter overrides (:func:`parse_override`)."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        node, dot, param = key.partition('.')
        if not sep or not dot:
            raise SystemExit(f'--set {pair!r}: expected node.param=value, e.g. '
                             'driver.sim_snr_db=10')
        try:
            out.setdefault(node, {}).update(parse_override(node, param, value))
        except ValueError as error:
            raise SystemExit(f'--set {pair!r}: {error}') from None
    return out


ONE_PROCESS_HELP = ('run echo_processor and localizer in one process (the default: the same '
                    'nodes and topics; the features go to the localizer without DDS, and are '
                    'published only while another process subscribes): less CPU a frame; '
                    '--no-one-process: each node a process of its own')

# The nodes that read the room file (each has a `room` parameter).
ROOM_NODES = ('driver', 'localizer', 'furniture_survey')


def bringup_overrides(sets: list[str], room: str | None = None) -> dict[str, dict]:
    """Per-node parameter overrides from ``--set node.param=value`` pairs, and ``room`` for
    every node that reads the room file (unless a pair sets that node's room)."""
    overrides = _overrides(sets)
    if room:
        for node in ROOM_NODES:
            overrides.setdefault(node, {}).setdefault('room', room)
    return overrides


def cmd_bringup(args) -> int:
    from echoloc_ros.ros.graph import graph_specs
    from echoloc_ros.ros.process_graph import NodeProcesses
    graph = NodeProcesses(specs=graph_specs(args.one_process), params_file=args.params_file,
                          overrides=bringup_overrides(args.set, args.room))
    # SIGTERM (e.g. from a service manager) stops the graph the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    print(f'echoloc: starting {", ".join(s.name for s in graph.specs)} with '
          f'{graph.params_file}; Ctrl-C stops', file=sys.stderr)
    code = 0
    try:
        graph.start()
        if args.monitor:
            return _monitor(graph=graph)
        while True:
            exited = graph.exited()
            if exited:
                print(f'echoloc: node exited: {exited}; stopping the rest', file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        codes = graph.stop()
        print(f'echoloc: stopped {codes}', file=sys.stderr)
    return code


def _monitor(duration_s: float | None = None, graph=None) -> int:
    import numpy as np
    import rclpy
    from echoloc_ros.ros.listener import GraphListener, Spinner
    rclpy.init()
    listener = GraphListener('echoloc_monitor')
    start = time.time()
    last = start
    try:
        with Spinner(listener):
            while duration_s is None or time.time() - start < duration_s:
                time.sleep(1.0)
                if graph is not None and graph.exited():
                    print(f'echoloc: node exited: {graph.exited()}', file=sys.stderr)
                    return 1
                now = time.time()
                with listener.lock:
                    recent = [(k, v) for k, v in listener.heard.poses.items() if v[0] >= last]
                    truths = dict(listener.heard.truths)
                    levels = {name: s.level[0] for name, s in
                              listener.heard.diagnostics.items()}
                if not recent:
                    print(f'[{now - start:6.1f} s] waiting for /echoloc/pose ...', flush=True)
                    last = now
                    continue
                key, (recv_s, pos, cov, frame_id) = max(recent, key=lambda kv: kv[1][0])
                errors = [np.linalg.norm(v[1] - truths[k]) for k, v in recent if k in truths]
                latency_ms = [1e3 * (v[0] - (k[0] + 1e-9 * k[1])) for k, v in recent]
                sigma_mm = 1e3 * np.sqrt(np.maximum(np.diag(cov), 0))
                worst = max(levels.values(), default=0)
                print(f'[{now - start:6.1f} s] pose ({frame_id}) x={pos[0]:.3f} y={pos[1]:.3f} '
                      f'z={pos[2]:.3f} m  sigma=({sigma_mm[0]:.1f},{sigma_mm[1]:.1f},'
                      f'{sigma_mm[2]:.1f}) mm  rate={len(recent) / (now - last):.1f} Hz  '
                      f'latency={np.median(latency_ms):.1f} ms  '
                      + (f'error={100 * np.median(errors):.2f} cm  ' if errors else '')
                      + f'diagnostics={["OK", "WARN", "ERROR", "STALE"][worst]}', flush=True)
                last = now
    except KeyboardInterrupt:
        pass
    finally:
        listener.destroy_node()
        rclpy.try_shutdown()
    return 0


def cmd_monitor(args) -> int:
    return _monitor(args.duration)


def cmd_bench(args) -> int:
    from echoloc_ros.offline import bench
    from echoloc_ros.device.decoder import bench_decoder
    print(json.dumps({'bench': 'decoder', **bench_decoder()}), flush=True)
    print(json.dumps(bench.bench_stages(args.frames, room=args.room, method=args.method,
                                        optimization_level=args.level, device=args.device,
                                        track_search=args.track_search == 'on')),
          flush=True)
    if not args.stages_only:
        contention = (os.cpu_count() or 1) if args.contention == -1 else args.contention
        # The simulating driver's graph always; with --driver replay, then the same drive
        # played from a recording.
        for driver in ('sim', 'replay')[:1 + (args.driver == 'replay')]:
            print(json.dumps(bench.bench_graph(args.duration, args.params_file,
                                               method=args.method, contention=contention,
                                               device=args.device, room=args.room,
                                               driver=driver, one_process=args.one_process,
                                               track_search=args.track_search == 'on')),
                  flush=True)
    return 0


def cmd_record(args) -> int:
    from echoloc_ros.nodes.recorder import record
    if args.out.exists():
        raise SystemExit(f'echoloc record: {args.out} exists; give a new directory')
    try:
        counts = record(args.out, args.topic, args.duration, args.flush_period)
    except OSError as exc:
        raise SystemExit(f'echoloc record: cannot write {args.out}: '
                         f'{exc.strerror or exc}') from None
    print(json.dumps({'path': str(args.out), 'messages': counts}), flush=True)
    return 0


def cmd_metrics(args) -> int:
    from echoloc_ros.nodes.metrics_exporter import serve_metrics
    return serve_metrics(args.port, args.host, str(args.token_file or ''),
                         str(args.tls_cert or ''), str(args.tls_key or ''))


def add_parsers(sub) -> None:
    p = sub.add_parser('bringup', help='start the nodes: driver, echo_processor, localizer, '
                       'furniture_survey')
    p.add_argument('--params-file', type=Path, help='node parameter YAML '
                   '(default: config/echoloc.yaml)')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='override a parameter, e.g. driver.sim_snr_db=10')
    p.add_argument('--room', help='room file (name or path) of every node that reads one '
                   f'({", ".join(ROOM_NODES)}); a --set of one node\'s room wins')
    p.add_argument('--monitor', action='store_true', help='also print pose, error and rate')
    p.add_argument('--one-process', action=argparse.BooleanOptionalAction,
                   default=ONE_PROCESS_DEFAULT, help=ONE_PROCESS_HELP)
    p.set_defaults(func=cmd_bringup)

    p = sub.add_parser('monitor', help='print pose, error vs ground truth, rate, latency')
    p.add_argument('--duration', type=float, help='seconds (default: until Ctrl-C)')
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser('bench', help='latency, rate, drops and memory as JSON')
    p.add_argument('--frames', type=int, default=100, help='frames for the per-stage bench')
    p.add_argument('--duration', type=float, default=20.0, help='seconds of the graph bench')
    p.add_argument('--params-file', type=Path)
    p.add_argument('--stages-only', action='store_true')
    p.add_argument('--method', choices=('physics', 'nn'), default='physics',
                   help='localizer (nn: the shipped model for the default room)')
    p.add_argument('--level', choices=('fast', 'balanced', 'accurate'), default='balanced',
                   help='optimization level of the per-stage bench')
    p.add_argument('--room', default='default_room', help='room (name or YAML path)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                   help='where the nn runs (the JSON says where it ran)')
    p.add_argument('--contention', type=int, nargs='?', const=-1, default=0, metavar='N',
                   help='graph bench with N busy processes competing for the CPU (no N: one '
                   'per core)')
    p.add_argument('--driver', choices=('sim', 'replay'), default='sim',
                   help='replay: after the graph with the simulating driver, the graph again '
                   'with the driver playing a recording of the same drive (the nodes\' CPU '
                   'time without the simulator\'s beside them, as on a robot)')
    p.add_argument('--one-process', action=argparse.BooleanOptionalAction,
                   default=ONE_PROCESS_DEFAULT, help=ONE_PROCESS_HELP)
    p.add_argument('--track-search', choices=('on', 'off'), default='on',
                   help='the localizer\'s track_search: a local fix from the track\'s '
                   'prediction where it stands in for the full search (off: the full search '
                   'every frame); the stages bench tracks as the node does either way')
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser('record', help='record the graph\'s topics to MCAP (rosbag2 layout)')
    p.add_argument('out', type=Path, help='recording directory to create')
    p.add_argument('--topic', action='append', metavar='TOPIC:TYPE',
                   help='a topic and its package/msg/Type (repeat); default: all of echoloc\'s')
    p.add_argument('--duration', type=float, help='seconds (default: until Ctrl-C)')
    p.add_argument('--flush-period', type=float, default=1.0,
                   help='seconds between flushes: the most a crash loses')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('metrics', help='serve Prometheus /metrics and /health from the graph')
    p.add_argument('--port', type=int, default=9101, help='0 picks a free port')
    p.add_argument('--host', default='127.0.0.1', help='address to bind; any but loopback '
                   'needs --token-file')
    p.add_argument('--token-file', type=Path, help='file holding a bearer token every request '
                   'must carry (Authorization: Bearer <token>)')
    p.add_argument('--tls-cert', type=Path, help='PEM certificate: serve HTTPS')
    p.add_argument('--tls-key', type=Path, help='PEM private key of --tls-cert')
    p.set_defaults(func=cmd_metrics)
