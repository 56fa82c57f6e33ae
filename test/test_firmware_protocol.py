"""The C protocol code (firmware/) against the Python one, bit for bit, both directions."""

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from echoloc_ros.device import protocol as p
from echoloc_ros.device.decoder import FrameDecoder

FIRMWARE = pathlib.Path(__file__).resolve().parent.parent / 'firmware'
CFLAGS = ['-std=c99', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O1',
          '-fsanitize=address,undefined', '-fno-sanitize-recover=all']


@pytest.fixture(scope='module')
def host_test(tmp_path_factory):
    if shutil.which('gcc') is None:
        pytest.skip('gcc is not installed: the C protocol code cannot be built here')
    exe = tmp_path_factory.mktemp('fw') / 'host_test'
    subprocess.run(['gcc', *CFLAGS, str(FIRMWARE / 'echoloc_protocol.c'),
                    str(FIRMWARE / 'host_test' / 'host_test.c'), '-o', str(exe)],
                   check=True, capture_output=True, text=True)
    return exe


def echo_pattern(n_channels, n_samples):
    """The samples host_test.c writes: (c*7919 + i*104729) mod 2^16 - 2^15."""
    c, i = np.meshgrid(np.arange(n_channels), np.arange(n_samples), indexing='ij')
    return ((c * 7919 + i * 104729) % 65536 - 32768).astype(np.int16)


EXPECTED_DEVICE_FRAMES = [
    (0, p.Pong(0xDEADBEEF)),
    (1, p.Info('echoloc-fw 1.0.0', 'square_4sensor-001', 250_000, 4, 1, 600_000_000, 16_384)),
    (2, p.Ack(7, p.MsgType.CONFIGURE)),
    (3, p.Nack(8, p.MsgType.CONFIGURE, p.ErrorCode.INVALID_PARAM)),
    (4, p.Status(123456789012, 31.25, 5.0625, 17, 2, p.DeviceState.STREAMING)),
    (5, p.EchoFrame(42, 0x0123456789ABCDEF, 250_000, echo_pattern(4, 100))),
    (0xFFFFFFFF, p.EchoFrame(0xFFFFFFFF, 2 ** 64 - 1, 250_000, echo_pattern(1, 0))),
]


def test_c_device_frames_equal_python_encoding_bit_for_bit(host_test, tmp_path):
    out = tmp_path / 'frames.bin'
    subprocess.run([str(host_test), 'frames', str(out)], check=True)
    data = out.read_bytes()
    assert data == b''.join(p.encode(msg, seq) for seq, msg in EXPECTED_DEVICE_FRAMES)
    decoder = FrameDecoder()
    assert decoder.feed(data) == [p.Decoded(seq, msg) for seq, msg in EXPECTED_DEVICE_FRAMES]
    assert decoder.stats.bytes_ok == len(data)


def _f32(x):
    return float(np.float32(x))


def _configure_line(seq, cfg):
    return {'seq': seq, 'type': 3, 'name': 'CONFIGURE', 'error': 0,
            'chirp_kind': int(cfg.chirp_kind), 'taper': int(cfg.taper),
            'f0_hz': _f32(cfg.f0_hz), 'f1_hz': _f32(cfg.f1_hz),
            'duration_s': _f32(cfg.duration_s), 'fs_hz': cfg.fs_hz,
            'window_samples': cfg.window_samples, 'frame_rate_hz': _f32(cfg.frame_rate_hz)}


def test_c_parser_reads_python_commands_and_rejects_bad_frames(host_test, tmp_path):
    rng = np.random.default_rng(7)
    configs = [p.Configure(p.ChirpKind(int(rng.integers(3))), *rng.uniform(1e3, 1e5, 3),
                           int(rng.integers(2 ** 32)), int(rng.integers(2 ** 32)),
                           float(rng.uniform(0, 100)), p.Taper(int(rng.integers(2))))
               for _ in range(5)]
    bad_crc = bytearray(p.encode(p.Start(), 11))
    bad_crc[-1] ^= 0x80
    cut = p.encode(p.Configure(), 12)[:30]
    oversize = p.encode_frame(p.MsgType.CONFIGURE, 18, bytes(100))
    parts = [(b'\x00garbage\xec\xa5', None),
             (p.encode(p.Ping(0xCAFEF00D), 1), {'token': 0xCAFEF00D}),
             (p.encode(p.GetInfo(), 2), {}), (p.encode(p.Start(), 3), {}),
             (p.encode(p.Stop(), 4), {}), (p.encode(p.GetStatus(), 5), {})]
    parts += [(p.encode(cfg, 100 + k), _configure_line(100 + k, cfg))
              for k, cfg in enumerate(configs)]
    parts += [(bytes(bad_crc), {'seq': 11, 'type': 4, 'error': p.ErrorCode.BAD_CRC}),
              (cut, {'seq': 12, 'type': 3, 'error': p.ErrorCode.BAD_CRC}),
              (p.encode_frame(0x7F, 13, b''), {'seq': 13, 'type': 0x7F,
                                               'error': p.ErrorCode.UNKNOWN_TYPE}),
              (p.encode(p.Pong(1), 14), {'seq': 14, 'type': 0x81,
                                         'error': p.ErrorCode.UNKNOWN_TYPE}),
              (p.encode_frame(p.MsgType.GET_INFO, 15, b'x'),
               {'seq': 15, 'type': 2, 'error': p.ErrorCode.BAD_LENGTH}),
              (p.encode_frame(p.MsgType.START, 16, b'', version=2),
               {'seq': 16, 'type': 4, 'error': p.ErrorCode.BAD_VERSION}),
              (p.encode_frame(p.MsgType.CONFIGURE, 17, b'\x09' + bytes(27)),
               {'seq': 17, 'type': 3, 'error': p.ErrorCode.INVALID_PARAM}),
              (oversize, None),
              (p.encode(p.Ping(5), 19), {'token': 5})]
    path = tmp_path / 'commands.bin'
    path.write_bytes(b''.join(data for data, _ in parts))
    run = subprocess.run([str(host_test), 'parse', str(path)], check=True,
                         capture_output=True, text=True)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    stats = lines.pop()['stats']

    for data, want in parts:
        if want is None:
            continue
        got = lines.pop(0)
        for key, value in want.items():
            # %.9g round-trips a float32 exactly: compare at float32 precision, bit for bit.
            same = (np.float32(got[key]) == np.float32(value) if isinstance(value, float)
                    else got[key] == value)
            assert same, (key, value, got)
        if got['error'] == 0:
            (decoded,) = FrameDecoder().feed(data)
            assert (got['seq'], got['type']) == (decoded.seq, p.msg_type_of(decoded.msg))
    assert lines == []
    assert stats['frames_ok'] == 11 and stats['rejected'] == 5
    assert stats['crc_errors'] == 2 and stats['oversize'] == 1
    assert stats['bytes_in'] == path.stat().st_size and stats['pending'] == 0
