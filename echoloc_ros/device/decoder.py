"""Streaming decoder of the serial protocol (v1, see docs/protocol.md), and its throughput bench.

:class:`FrameDecoder` survives any byte stream (garbage, bit flips, lost bytes, truncated
frames) and counts what it rejected; the frame layout and the messages are
:mod:`echoloc_ros.device.protocol`.
"""

from __future__ import annotations

import dataclasses
import struct
import time
import zlib

import numpy as np

from echoloc_ros.device.protocol import (HEADER, HEADER_CRC_SPAN, HEADER_SIZE,
                                         MAX_PAYLOAD_BYTES, PROTOCOL_VERSION, SYNC,
                                         TRAILER_SIZE, Decoded, EchoFrame, MsgType,
                                         decode_payload, encode)

_U32 = struct.Struct('<I')
_KNOWN_TYPES = frozenset(int(t) for t in MsgType)


@dataclasses.dataclass
class DecoderStats:
    """Counters of a :class:`FrameDecoder`.

    Invariant: ``bytes_in == bytes_ok + bytes_discarded + decoder.pending_bytes``.
    """

    bytes_in: int = 0
    bytes_ok: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    header_crc_errors: int = 0
    truncated: int = 0
    oversize: int = 0
    unknown_type: int = 0
    bad_version: int = 0
    malformed: int = 0
    resyncs: int = 0
    bytes_discarded: int = 0

    def as_dict(self) -> dict:
        """Return the counters as a plain dict."""
        return dataclasses.asdict(self)


