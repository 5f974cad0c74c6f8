"""Generating a synthetic AnoVox dataset: scenarios split into frame chunks, optionally in parallel.

A frame's content depends only on (seed, split, scenario index, frame index), so
chunks can be rendered by any worker in any order and the bytes written are the
same for any number of workers. Each scenario draws its own sensor rig and road
shape (variation.py) from a stream of its own, so the scene content does not
depend on them; ``variation=RigVariation.fixed()`` keeps AnoVox's MONO rig and a
flat road.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anovox_perception.core.errors import ConfigError
from anovox_training.data.synth.anomalies import BUILDERS, SPLIT_CATEGORIES
from anovox_training.data.synth.drape import drape
from anovox_training.data.synth.pipeline import FrameRenderer, SensorRig
from anovox_training.data.synth.scene import Scenario
from anovox_training.data.synth.variation import RigVariation, draw_lighting, draw_rig, draw_road_shape
from anovox_training.data.synth.world import WorldSettings, build_scenario, scenario_uuid
from anovox_training.data.synth.writer import LayoutBWriter

__all__ = ['GenerateConfig', 'generate']


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate.

    Attributes:
        out: Dataset folder (scenarios are written below it).
        split: 'train', 'val' or 'test'.
        scenarios: Number of scenarios.
        frames: Frames per scenario (10 Hz).
        seed: Dataset seed.
        width, height, fov_deg: Camera image size and horizontal field of view of the base rig (a varied
            camera keeps about its pixel count and draws its own shape and field of view).
        lidar_azimuth_steps: LiDAR rays per beam and revolution of the base rig (a varied LiDAR keeps
            about its ray count).
        variation: Per-scenario rig and road variety (`RigVariation.fixed()`: none).
        categories: Anomaly categories (default: the split's).
        normal_share: Share of scenarios without anomalies.
        workers: Processes rendering in parallel (1 = in this process).
        start_index: Index of the first scenario (to extend a dataset).
        overwrite: Replace scenario folders that already exist (else they are an error).
    """

    out: Path
    split: str
    scenarios: int
    frames: int
    seed: int = 0
    width: int = 768
    height: int = 512
    fov_deg: float = 90.0
    lidar_azimuth_steps: int = 1024
    variation: RigVariation = field(default_factory=RigVariation)
    categories: tuple[str, ...] | None = None
    normal_share: float = 0.15
    workers: int = 1
    start_index: int = 0
    overwrite: bool = False

    def validate(self) -> None:
        """Raise ConfigError for values no scenario can be made from."""
        checks = [
            (self.scenarios >= 1, f'scenarios must be >= 1, got {self.scenarios}'),
            (self.frames >= 1, f'frames must be >= 1, got {self.frames}'),
            (self.width >= 8 and self.height >= 8, f'image size must be at least 8x8, got {self.width}x{self.height}'),
            (0.0 < self.fov_deg < 180.0, f'fov_deg must be in (0, 180), got {self.fov_deg}'),
            (self.lidar_azimuth_steps >= 16, f'lidar_azimuth_steps must be >= 16, got {self.lidar_azimuth_steps}'),
            (0.0 <= self.normal_share <= 1.0, f'normal_share must be in [0, 1], got {self.normal_share}'),
            (self.workers >= 1, f'workers must be >= 1, got {self.workers}'),
            (self.start_index >= 0, f'start_index must be >= 0, got {self.start_index}'),
            (self.seed >= 0, f'seed must be >= 0, got {self.seed}'),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f'synth: {msg}')
        if self.categories is None and self.split not in SPLIT_CATEGORIES:
            msg = f'synth: unknown split {self.split!r}; use one of {sorted(SPLIT_CATEGORIES)} or give --categories'
            raise ConfigError(msg)
        unknown = set(self.categories or ()) - set(BUILDERS)
        if unknown or self.categories == ():
            msg = f'synth: unknown or empty categories {sorted(unknown)}; choose from {sorted(BUILDERS)}'
            raise ConfigError(msg)

    def base_rig(self) -> SensorRig:
        """AnoVox's MONO rig at the configured camera size and LiDAR resolution."""
        return SensorRig.default(self.width, self.height, self.fov_deg, self.lidar_azimuth_steps)

    def _rig_rng(self, index: int) -> np.random.Generator:
        # A stream apart from the scene content's (world.py) and the frames' noise (pipeline.py).
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.split.encode()), index, 2]))

    def rig(self, index: int) -> SensorRig:
        """The sensor rig of scenario ``index``."""
        return draw_rig(self.variation, self.base_rig(), self._rig_rng(index))

    def vary_scenario(self, scenario: Scenario) -> Scenario:
        """``scenario`` (built on a flat road) moved onto its own road shape, under its own light."""
        if not self.variation.enabled:
            return scenario
        rng = self._rig_rng(scenario.index)
        draw_rig(self.variation, self.base_rig(), rng)  # the rig comes first in the stream
        x = scenario.ego.position[:, 0]
        shaped = draw_road_shape(self.variation, scenario.road, (float(x[0]), float(x[-1])), rng)
        lighting = draw_lighting(self.variation, scenario.lighting, rng)
        return dataclasses.replace(drape(scenario, shaped), lighting=lighting)

    def settings(self) -> WorldSettings:
        """What each scenario may contain."""
        return WorldSettings(self.frames, self.categories, self.normal_share)


