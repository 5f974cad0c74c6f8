"""AnoVoxDataset: sources, split files, deterministic order, incomplete frames, transforms."""

from __future__ import annotations

import numpy as np
import pytest
from handmade_scenarios import CAMERA_FOLDERS_B, write_layout_a, write_layout_b
from torch.utils.data import DataLoader

from anovox_perception.errors import ConfigError, DataError
from anovox_training.data.dataset import AnoVoxDataset, read_split_file
from anovox_training.data.frame import AnoVoxFrame


@pytest.fixture
def two_roots(tmp_path):
    write_layout_b(tmp_path / 'root1', name='Scenario_q', frame_ids=(5, 3))
    write_layout_b(tmp_path / 'root1', name='Scenario_b', frame_ids=(10,))
    write_layout_a(tmp_path / 'root2', name='Scenario_a', frame_ids=(1, 2))
    return tmp_path / 'root1', tmp_path / 'root2'


def test_items_are_ordered_by_source_then_scenario_path_then_frame(two_roots):
    dataset = AnoVoxDataset(list(two_roots))
    assert len(dataset) == 5
    expected = [('Scenario_b', 10), ('Scenario_q', 3), ('Scenario_q', 5), ('Scenario_a', 1), ('Scenario_a', 2)]
    assert dataset.keys == expected
    frame = dataset[1]
    assert isinstance(frame, AnoVoxFrame) and (frame.scenario, frame.frame_id) == ('Scenario_q', 3)
    assert dataset[-1].frame_id == 2


def test_split_file_lists_scenarios_relative_to_itself_with_comments(two_roots, tmp_path):
    root1, root2 = two_roots
    split = tmp_path / 'splits' / 'val.txt'
    split.parent.mkdir()
    split.write_text('# validation\n../root2/Scenario_a\n\n../root1/Scenario_q  # two frames\n')
    assert [p.name for p in read_split_file(split)] == ['Scenario_a', 'Scenario_q']
    dataset = AnoVoxDataset(split, sensors=['rgb', 'semantic_points'])
    assert dataset.keys == [('Scenario_a', 1), ('Scenario_a', 2), ('Scenario_q', 3), ('Scenario_q', 5)]
    frame = dataset[0]
    assert frame.rgb is not None and frame.semantic_points is not None and frame.voxels is None


def test_split_file_naming_a_missing_folder_says_which_line(tmp_path):
    split = tmp_path / 'train.txt'
    split.write_text('Scenario_x\n')
    with pytest.raises(DataError, match=r"train\.txt line 1: scenario folder 'Scenario_x' not found"):
        AnoVoxDataset(split)


def test_incomplete_frames_raise_by_default_and_can_be_skipped(tmp_path):
    truth = write_layout_b(tmp_path, frame_ids=(1, 2, 3))
    folder = CAMERA_FOLDERS_B['rgb']
    (truth.path / folder / f'{folder}_2.png').unlink()
    with pytest.raises(DataError, match=r'frames lack requested sensors: Scenario_b frame 2: missing rgb'):
        AnoVoxDataset(tmp_path)
    dataset = AnoVoxDataset(tmp_path, skip_incomplete=True)
    assert dataset.keys == [('Scenario_b', 1), ('Scenario_b', 3)]
    assert dataset.skipped == [('Scenario_b', 2, ['rgb'])]
    # Frames lacking only sensors that were not asked for stay in.
    assert len(AnoVoxDataset(tmp_path, sensors=['points', 'voxels'])) == 3


def test_transform_result_is_returned_and_works_with_a_dataloader(two_roots):
    def to_sample(frame: AnoVoxFrame) -> dict[str, object]:
        return {'key': (frame.scenario, frame.frame_id), 'n_points': len(frame.points)}

    dataset = AnoVoxDataset(two_roots[0], sensors=['points'], transform=to_sample)
    loader = DataLoader(dataset, batch_size=2, shuffle=False, collate_fn=list)
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 1]
    assert [s['key'] for b in batches for s in b] == dataset.keys
    assert all(s['n_points'] == 240 for b in batches for s in b)


def test_the_same_scenario_twice_and_bad_arguments_are_refused(two_roots):
    root1, _ = two_roots
    with pytest.raises(DataError, match='Scenario_q is given twice'):
        AnoVoxDataset([root1, root1 / 'Scenario_q'])
    with pytest.raises(ConfigError, match=r"unknown sensors \['camera'\]"):
        AnoVoxDataset(root1, sensors=['camera'])
    with pytest.raises(ConfigError, match='at least one'):
        AnoVoxDataset([])
    with pytest.raises(DataError, match='does not exist'):
        AnoVoxDataset(root1 / 'nope')
    with pytest.raises(IndexError, match='out of range for 3 frames'):
        AnoVoxDataset(root1)[3]


def test_reading_is_deterministic(two_roots):
    a, b = AnoVoxDataset(list(two_roots)), AnoVoxDataset(list(two_roots))
    np.testing.assert_array_equal(a[4].semantic_points, b[4].semantic_points)
