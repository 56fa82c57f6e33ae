"""Diagnostic tasks called with a status wrapper, as cpu_monitor's tests do."""
import time

import numpy as np

from echoloc_ros.core.channel_health import channel_health
from echoloc_ros.ros.diagnostics import (ERROR, OK, WARN, DiagnosticStatusWrapper, FrequencyStatus,
                                         FrequencyStatusParam)
from echoloc_ros.nodes.driver import ChannelHealthTask


def test_frequency_status_levels():
    task = FrequencyStatus(FrequencyStatusParam({'min': 10.0, 'max': 10.0}, 0.2, 1))
    stat = task.run(DiagnosticStatusWrapper())
    assert stat.level == ERROR  # nothing ticked yet
    for _ in range(10):
        task.tick()
        time.sleep(0.1)
    stat = task.run(DiagnosticStatusWrapper())
    # ~10 Hz: inside 8..12 on an idle machine; a loaded one may be slower, never faster.
    assert stat.level in (OK, WARN)
    assert stat.level == OK or stat.message == 'Frequency too low.'
    task.tick()
    time.sleep(0.5)
    stat = task.run(DiagnosticStatusWrapper())
    assert stat.level == WARN and stat.message == 'Frequency too low.'


def test_channel_task_reports_dead_channel_as_error():
    rng = np.random.default_rng(0)
    t = np.arange(9000)
    burst = np.where(t < 500, 8000 * np.sin(2 * np.pi * 0.16 * t), 0.0)
    frame = np.rint(burst + rng.normal(0, 20, (4, t.size))).astype(np.int16)
    frame[2] = 0
    task = ChannelHealthTask()
    assert task.run(DiagnosticStatusWrapper()).level == WARN  # no frame yet
    task.report = channel_health(frame)
    stat = task.run(DiagnosticStatusWrapper())
    assert stat.level == ERROR
    assert stat.message == 'channel 2 dead (stuck at 0)'
    assert {v.key for v in stat.values} == {f'channel {i}' for i in range(4)}


def test_merge_summary_keeps_the_worst_level():
    stat = DiagnosticStatusWrapper()
    stat.summary(OK, 'fine')
    stat.mergeSummary(WARN, 'slow')
    stat.mergeSummary(OK, 'also fine')
    assert stat.level == WARN and stat.message == 'slow'
    stat.mergeSummary(ERROR, 'dead')
    assert stat.level == ERROR and stat.message == 'slow; dead'
