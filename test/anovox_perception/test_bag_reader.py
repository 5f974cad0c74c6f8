"""BagReader: one open for topics, time span, description and any number of message passes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from anovox_perception.core.errors import DataError
from anovox_perception.core.geometry import CameraModel
from anovox_perception.core.stamps import stamp_to_ns
from anovox_perception.tools.bag_reader import BagDescription, BagReader, TopicInfo
from anovox_perception.tools.bags import BagFrame, BagTiming, BagTopics, write_bag

START_NS = 1_700_000_000 * 1_000_000_000
DELAY_NS = 2_000_000  # BagTiming's default receive delay
TOPICS = BagTopics()


def write_frames(path, count: int = 4, storage: str = 'mcap') -> None:
    rng = np.random.default_rng(0)
    frames = [
        BagFrame(
            frame_id=10 + i,
            time_s=0.1 * i,
            rgb=rng.integers(0, 256, (8, 12, 3), dtype=np.uint8),
            points=rng.normal(size=(20, 4)).astype(np.float32),
            voxels=np.array([[500, 500, 32, i]], np.uint16),
        )
        for i in range(count)
    ]
    write_bag(path, frames, scenario='Scenario_r', camera=CameraModel.from_fov(12, 8, 90.0), storage=storage)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_topics_counts_and_time_span_come_from_one_open(tmp_path, storage):
    write_frames(tmp_path / 'bag', storage=storage)
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.topics[TOPICS.points] == TopicInfo(
            TOPICS.points, 'sensor_msgs/msg/PointCloud2', 4, bag.topics[TOPICS.points].offered_qos
        )
        assert {name: info.count for name, info in bag.topics.items()} == {
            TOPICS.image: 4,
            TOPICS.camera_info: 4,
            TOPICS.points: 4,
            TOPICS.voxels: 4,
        }
        assert bag.topics[TOPICS.image].msgtype == 'sensor_msgs/msg/Image'
        assert bag.topics[TOPICS.points].offered_qos[0].reliability.name == 'RELIABLE'
        assert bag.start_ns == START_NS + DELAY_NS
        assert bag.end_ns == START_NS + 300_000_000 + DELAY_NS + 1  # one past the last log time
        assert bag.description.scenario == 'Scenario_r' and bag.description.frame_ids == [10, 11, 12, 13]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_messages_are_decoded_in_log_time_order_within_start_and_stop(tmp_path, storage):
    write_frames(tmp_path / 'bag', storage=storage)
    first_ns = START_NS + DELAY_NS
    with BagReader(tmp_path / 'bag') as bag:
        everything = list(bag.messages())
        assert [t for t, _, _ in everything] == [TOPICS.image, TOPICS.camera_info, TOPICS.points, TOPICS.voxels] * 4
        assert [ns for _, ns, _ in everything] == sorted(ns for _, ns, _ in everything)
        clouds = list(bag.messages(topics=[TOPICS.points], start=first_ns + 100_000_000, stop=first_ns + 300_000_000))
        assert [ns for _, ns, _ in clouds] == [first_ns + 100_000_000, first_ns + 200_000_000]  # stop excluded
        assert [stamp_to_ns(msg.header.stamp) + DELAY_NS for _, _, msg in clouds] == [ns for _, ns, _ in clouds]
        # A second pass over the same open bag reads the same messages.
        assert [(t, ns) for t, ns, _ in bag.raw_messages()] == [(t, ns) for t, ns, _ in everything]
        assert list(bag.messages(topics=[])) == []


def test_raw_messages_are_the_serialized_bytes_of_the_decoded_ones(tmp_path):
    from anovox_perception.tools import bag_messages as bm

    write_frames(tmp_path / 'bag', count=1)
    with BagReader(tmp_path / 'bag') as bag:
        ((topic, _, rawdata),) = bag.raw_messages(topics=[TOPICS.voxels])
        ((_, _, decoded),) = bag.messages(topics=[TOPICS.voxels])
    assert topic == TOPICS.voxels and isinstance(rawdata, bytes)
    assert bytes(bm.get_bag_typestore().serialize_cdr(decoded, decoded.__msgtype__)) == rawdata


def test_metadata_stays_readable_after_close_and_the_reader_opens_again(tmp_path):
    write_frames(tmp_path / 'bag', count=2)
    bag = BagReader(tmp_path / 'bag')
    with pytest.raises(DataError, match=r'bag .*bag: open it before reading its topics \(with BagReader\(path\)'):
        _ = bag.topics
    with bag:  # opened and closed without reading a message
        opened_span = (bag.start_ns, bag.end_ns)
    assert bag.topics[TOPICS.points].count == 2
    assert (bag.start_ns, bag.end_ns) == opened_span and opened_span[0] < opened_span[1]
    with pytest.raises(DataError, match=r'bag .*bag is not open; read its messages inside "with BagReader'):
        list(bag.messages())
    with bag:
        assert len(list(bag.messages(topics=[TOPICS.points]))) == 2
        with pytest.raises(DataError, match='is open already; close it before opening it again'):
            bag.open()


def test_a_bag_written_elsewhere_gets_the_default_description(tmp_path):
    write_frames(tmp_path / 'bag', count=1)
    metadata = tmp_path / 'bag' / 'metadata.yaml'
    info = yaml.safe_load(metadata.read_text())
    info['rosbag2_bagfile_information']['custom_data'] = {}
    metadata.write_text(yaml.safe_dump(info))
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.description == BagDescription()
        assert bag.topics[TOPICS.points].count == 1


def test_a_missing_bag_or_topic_names_the_bag_and_what_it_holds(tmp_path):
    with pytest.raises(
        DataError, match=r'cannot open bag .*nothing: .*expected a rosbag2 directory with metadata.yaml'
    ):
        BagReader(tmp_path / 'nothing').open()
    write_frames(tmp_path / 'bag', count=1)
    bag = BagReader(tmp_path / 'bag')
    with bag, pytest.raises(DataError, match=r"bag .*bag: topics \['/nope'\] not found; it holds \['/ground_truth"):
        list(bag.messages(topics=['/nope', TOPICS.points]))


def test_malformed_anovox_metadata_is_a_data_error_naming_the_key(tmp_path):
    write_frames(tmp_path / 'bag', count=1)
    metadata = tmp_path / 'bag' / 'metadata.yaml'
    info = yaml.safe_load(metadata.read_text())
    info['rosbag2_bagfile_information']['custom_data']['anovox.timing'] = '{"camera_offset_ms": '
    metadata.write_text(yaml.safe_dump(info))
    with pytest.raises(DataError, match=r'custom_data anovox.timing is not valid JSON'):
        BagReader(tmp_path / 'bag').open()
    info['rosbag2_bagfile_information']['custom_data']['anovox.timing'] = '{"camera_jitter_ms": -1}'
    metadata.write_text(yaml.safe_dump(info))
    with pytest.raises(DataError, match=r'malformed AnoVox metadata .*write the bag again'):
        BagReader(tmp_path / 'bag').open()


def test_a_damaged_message_is_a_data_error_naming_topic_and_time(tmp_path):
    write_frames(tmp_path / 'bag', count=1, storage='sqlite3')
    import sqlite3

    (db,) = (tmp_path / 'bag').glob('*.db3')
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE messages SET data = X'0001' WHERE topic_id = (SELECT id FROM topics WHERE name = ?)",
            (TOPICS.points,),
        )
    with BagReader(tmp_path / 'bag') as bag:
        assert len(list(bag.raw_messages(topics=[TOPICS.points]))) == 1  # the bytes still read
        with pytest.raises(
            DataError, match=r'sensor_msgs/msg/PointCloud2 message on /sensing/lidar/points at log time \d+ ns cannot'
        ):
            list(bag.messages(topics=[TOPICS.points]))


def test_the_bag_timing_is_read_back(tmp_path):
    timing = BagTiming(camera_offset_ms=-5.0, seed=9)
    write_bag(tmp_path / 'bag', [BagFrame(0, 0.0, points=np.zeros((1, 4), np.float32))], scenario='s', timing=timing)
    with BagReader(tmp_path / 'bag') as bag:
        assert bag.description.timing == timing
        assert sorted(bag.topics) == sorted([TOPICS.image, TOPICS.points, TOPICS.voxels])
        assert bag.topics[TOPICS.image].count == 0
