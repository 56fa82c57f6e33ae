"""The features message between the echo processor and its readers: the envelope is left out
and recomputed from the baseband, bit for bit what the processor computed; a recording that
carries it still reads."""
import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.ros import conversions
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


@pytest.fixture(scope='module')
def features():
    array_geometry, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(load_room('default_room'), array_geometry, chirp)
    samples = simulator.simulate([2.0, 1.5, 0.3], 0.4, Scenario(snr_db=20.0),
                                 np.random.default_rng(3))
    return EchoProcessor(chirp, 250e3, array=array_geometry).process(samples)


def _wire(msg: EchoFeatures) -> EchoFeatures:
    return deserialize_message(serialize_message(msg), EchoFeatures)


def test_the_reader_gets_the_processors_features_bit_for_bit(features):
    msg = _wire(conversions.features_msg(features, EchoFrame(seq=7), 0.001))
    assert len(msg.envelope) == 0
    assert len(msg.baseband_real) == features.baseband.size
    read = conversions.features_from_msg(msg)
    assert read.baseband.dtype == np.complex64 and read.envelope.dtype == np.float32
    np.testing.assert_array_equal(read.baseband, features.baseband)
    np.testing.assert_array_equal(read.envelope, features.envelope)
    for name in conversions.PER_CHANNEL_FIELDS:
        np.testing.assert_array_equal(getattr(read, name),
                                      getattr(features, name).astype(np.float32))


def test_a_recording_that_carries_the_envelope_still_reads(features):
    msg = conversions.features_msg(features, EchoFrame(seq=8), 0.001)
    # As the processor published it before the envelope was left out.
    msg.envelope = array.array('f', (2.0 * features.envelope).tobytes())
    read = conversions.features_from_msg(_wire(msg))
    np.testing.assert_array_equal(read.envelope, 2.0 * features.envelope)
    msg.envelope = array.array('f', [1.0] * 10)
    with pytest.raises(ValueError, match=r'envelope has 10 values, expected n_channels\*n_bins '
                                         r'= \d+ or none'):
        conversions.features_from_msg(msg)


def _same_bits(a, b) -> bool:
    """Two arrays of one dtype and shape, equal to the bit (NaN payloads and -0.0 included)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_the_features_handed_over_in_one_process_are_the_views_read_to_the_bit(features):
    # The localizer in the echo processor's process reads the processor's features as it
    # would read the fields of the features message the processor hands over with them.
    frame = EchoFrame(seq=9)
    view = conversions.features_view(features, frame, 0.001)
    read = conversions.features_from_msg(view)
    handed = conversions.features_handed(features, frame.seq)
    for name in ('baseband', 'envelope', *conversions.PER_CHANNEL_FIELDS):
        assert _same_bits(getattr(handed, name), getattr(read, name)), name
    for name in ('bin_width_s', 'start_s', 'carrier_hz', 'direct_residual_db'):
        assert repr(getattr(handed, name)) == repr(getattr(read, name)), name
    # The per-channel values rounded to single precision, as the message carries them.
    assert not _same_bits(handed.direct_tof_s, features.direct_tof_s)


def test_features_handed_over_are_refused_as_the_messages_are(features):
    from dataclasses import replace
    # A NaN in a real part, an inf in an imaginary part alone (the check reads both), and
    # a baseband that is a strided view.
    for row, column, value in ((1, 5, np.nan), (3, 7, complex(0.0, np.inf))):
        baseband = features.baseband.copy()
        baseband[row, column] = value
        with pytest.raises(ValueError, match=r'features seq=4: baseband holds NaN or inf'):
            conversions.features_handed(replace(features, baseband=baseband), 4)
        with pytest.raises(ValueError, match=r'features seq=4: baseband holds NaN or inf'):
            conversions.features_handed(replace(features, baseband=baseband[:, ::-1]), 4)
    assert conversions.features_handed(
        replace(features, baseband=features.baseband[:, ::-1]), 4).baseband.shape == \
        features.baseband.shape
    with pytest.raises(ValueError, match=r'features seq=4: bin_width_s=0.5, expected '
                                         r'\[1e-08, 0.01\]'):
        conversions.features_handed(replace(features, bin_width_s=0.5), 4)
    with pytest.raises(ValueError, match=r'features seq=4: tof_s has shape \(3,\), expected '
                                         r'\(n_channels,\) = \(4,\)'):
        conversions.features_handed(replace(features, tof_s=features.tof_s[:3]), 4)
