"""anovox-make-bag: AnoVox scenarios on disk -> rosbag2."""

from __future__ import annotations

import numpy as np
import pytest
from handmade_scenarios import CAMERA_FOLDERS_B, write_layout_b

from anovox_perception.core import msg_decode
from anovox_perception.core.errors import ConfigError
from anovox_perception.core.geometry import OPTICAL_FROM_BODY, make_transform
from anovox_perception.core.msg_layout import POINT_DTYPE
from anovox_perception.tools.bag_reader import BagDescription, BagReader
from anovox_perception.tools.bags import BagTiming, BagTopics
from anovox_training.data.to_bag import main, scenario_to_bag

START_NS = 1_700_000_000 * 1_000_000_000


def messages_by_topic(path) -> dict[str, list]:
    out: dict[str, list] = {}
    with BagReader(path) as bag:
        for topic, _, msg in bag.messages():
            out.setdefault(topic, []).append(msg)
    return out


def description(path) -> BagDescription:
    with BagReader(path) as bag:
        return bag.description


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_scenario_bag_holds_the_readers_arrays_in_the_lidar_frame(tmp_path, storage):
    truth = write_layout_b(tmp_path, frame_ids=(100, 101, 102))
    summary = scenario_to_bag(truth.path, tmp_path / 'bag', storage=storage)
    assert summary.frames == 3
    topics = BagTopics()
    messages = messages_by_topic(tmp_path / 'bag')
    for frame, image, cloud, voxels in zip(
        truth.frames.values(), messages[topics.image], messages[topics.points], messages[topics.voxels], strict=True
    ):
        np.testing.assert_array_equal(np.asarray(image.data).reshape(frame.rgb.shape), frame.rgb)
        records = np.frombuffer(np.asarray(cloud.data).tobytes(), dtype=POINT_DTYPE)
        xyzi = np.column_stack([records[n] for n in ('x', 'y', 'z', 'intensity')])
        np.testing.assert_array_equal(xyzi, frame.points)  # y flipped back to REP-103 by the reader
        np.testing.assert_array_equal(msg_decode.voxels_from_message(voxels), frame.voxels)
    meta = description(tmp_path / 'bag')
    assert meta.scenario == 'Scenario_b'
    assert meta.frame_ids == [100, 101, 102]
    assert (meta.camera.width, meta.camera.height) == frame.rgb.shape[1::-1]
    # Camera and LiDAR share the mount: the transform only swaps body axes for optical ones.
    np.testing.assert_allclose(meta.T_cam_lidar, make_transform(OPTICAL_FROM_BODY, np.zeros(3)), atol=1e-12)


def test_frame_times_come_from_the_action_timestamps(tmp_path):
    truth = write_layout_b(tmp_path, frame_ids=(100, 102, 105))  # timestamps 10.0, 10.2, 10.5 s
    summary = scenario_to_bag(truth.path, tmp_path / 'bag')
    assert np.allclose(np.array(summary.lidar_stamps_ns) - START_NS, [0, 200_000_000, 500_000_000], atol=2)


def test_selected_frames_and_timing_options_are_honoured(tmp_path):
    truth = write_layout_b(tmp_path, frame_ids=(100, 101, 102))
    timing = BagTiming(camera_offset_ms=-30.0, seed=1)
    summary = scenario_to_bag(truth.path, tmp_path / 'bag', frame_ids=[102, 100], timing=timing)
    assert description(tmp_path / 'bag').frame_ids == [100, 102]
    assert np.array_equal(np.array(summary.camera_stamps_ns) - np.array(summary.lidar_stamps_ns), [-30_000_000] * 2)


def test_a_frame_missing_its_image_is_written_without_one(tmp_path):
    truth = write_layout_b(tmp_path, frame_ids=(100, 101, 102))
    folder = CAMERA_FOLDERS_B['rgb']
    (truth.path / folder / f'{folder}_101.png').unlink()
    summary = scenario_to_bag(truth.path, tmp_path / 'bag')
    assert summary.message_counts[BagTopics().image] == 2
    assert summary.message_counts[BagTopics().points] == 3


def test_unknown_frames_are_rejected_with_the_available_range(tmp_path):
    truth = write_layout_b(tmp_path, frame_ids=(100, 101))
    with pytest.raises(ConfigError, match=r'has no frames \[7\]; it has 100..101'):
        scenario_to_bag(truth.path, tmp_path / 'bag', frame_ids=[7])


def test_cli_writes_the_bag_and_reports_errors_with_exit_codes(tmp_path, capsys):
    truth = write_layout_b(tmp_path, frame_ids=(100, 101))
    args = [str(truth.path), str(tmp_path / 'bag'), '--storage', 'sqlite3', '--camera-jitter-ms', '2', '--seed', '5']
    assert main(args) == 0
    assert 'wrote 2 frames' in capsys.readouterr().out
    assert description(tmp_path / 'bag').timing.seed == 5
    assert main(args) == 2
    assert 'exists already' in capsys.readouterr().err
