"""The parameter table is the one source: the config files are generated from it, the code's defaults read it."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import yaml

from anovox_perception.core.detector import DetectorConfig
from anovox_perception.core.parameters import (
    PARAMETERS,
    defaults,
    flatten,
    load_params_file,
    nest,
    params_document,
    spec_by_name,
)
from anovox_perception.core.sync import ON_MISSING_CAMERA, ApproximateSync, LidarDrivenSync
from anovox_perception.tools import parameter_files

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'config'


def test_committed_config_files_are_what_the_generator_writes():
    stale = parameter_files.stale_files(CONFIG_DIR)
    assert not stale, f'{stale} differ from the parameter table: run python -m anovox_perception.tools.parameter_files'
    # The command's default folder is the checkout's config/ (what the message above tells a user to run).
    assert parameter_files.stale_files() == []
    assert parameter_files.main(['--check']) == 0


def test_check_mode_reports_a_stale_or_missing_file(tmp_path, capsys):
    assert parameter_files.main(['--config-dir', str(tmp_path), '--check']) == 1
    parameter_files.main(['--config-dir', str(tmp_path)])
    assert parameter_files.main(['--config-dir', str(tmp_path), '--check']) == 0
    yaml_path = tmp_path / parameter_files.YAML_NAME
    yaml_path.write_text(yaml_path.read_text().replace('slop_s: 0.05', 'slop_s: 0.07'))
    capsys.readouterr()
    assert parameter_files.main(['--config-dir', str(tmp_path), '--check']) == 1
    assert f'{yaml_path}: stale' in capsys.readouterr().err


def test_generated_yaml_reads_back_as_the_defaults_and_describes_every_parameter(tmp_path):
    (path,) = [p for p in parameter_files.write_config(tmp_path) if p.name == parameter_files.YAML_NAME]
    assert load_params_file(path) == defaults()
    text = path.read_text()
    for spec in PARAMETERS:
        # The description's first words open a comment; the value line names the range or choices.
        assert f'# {spec.description[:30]}' in text, spec.name
        leaf = spec.name.split('.')[-1]
        (line,) = [line for line in text.splitlines() if line.lstrip().startswith(f'{leaf}:')]
        if spec.choices:
            assert ' | '.join(spec.choices) in line, spec.name
        if spec.read_only:
            assert '(restart)' in line, spec.name


def test_yaml_scalars_keep_their_type_where_plain_text_would_not():
    # A string that YAML would read as a bool or number must come out quoted.
    for value in ('', 'true', '1.5', 'null', 'auto', 1e16, -1.0, 0, True):
        assert yaml.safe_load(parameter_files._scalar(value)) == value
        assert type(yaml.safe_load(parameter_files._scalar(value))) is type(value)


def test_nest_is_the_inverse_of_flatten():
    values = defaults()
    assert flatten(nest(values)) == values
    assert params_document({'sync.slop_s': 0.1})['/**']['ros__parameters'] == {'sync': {'slop_s': 0.1}}


def test_detector_config_defaults_and_runtime_fields_come_from_the_table():
    config = DetectorConfig()
    for f in fields(DetectorConfig):
        spec = spec_by_name(DetectorConfig.PARAMETER_NAMES[f.name])
        assert getattr(config, f.name) == spec.default, f.name
        assert (f.name in DetectorConfig.RUNTIME_FIELDS) is not spec.read_only, f.name


def test_synchroniser_defaults_are_the_sync_parameters():
    table = defaults()
    for cls in (LidarDrivenSync, ApproximateSync):
        for name, parameter in inspect.signature(cls).parameters.items():
            if f'sync.{name}' in table:
                assert parameter.default == table[f'sync.{name}'], f'{cls.__name__}.{name}'
    assert spec_by_name('sync.on_missing_camera').choices == ON_MISSING_CAMERA


def test_backend_option_defaults_and_choices_are_the_backend_parameters():
    from anovox_perception.backends import BACKEND_CHOICES, BackendOptions
    from anovox_perception.backends.base import PRECISIONS

    options = BackendOptions()
    table = defaults()
    assert options.intra_op_threads == table['backend_options.num_threads']
    assert options.precision == table['backend_options.precision']
    assert spec_by_name('backend_options.precision').choices == PRECISIONS
    assert spec_by_name('backend').choices == BACKEND_CHOICES
