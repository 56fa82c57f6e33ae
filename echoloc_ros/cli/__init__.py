"""The `echoloc` command: run, watch, measure.

One module per command group; each registers its subcommands with ``add_parsers(sub)``.
"""
import argparse

from echoloc_ros.cli import calibrate, device, evaluate, graph, nn

GROUPS = (graph, evaluate, calibrate, nn, device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='echoloc', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
