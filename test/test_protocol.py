"""Protocol v1: round trips, error counting, and fuzzing of the streaming decoder."""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from echoloc_ros.device import protocol as p
from echoloc_ros.device.decoder import FrameDecoder, bench_decoder

U32 = st.integers(0, 2 ** 32 - 1)
F32 = st.floats(width=32, allow_nan=False)


def echo_frames():
    shapes = st.tuples(st.integers(0, 4), st.integers(0, 40))
    return shapes.flatmap(lambda shape: st.builds(
        p.EchoFrame, U32, st.integers(0, 2 ** 64 - 1), U32,
        st.lists(st.integers(-32768, 32767), min_size=shape[0] * shape[1],
                 max_size=shape[0] * shape[1]).map(
            lambda v: np.array(v, dtype=np.int16).reshape(shape))))


MESSAGES = st.one_of(
    st.builds(p.Ping, U32), st.builds(p.Pong, U32), st.just(p.GetInfo()), st.just(p.Start()),
    st.just(p.Stop()), st.just(p.GetStatus()),
    st.builds(p.Configure, st.sampled_from(p.ChirpKind), F32, F32, F32, U32, U32, F32,
              st.sampled_from(p.Taper)),
    st.builds(p.Info, st.text(max_size=20), st.text(max_size=20), U32, st.integers(0, 255),
              st.integers(0, 255), U32, U32),
    st.builds(p.Ack, U32, st.integers(0, 255)),
    st.builds(p.Nack, U32, st.integers(0, 255), st.sampled_from(p.ErrorCode)),
    st.builds(p.Status, st.integers(0, 2 ** 64 - 1), F32, F32, U32, U32,
              st.sampled_from(p.DeviceState)),
    echo_frames())

EXAMPLES = [
    p.Ping(0xDEADBEEF), p.Pong(1), p.GetInfo(), p.Start(), p.Stop(), p.GetStatus(),
    p.Configure(p.ChirpKind.HFM, 35_000.0, 45_000.0, 0.001953125, 250_000, 10_000,
                20.0, p.Taper.RECT),
    p.Info('echoloc-fw 1.0.0', 'square_4sensor-µ', 250_000, 4, 1, 600_000_000, 16_384),
    p.Ack(7, p.MsgType.CONFIGURE), p.Nack(8, p.MsgType.START, p.ErrorCode.BUSY),
    p.Status(2 ** 40, 31.25, 5.0625, 17, 2, p.DeviceState.STREAMING),
    p.EchoFrame(42, 2 ** 63 + 5, 250_000,
                np.array([[-32768, 32767, 0], [1, -1, 12345]], dtype=np.int16)),
]


