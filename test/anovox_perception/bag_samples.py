"""Small AnoVox bags for replay, recorder and offline tests."""

from __future__ import annotations

import uuid

import numpy as np

from anovox_perception.core.geometry import CameraModel, camera_from_lidar
from anovox_perception.core.stamps import stamp_to_ns
from anovox_perception.tools.bag_reader import BagReader
from anovox_perception.tools.bags import BagFrame, BagTiming, BagTopics, write_bag


def make_bag(path, frames: int = 5, topics: BagTopics | None = None) -> BagTopics:
    rng = np.random.default_rng(0)
    topics = topics or BagTopics()
    items = [
        BagFrame(
            frame_id=i,
            time_s=0.1 * i,
            rgb=rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),
            points=rng.normal(size=(30, 4)).astype(np.float32),
            voxels=np.array([[500, 500, 32, 1]], np.uint16),
        )
        for i in range(frames)
    ]
    timing = BagTiming(camera_offset_ms=-20.0, camera_jitter_ms=4.0, lidar_jitter_ms=2.0, seed=1)
    write_bag(
        path,
        items,
        scenario='s',
        camera=CameraModel.from_fov(24, 16, 90.0),
        T_cam_lidar=camera_from_lidar(np.eye(4), np.eye(4)),
        topics=topics,
        timing=timing,
    )
    return topics


def unique_topics() -> BagTopics:
    tag = f'/t{uuid.uuid4().hex[:8]}'  # keeps concurrent test runs on one domain apart
    return BagTopics(
        image=f'{tag}/image',
        camera_info=f'{tag}/info',
        points=f'{tag}/points',
        voxels=f'{tag}/gt',
        tf_static='/tf_static',
    )


def bag_stamps(path, topic: str) -> list[int]:
    with BagReader(path) as bag:
        return [stamp_to_ns(msg.header.stamp) for _, _, msg in bag.messages(topics=[topic])]