@functools.lru_cache(maxsize=2)
def _scenario(cfg: GenerateConfig, index: int) -> Scenario:
    # Workers render several chunks of one scenario; build it once per process.
    return cfg.vary_scenario(build_scenario(cfg.split, index, cfg.seed, cfg.settings()))


def _render_chunk(task: tuple[GenerateConfig, int, int, int]) -> tuple[int, dict[str, float]]:
    cfg, index, start, stop = task
    scenario = _scenario(cfg, index)
    rig = cfg.rig(index)
    renderer = FrameRenderer(scenario, rig)
    writer = LayoutBWriter(cfg.out, scenario.scenario_id, rig)
    totals: dict[str, float] = {}
    for k in range(start, stop):
        frame = renderer.render(k)
        clock = time.perf_counter()
        writer.write_frame(frame)
        frame.timings_s['write'] = time.perf_counter() - clock
        for name, sec in frame.timings_s.items():
            totals[name] = totals.get(name, 0.0) + sec
    return stop - start, totals


def _tasks(cfg: GenerateConfig) -> Iterator[tuple[GenerateConfig, int, int, int]]:
    chunk = max(1, min(25, math.ceil(cfg.frames / (2 * cfg.workers))))
    for index in range(cfg.start_index, cfg.start_index + cfg.scenarios):
        for start in range(0, cfg.frames, chunk):
            yield cfg, index, start, min(start + chunk, cfg.frames)


def generate(
    cfg: GenerateConfig, on_frames: Callable[[int], None] | None = None
) -> tuple[list[Path], dict[str, float]]:
    """Write ``cfg.scenarios`` scenarios of ``cfg.frames`` frames below ``cfg.out``.

    Args:
        cfg: What to generate.
        on_frames: Called with the number of frames finished after each chunk (progress).

    Returns:
        The scenario folders, and the seconds spent per rendering stage (summed over frames).

    Raises:
        ConfigError: For invalid settings, or scenario folders that exist without ``overwrite``.
    """
    cfg.validate()
    writers = [
        LayoutBWriter(cfg.out, scenario_uuid(cfg.seed, cfg.split, index), cfg.rig(index))
        for index in range(cfg.start_index, cfg.start_index + cfg.scenarios)
    ]
    existing = [w.dir for w in writers if w.dir.exists()]
    if existing and not cfg.overwrite:
        # Frames of an older run with other settings would mix with the new ones.
        msg = (
            f'synth: {len(existing)} scenario folder(s) already exist, e.g. {existing[0]}; '
            'pass --overwrite to replace them or choose another --out / --seed / --start-index'
        )
        raise ConfigError(msg)
    for folder in existing:
        shutil.rmtree(folder)
    for writer in writers:
        writer.write_setup()
    folders = [w.dir for w in writers]
    totals: dict[str, float] = {}

    def collect(result: tuple[int, dict[str, float]]) -> None:
        done, timings = result
        for name, sec in timings.items():
            totals[name] = totals.get(name, 0.0) + sec
        if on_frames is not None:
            on_frames(done)

    if cfg.workers == 1:
        for task in _tasks(cfg):
            collect(_render_chunk(task))
    else:
        with multiprocessing.get_context('spawn').Pool(cfg.workers) as pool:
            for result in pool.imap_unordered(_render_chunk, _tasks(cfg)):
                collect(result)
    return folders, totals
