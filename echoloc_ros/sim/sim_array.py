"""The embedded simulated array: the simulator driven along a trajectory, with a noisy heading."""
from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.sim.trajectory import LissajousTrajectory


@dataclass
class SimFrame:
    """One simulated acquisition.

    :param samples: int16 ``(n_channels, n_samples)``.
    :param position_m: true array position ``(3,)`` in the room frame.
    :param yaw_rad: true heading.
    :param measured_yaw_rad: heading as a noisy compass/IMU would report it.
    """

    samples: np.ndarray
    position_m: np.ndarray
    yaw_rad: float
    measured_yaw_rad: float


class SimulatedArray:
    """An array moving through ``room`` along a figure-of-eight, as the ``sim`` driver backend.

    :param margin_m: closest approach to a wall [m]; ``None``: 0.6, or 1.2 in a room with
        furniture (its boxes stand by the walls, and the path must not run through one).
    :param heading_noise_rad: standard deviation of the reported heading's error.
    :param seed: makes the noise (and so every frame) reproducible.
    """

    def __init__(self, room: Room, array_geometry: ArrayGeometry, chirp: Chirp, fs_hz: float,
                 scenario: Scenario, height_m: float = 0.3, speed_mps: float = 0.3,
                 margin_m: float | None = None, heading_noise_rad: float = np.deg2rad(1.0),
                 seed: int = 0):
        self.simulator = EchoSimulator(room, array_geometry, chirp, fs_hz=fs_hz)
        if margin_m is None:
            margin_m = 1.2 if room.furniture or scenario.furniture else 0.6
        lo, hi = room.vertices_m.min(axis=0), room.vertices_m.max(axis=0)
        self.trajectory = LissajousTrajectory.inside(
            (hi[0] - lo[0], hi[1] - lo[1]), margin_m, height_m, speed_mps)
        self.offset_m = np.array([lo[0], lo[1], 0.0])
        points = self.trajectory.positions(
            np.linspace(0, self.trajectory.period_s, 400)) + self.offset_m
        lap = points[:, :2]
        if not np.all(room.contains_xy(lap)) or np.min(room.wall_distance_m(lap)) < \
                0.5 * margin_m:
            raise ValueError(f'room {room.name!r}: the simulated path (a figure-of-eight over '
                             'the bounding box) leaves the floor plan; use a convex room')
        for box in (room.furniture if scenario.furniture is None else scenario.furniture):
            if np.any(box.contains(points, 0.1)):
                raise ValueError(f'room {room.name!r}: the simulated path ({margin_m} m from '
                                 f'the walls) runs through box {box.name!r}')
        self.scenario = scenario
        self.heading_noise_rad = heading_noise_rad
        self.rng = np.random.default_rng(seed)

    @property
    def window_s(self) -> float:
        return self.simulator.window_s

    def acquire(self, t_s: float) -> SimFrame:
        """The frame the array records when it chirps at time ``t_s`` along the trajectory."""
        position, yaw = self.trajectory.pose(t_s)
        position = position + self.offset_m
        samples = self.simulator.simulate(position, yaw, scenario=self.scenario, rng=self.rng)
        measured = yaw + self.heading_noise_rad * self.rng.standard_normal()
        measured = float(np.angle(np.exp(1j * measured)))
        return SimFrame(samples, position, yaw, measured)
