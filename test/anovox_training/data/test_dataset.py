"""resolve_scenarios and split files: sources in order, relative split entries, clear errors."""

from __future__ import annotations

import pytest
from handmade_scenarios import write_layout_a, write_layout_b

from anovox_perception.core.errors import ConfigError, DataError
from anovox_training.data.dataset import read_split_file, resolve_scenarios


@pytest.fixture
def two_roots(tmp_path):
    write_layout_b(tmp_path / 'root1', name='Scenario_q', frame_ids=(5, 3))
    write_layout_b(tmp_path / 'root1', name='Scenario_b', frame_ids=(10,))
    write_layout_a(tmp_path / 'root2', name='Scenario_a', frame_ids=(1, 2))
    return tmp_path / 'root1', tmp_path / 'root2'


def test_scenarios_are_ordered_by_source_then_path(two_roots):
    assert [p.name for p in resolve_scenarios(list(two_roots))] == ['Scenario_b', 'Scenario_q', 'Scenario_a']
    assert [p.name for p in resolve_scenarios(two_roots[1] / 'Scenario_a')] == ['Scenario_a']


def test_split_file_lists_scenarios_relative_to_itself_with_comments(two_roots, tmp_path):
    split = tmp_path / 'splits' / 'val.txt'
    split.parent.mkdir()
    split.write_text('# validation\n../root2/Scenario_a\n\n../root1/Scenario_q  # two frames\n')
    expected = [(tmp_path / 'root2' / 'Scenario_a').resolve(), (tmp_path / 'root1' / 'Scenario_q').resolve()]
    assert read_split_file(split) == expected
    assert resolve_scenarios(split) == expected


def test_split_file_naming_a_missing_folder_says_which_line(tmp_path):
    split = tmp_path / 'train.txt'
    split.write_text('Scenario_x\n')
    with pytest.raises(DataError, match=r"train\.txt line 1: scenario folder 'Scenario_x' not found"):
        resolve_scenarios(split)
    split.write_text('# nothing here\n')
    with pytest.raises(DataError, match=r'train\.txt lists no scenario folder'):
        read_split_file(split)


def test_the_same_scenario_twice_and_bad_sources_are_refused(two_roots):
    root1, _ = two_roots
    with pytest.raises(DataError, match='Scenario_q is given twice'):
        resolve_scenarios([root1, root1 / 'Scenario_q'])
    with pytest.raises(ConfigError, match='at least one dataset root'):
        resolve_scenarios([])
    with pytest.raises(DataError, match='does not exist'):
        resolve_scenarios(root1 / 'nope')
