"""The one search path for the package's data files: source checkout, ROS 2 share, pip share."""

from __future__ import annotations

import sys
from pathlib import Path

import anovox_perception.core.package_data as package_data

SOURCE_ROOT = Path(package_data.__file__).resolve().parents[2]


def test_data_dirs_put_the_source_checkout_first_and_the_pip_share_last() -> None:
    dirs = package_data.data_dirs('models')
    assert dirs[0] == SOURCE_ROOT / 'models'  # the tests run from the checkout (package.xml beside the package)
    assert dirs[-1] == Path(sys.prefix) / 'share' / 'anovox_perception' / 'models'
    assert len(set(dirs)) == len(dirs)
    assert package_data.model_search_dirs() == dirs


def test_find_data_file_takes_the_first_directory_holding_the_file(tmp_path, monkeypatch) -> None:
    first, second = tmp_path / 'first', tmp_path / 'second'
    for d in (first, second):
        (d / 'config').mkdir(parents=True)
    (second / 'config' / 'profile.xml').write_text('<profiles/>')
    monkeypatch.setattr(package_data, 'data_dirs', lambda folder: [first / folder, second / folder])
    assert package_data.find_data_file('config', 'profile.xml') == second / 'config' / 'profile.xml'
    (first / 'config' / 'profile.xml').write_text('<profiles/>')
    assert package_data.find_data_file('config', 'profile.xml') == first / 'config' / 'profile.xml'
    assert package_data.find_data_file('config', 'missing.xml') is None


def test_the_fastdds_profile_of_the_checkout_is_found() -> None:
    from anovox_training.integration.node_run import FASTDDS_PROFILE

    assert FASTDDS_PROFILE == SOURCE_ROOT / 'config' / 'fastdds_large_data.xml'