class FrameDecoder:
    """Streaming frame decoder: feed it arbitrary chunks, get back complete messages.

    Never raises on any byte input; every rejected frame is counted in :attr:`stats`:

    - ``header_crc_errors``: a sync word whose 16-byte header fails its CRC (false sync or a
      damaged header); the decoder slides one byte and searches again.
    - ``crc_errors``: header fine, payload CRC wrong (bit errors in the payload).
    - ``truncated``: payload CRC wrong and a valid header starts inside the declared frame:
      bytes were lost, or the sender restarted mid-frame.
    - ``oversize``: a header with a valid CRC declaring more than ``max_payload_bytes``.
    - ``unknown_type``, ``bad_version``, ``malformed``: intact frames this decoder cannot use.
    - ``resyncs``: times framing was regained after discarding bytes.

    Memory stays bounded: at most one partial frame plus one input slice is buffered
    (:attr:`max_buffer_bytes`).
    """

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES,
                 slice_bytes: int = 64 * 1024) -> None:
        """Create a decoder.

        :param max_payload_bytes: frames declaring a longer payload are rejected (oversize)
        :param slice_bytes: input is consumed in slices of this size while a partial frame
            is pending, which bounds the buffer
        """
        if not 0 < max_payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f'max_payload_bytes must be in (0, {MAX_PAYLOAD_BYTES}], got '
                             f'{max_payload_bytes}')
        if slice_bytes <= 0:
            raise ValueError(f'slice_bytes must be positive, got {slice_bytes}')
        self.max_payload_bytes = max_payload_bytes
        self.max_frame_bytes = HEADER_SIZE + max_payload_bytes + TRAILER_SIZE
        self.max_buffer_bytes = self.max_frame_bytes + slice_bytes
        self.stats = DecoderStats()
        self._slice = slice_bytes
        self._buf = bytearray()
        self._lost = False

    @property
    def pending_bytes(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Drop any partial frame (e.g. after reopening the port); counters are kept."""
        self._discard(len(self._buf))
        self._buf.clear()

    def feed(self, data: bytes) -> list[Decoded]:
        """Consume a chunk of the byte stream.

        :param data: any bytes-like object, of any length, split anywhere
        :return: the messages completed by this chunk, in stream order.  ECHO_FRAME samples
            are read-only views into ``data`` when it is ``bytes`` and the frame lies
            entirely inside it, else into a private copy.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        out: list[Decoded] = []
        n = len(data)
        self.stats.bytes_in += n
        pos = 0
        while pos < n:
            if self._buf:
                take = min(n - pos, self._slice)
                self._buf += memoryview(data)[pos:pos + take]
                pos += take
                used = self._parse(self._buf, 0, len(self._buf), False, out)
                del self._buf[:used]
            else:
                used = self._parse(data, pos, n, True, out)
                self._buf += memoryview(data)[used:n]
                pos = n
        return out

    def _discard(self, n_bytes: int) -> None:
        if n_bytes:
            self.stats.bytes_discarded += n_bytes
            self._lost = True

    def _valid_header_at(self, src, view, pos: int, end: int) -> bool:
        if end - pos < HEADER_SIZE:
            return False
        hcrc = _U32.unpack_from(src, pos + HEADER_CRC_SPAN)[0]
        return zlib.crc32(view[pos:pos + HEADER_CRC_SPAN]) == hcrc

    def _header_inside(self, src, view, start: int, stop: int, end: int) -> bool:
        """Is there a valid header starting in ``src[start:stop]``?"""
        limit = min(stop + len(SYNC) - 1, end)
        j = src.find(SYNC, start, limit)
        while j >= 0:
            if self._valid_header_at(src, view, j, end):
                return True
            j = src.find(SYNC, j + 1, limit)
        return False

    def _parse(self, src, pos: int, end: int, zero_copy: bool, out: list) -> int:
        """Decode complete frames in ``src[pos:end]``; return the first unconsumed index."""
        st = self.stats
        with memoryview(src) as view:
            while True:
                i = src.find(SYNC, pos, end)
                if i < 0:
                    keep = next((k for k in (3, 2, 1)
                                 if end - pos >= k and src[end - k:end] == SYNC[:k]), 0)
                    self._discard(end - pos - keep)
                    return end - keep
                self._discard(i - pos)
                pos = i
                if end - pos < HEADER_SIZE:
                    return pos
                _, version, msg_type, _, seq, length, hcrc = HEADER.unpack_from(src, pos)
                if zlib.crc32(view[pos:pos + HEADER_CRC_SPAN]) != hcrc:
                    st.header_crc_errors += 1
                    self._discard(1)
                    pos += 1
                    continue
                if length > self.max_payload_bytes:
                    st.oversize += 1
                    self._discard(1)
                    pos += 1
                    continue
                body_end = pos + HEADER_SIZE + length
                total = HEADER_SIZE + length + TRAILER_SIZE
                if end - pos < total:
                    return pos
                if zlib.crc32(view[pos:body_end]) != _U32.unpack_from(src, body_end)[0]:
                    # Rescan from the next byte rather than skipping the declared length: if
                    # bytes were lost, the next frame starts inside this one.
                    if self._header_inside(src, view, pos + 1, pos + total, end):
                        st.truncated += 1
                    else:
                        st.crc_errors += 1
                    self._discard(1)
                    pos += 1
                    continue
                frame_start = pos
                pos += total
                if version != PROTOCOL_VERSION:
                    st.bad_version += 1
                elif msg_type not in _KNOWN_TYPES:
                    st.unknown_type += 1
                else:
                    try:
                        msg = decode_payload(msg_type, src, frame_start + HEADER_SIZE, length,
                                             zero_copy)
                    except (ValueError, struct.error):
                        st.malformed += 1
                    else:
                        st.frames_ok += 1
                        st.bytes_ok += total
                        if self._lost:
                            st.resyncs += 1
                            self._lost = False
                        out.append(Decoded(seq, msg))
                        continue
                st.bytes_discarded += total


def bench_decoder(n_frames: int = 200, n_channels: int = 4, n_samples: int = 10_000,
                  chunk_bytes: tuple[int, ...] = (4096, 65536, 1 << 20),
                  seed: int = 0) -> dict:
    """Measure decoding throughput on a stream of echo frames.

    :param n_frames: frames in the stream (default 200 frames of 80 KB = 16 MB)
    :param n_channels: channels per frame
    :param n_samples: samples per channel per frame
    :param chunk_bytes: sizes of the chunks fed to the decoder (serial reads come in chunks)
    :param seed: seed of the random samples
    :return: JSON-ready dict; ``mb_per_s`` is the slowest chunk size (MB = 1e6 bytes)
    """
    rng = np.random.default_rng(seed)
    samples = rng.integers(-32768, 32768, size=(n_channels, n_samples), dtype=np.int16)
    frame = encode(EchoFrame(0, 0, 250_000, samples), 0)
    stream = frame * n_frames
    results = {}
    for size in chunk_bytes:
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        decoder = FrameDecoder()
        t0 = time.perf_counter()
        n_out = sum(len(decoder.feed(chunk)) for chunk in chunks)
        elapsed_s = time.perf_counter() - t0
        if n_out != n_frames:
            raise RuntimeError(f'decoded {n_out} of {n_frames} frames')
        results[str(size)] = round(len(stream) / elapsed_s / 1e6, 1)
    return {
        'frame_bytes': len(frame),
        'stream_bytes': len(stream),
        'mb_per_s_by_chunk_bytes': results,
        'mb_per_s': min(results.values()),
    }