@pytest.mark.parametrize('msg', EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_every_message(msg):
    frame = p.encode(msg, 1234)
    decoder = FrameDecoder()
    assert decoder.feed(frame) == [p.Decoded(1234, msg)]
    assert decoder.stats.frames_ok == 1 and decoder.stats.bytes_ok == len(frame)


def test_frame_layout_matches_the_document():
    frame = p.encode(p.Ack(0x01020304, p.MsgType.STOP), 0x0A0B0C0D)
    assert frame[:4] == bytes.fromhex('eca55ac3')
    assert frame[4:16] == bytes.fromhex('01 83 0000 0d0c0b0a 05000000')
    assert struct.unpack_from('<I', frame, 16)[0] == zlib.crc32(frame[:16])
    assert frame[20:25] == bytes.fromhex('04030201 05')
    assert struct.unpack_from('<I', frame, 25)[0] == zlib.crc32(frame[:25])
    assert len(frame) == 29


def test_echo_samples_are_zero_copy_views_of_the_input():
    samples = np.arange(-600, 600, dtype=np.int16).reshape(4, 300)
    data = p.encode(p.EchoFrame(1, 2, 250_000, samples), 0)
    (decoded,) = FrameDecoder().feed(data)
    out = decoded.msg.samples
    assert out.dtype == np.dtype('<i2') and out.shape == (4, 300)
    assert not out.flags.owndata and not out.flags.writeable
    assert np.array_equal(out, samples)
    base = out
    while isinstance(base, np.ndarray):
        base = base.base
    assert base is data


@pytest.mark.parametrize('bad', [p.Ping(-1), p.Ack(2 ** 32, 0),
                                 p.Info('x' * 65, 'id', 1, 1),
                                 p.EchoFrame(0, 0, 1, np.zeros((1, 2 ** 19), np.int16))])
def test_encode_rejects_values_that_do_not_fit(bad):
    with pytest.raises(ValueError):
        p.encode(bad, 0)


def _stream(*frames):
    return b''.join(frames)


def test_bad_crc_is_counted_and_not_delivered():
    bad = bytearray(p.encode(p.Ping(1), 0))
    bad[21] ^= 0x10
    decoder = FrameDecoder()
    out = decoder.feed(_stream(bytes(bad), p.encode(p.Ping(2), 1)))
    assert out == [p.Decoded(1, p.Ping(2))]
    assert decoder.stats.crc_errors == 1 and decoder.stats.truncated == 0


def test_lost_byte_counts_truncated_and_next_frame_survives():
    short = p.encode(p.EchoFrame(0, 0, 1, np.ones((2, 50), np.int16)), 0)
    short = short[:60] + short[61:]
    decoder = FrameDecoder()
    out = decoder.feed(_stream(short, p.encode(p.Pong(9), 1)))
    assert out == [p.Decoded(1, p.Pong(9))]
    assert decoder.stats.truncated == 1 and decoder.stats.crc_errors == 0


def test_damaged_header_counts_header_crc_error():
    bad = bytearray(p.encode(p.Ping(1), 0))
    bad[13] ^= 0x01  # length field
    decoder = FrameDecoder()
    assert decoder.feed(_stream(bytes(bad), p.encode(p.Ping(2), 1))) == [p.Decoded(1, p.Ping(2))]
    assert decoder.stats.header_crc_errors == 1 and decoder.stats.resyncs == 1


def test_oversize_unknown_version_and_malformed_are_counted():
    decoder = FrameDecoder(max_payload_bytes=64)
    stream = _stream(p.encode_frame(p.MsgType.ECHO_FRAME, 0, bytes(100)),
                     p.encode_frame(0x7F, 1, b'abc'),
                     p.encode_frame(p.MsgType.PING, 2, bytes(4), version=2),
                     p.encode_frame(p.MsgType.ACK, 3, bytes(3)),
                     p.encode_frame(p.MsgType.ECHO_FRAME, 4, bytes(p.ECHO_HEADER.size + 1)),
                     p.encode(p.Stop(), 5))
    assert decoder.feed(stream) == [p.Decoded(5, p.Stop())]
    s = decoder.stats
    assert (s.oversize, s.unknown_type, s.bad_version, s.malformed) == (1, 1, 1, 2)
    assert s.bytes_in == s.bytes_ok + s.bytes_discarded + decoder.pending_bytes


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), max_size=20))
def test_feed_never_raises_and_accounts_for_every_byte(data, cuts):
    decoder = FrameDecoder(max_payload_bytes=512, slice_bytes=256)
    pos = 0
    for cut in cuts + [len(data)]:
        decoder.feed(data[pos:pos + cut])
        pos += cut
        assert decoder.pending_bytes <= decoder.max_buffer_bytes
    s = decoder.stats
    assert s.bytes_in == len(data) == s.bytes_ok + s.bytes_discarded + decoder.pending_bytes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=64), MESSAGES), min_size=1, max_size=8),
       st.binary(max_size=64), st.data())
def test_every_frame_in_garbage_is_recovered_across_any_chunking(items, tail, data):
    stream = b''.join(junk + p.encode(msg, seq) for seq, (junk, msg) in enumerate(items)) + tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    out = []
    for a, b in zip([0] + cuts, cuts + [len(stream)]):
        out += decoder.feed(stream[a:b])
    assert out == [p.Decoded(seq, msg) for seq, (_, msg) in enumerate(items)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_buffer_stays_bounded_while_a_huge_frame_is_pending(chunks, rnd):
    decoder = FrameDecoder(max_payload_bytes=64 * 1024, slice_bytes=4096)
    header = p.encode_frame(p.MsgType.ECHO_FRAME, 0, bytes(64 * 1024))[:p.HEADER_SIZE]
    decoder.feed(header)
    for n in chunks:
        decoder.feed(rnd.randbytes(n))
        assert decoder.pending_bytes <= decoder.max_buffer_bytes


def test_configure_problem_enforces_the_firmware_rules():
    assert p.configure_problem(p.Configure(), 16_384) is None
    assert 'window_samples' in p.configure_problem(p.Configure(window_samples=20_000), 16_384)
    assert 'frame_rate_hz' in p.configure_problem(p.Configure(frame_rate_hz=30.0), 16_384)
    assert 'f1_hz' in p.configure_problem(p.Configure(f1_hz=130_000.0), 16_384)
    assert 'duration_s' in p.configure_problem(p.Configure(duration_s=float('nan')), 16_384)


def test_bench_decoder_reports_throughput():
    result = bench_decoder(n_frames=10, n_samples=1000, chunk_bytes=(4096,))
    assert result['frame_bytes'] == p.HEADER_SIZE + p.ECHO_HEADER.size + 8000 + 4
    assert result['mb_per_s'] > 0
