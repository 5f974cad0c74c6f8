"""config/detector.yaml, config/detector.schema.json and the node's declared parameters agree."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from anovox_perception.core.errors import ConfigError
from anovox_perception.core.parameters import PARAMETERS, defaults, flatten, load_params_file, validate_values

ROOT = Path(__file__).resolve().parents[2]
YAML_PATH = ROOT / 'config' / 'detector.yaml'
SCHEMA_PATH = ROOT / 'config' / 'detector.schema.json'
# Declared by rclpy itself on every node, not by the detector.
RCLPY_OWN = {'use_sim_time', 'start_type_description_service'}


@pytest.fixture(scope='module')
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope='module')
def document() -> dict:
    return yaml.safe_load(YAML_PATH.read_text())


def schema_leaves(schema: dict) -> dict[str, dict]:
    """Dotted parameter name -> its schema entry."""
    out = {}

    def walk(node: dict, prefix: str) -> None:
        for key, entry in node['properties'].items():
            if entry.get('type') == 'object':
                walk(entry, f'{prefix}{key}.')
            else:
                out[f'{prefix}{key}'] = entry

    walk(schema['definitions']['anovox_detector'], '')
    return out


def test_shipped_yaml_validates_against_the_schema(schema, document):
    jsonschema.validate(document, schema)


def test_schema_rejects_unknown_keys_and_out_of_range_values(schema, document):
    typo = copy.deepcopy(document)
    typo['/**']['ros__parameters']['sync']['slop'] = 0.1
    with pytest.raises(jsonschema.ValidationError, match='Additional properties'):
        jsonschema.validate(typo, schema)
    too_high = copy.deepcopy(document)
    too_high['/**']['ros__parameters']['occupancy_threshold'] = 1.5
    with pytest.raises(jsonschema.ValidationError, match='1.5 is greater than the maximum'):
        jsonschema.validate(too_high, schema)
    between = copy.deepcopy(document)
    between['/**']['ros__parameters']['occupancy_threshold'] = -0.5
    with pytest.raises(jsonschema.ValidationError, match='-0.5 is not valid under any of the given schemas'):
        jsonschema.validate(between, schema)
    bad_choice = copy.deepcopy(document)
    bad_choice['/**']['ros__parameters']['backend'] = 'openvino'
    with pytest.raises(jsonschema.ValidationError, match='openvino'):
        jsonschema.validate(bad_choice, schema)


def test_every_schema_entry_has_type_description_and_default(schema):
    for name, entry in schema_leaves(schema).items():
        assert {'type', 'description', 'default'} <= set(entry), name
        assert len(entry['description']) > 20, name
    objects = [schema, schema['definitions']['anovox_detector']]
    objects += [e for e in schema['definitions']['anovox_detector']['properties'].values() if e['type'] == 'object']
    assert all(obj['additionalProperties'] is False for obj in objects)


def test_schema_matches_the_parameter_table(schema):
    leaves = schema_leaves(schema)
    assert set(leaves) - RCLPY_OWN == {spec.name for spec in PARAMETERS}
    json_type = {'bool': 'boolean', 'integer': 'integer', 'double': 'number', 'string': 'string'}
    for spec in PARAMETERS:
        entry = leaves[spec.name]
        expected_type = json_type.get(spec.type_name, 'array')
        assert entry['type'] == expected_type, spec.name
        default = list(spec.default) if spec.type_name == 'double_array' else spec.default
        assert entry['default'] == default, spec.name
        assert entry.get('minimum') == spec.minimum, spec.name
        assert entry.get('maximum') == spec.maximum, spec.name
        assert tuple(entry.get('enum', ())) == spec.choices, spec.name
        assert entry.get('readOnly', False) is spec.read_only, spec.name
        assert entry['description'].startswith(spec.description), spec.name
        if spec.length is not None:
            assert entry['minItems'] == entry['maxItems'] == spec.length


def test_shipped_yaml_holds_exactly_the_defaults(document):
    flat = flatten(document['/**']['ros__parameters'])
    assert set(flat) == {spec.name for spec in PARAMETERS}
    assert load_params_file(YAML_PATH) == defaults()


def test_params_file_values_must_have_the_declared_ros_type(tmp_path):
    # rclpy refuses an integer for a double parameter; the loader must too.
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    occupancy_threshold: 1\n')
    with pytest.raises(ConfigError, match='occupancy_threshold: expected double, got int'):
        load_params_file(path)


def test_node_section_overrides_the_wildcard_section(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text(
        '/**:\n  ros__parameters:\n    anomaly_threshold: 0.3\n    backend: torch\n'
        'anovox_detector:\n  ros__parameters:\n    anomaly_threshold: 0.7\n'
    )
    values = load_params_file(path)
    assert values['anomaly_threshold'] == 0.7
    assert values['backend'] == 'torch'


def test_unknown_and_invalid_values_are_all_reported_in_one_error():
    with pytest.raises(ConfigError, match=r"unknown parameter 'sync\.slop'.*sync\.policy: 'greedy' is not one of"):
        validate_values({'sync.slop': 0.1, 'sync.policy': 'greedy'})


def test_node_declares_exactly_the_schema_keys(schema):
    rclpy = pytest.importorskip('rclpy')
    from rclpy.node import Node

    from anovox_perception.ros.node import declare_detector_parameters

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=97)
    try:
        node = Node('anovox_detector', context=context)
        declared = declare_detector_parameters(node)
        names = set(node.list_parameters([], 0).names)  # every parameter, including rclpy's own
        assert names - {'start_type_description_service'} == set(schema_leaves(schema))
        leaves = schema_leaves(schema)
        for spec in PARAMETERS:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.read_only is spec.read_only, spec.name
            assert descriptor.description.startswith(spec.description), spec.name
            value = declared[spec.name]
            expected = leaves[spec.name]['default']
            assert (list(value) if isinstance(value, tuple) else value) == expected, spec.name
            if spec.type_name == 'double' and spec.minimum is not None:
                (rng,) = descriptor.floating_point_range
                assert (rng.from_value, rng.to_value) == (spec.minimum, spec.maximum)
            if spec.type_name == 'integer' and spec.minimum is not None:
                (rng,) = descriptor.integer_range
                assert (rng.from_value, rng.to_value) == (spec.minimum, spec.maximum)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
