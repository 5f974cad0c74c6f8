"""config/detector.yaml and config/detector.schema.json, written from the parameter table.

    python -m anovox_perception.tools.parameter_files            # rewrite both files in config/
    python -m anovox_perception.tools.parameter_files --check    # exit 1 when either is stale

Both files are generated, never edited by hand: a parameter's default, range,
choices and description live only in `parameters.PARAMETERS`, so the shipped
parameter file, its JSON schema and what the node declares cannot disagree
(a test compares the committed files with what this module writes).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from anovox_perception.core.parameters import GROUPS, NODE_NAME, PARAMETERS, ParamSpec, nest

__all__ = ['CONFIG_FILES', 'render_schema', 'render_yaml', 'stale_files', 'write_config']

YAML_NAME = 'detector.yaml'
SCHEMA_NAME = 'detector.schema.json'
CONFIG_FILES = (YAML_NAME, SCHEMA_NAME)
# The source checkout's config folder, where the committed files live.
_CONFIG_DIR = Path(__file__).resolve().parents[2] / 'config'
_YAML_WIDTH = 110  # comment lines, indentation included
_VALUE_COLUMN = 36  # value lines are padded to it before their range comment
_READ_ONLY_NOTE = ' Read-only: changing it needs a restart.'
# Declared by rclpy on every node; a parameter file may set it, so the schema allows it.
_USE_SIM_TIME = {
    'type': 'boolean',
    'description': 'Use the /clock topic as the node clock (declared by rclpy itself).',
    'default': False,
}
_YAML_HEADER = f"""\
# Parameters of the {NODE_NAME} node (anovox-detect / launch/detect.launch.py), with their defaults.
# Schema: {SCHEMA_NAME} beside this file. "(restart)" = read-only at run time.
# Generated from anovox_perception/core/parameters.py by python -m anovox_perception.tools.parameter_files:
# change a default, range or description there; copy this file to set other values.
"""


def _tree() -> dict[str, Any]:
    """Parameter specs nested by the parts of their dotted names, in table order."""
    return nest({spec.name: spec for spec in PARAMETERS})


# ------------------------------------------------------------------ YAML
def _scalar(value: Any) -> str:
    """``value`` as one YAML flow scalar that reads back as the same value and type."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).split('\n')[0]


def _number(value: float) -> str:
    return f'{value:g}'.replace('e+0', 'e').replace('e+', 'e').replace('e-0', 'e-')


def _constraints(spec: ParamSpec) -> str:
    """Range or choices, and the restart note, of a parameter (the comment on its value line)."""
    parts = []
    if spec.minimum is not None and spec.maximum is not None:
        bounds = f'[{_number(spec.minimum)}, {_number(spec.maximum)}]'
        if spec.excluded is not None:
            bounds = f'{_number(spec.excluded[0])} or [{_number(spec.excluded[1])}, {_number(spec.maximum)}]'
        parts.append(bounds)
    if spec.choices:
        parts.append(' | '.join(spec.choices))
    if spec.length is not None:
        parts.append(f'{spec.length} values')
    if spec.read_only:
        parts.append('(restart)')
    return ' '.join(parts)


def _comment(text: str, indent: str) -> list[str]:
    prefix = f'{indent}# '
    return textwrap.wrap(
        text, width=_YAML_WIDTH, initial_indent=prefix, subsequent_indent=prefix, break_on_hyphens=False
    )


def _yaml_value(spec: ParamSpec, indent: str) -> list[str]:
    """The value's lines: the first goes after ``key: ``, the others are indented under it."""
    if spec.type_name != 'double_array':
        return [_scalar(spec.default)]
    # Four values a line, aligned under the first: the arrays are row-major 4x4 matrices.
    values = [_scalar(v) for v in spec.default]
    rows = [', '.join(values[i : i + 4]) for i in range(0, len(values), 4)] or ['']
    pad = indent + ' ' * (len(spec.name.split('.')[-1]) + len(': ['))
    lines = [f'[{rows[0]}', *(f'{pad}{row}' for row in rows[1:])]
    return [f'{line},' for line in lines[:-1]] + [f'{lines[-1]}]']


def _yaml_lines(tree: dict[str, Any], depth: int) -> list[str]:
    indent = '  ' * depth
    lines: list[str] = []
    for key, item in tree.items():
        if isinstance(item, dict):
            lines.append(f'{indent}{key}:')
            lines.extend(_yaml_lines(item, depth + 1))
            continue
        lines.extend(_comment(item.description, indent))
        if item.note:
            lines.extend(_comment(item.note, indent))
        value = _yaml_value(item, indent)
        value[0] = f'{indent}{key}: {value[0]}'
        constraints = _constraints(item)
        if constraints:
            value[-1] = f'{value[-1].ljust(_VALUE_COLUMN)}  # {constraints}'
        lines.extend(value)
    return lines


def render_yaml() -> str:
    """The text of config/detector.yaml: every parameter at its default, described in comments."""
    body = ['/**:', '  ros__parameters:', *_yaml_lines(_tree(), 2)]
    return _YAML_HEADER + '\n'.join(body) + '\n'


# ---------------------------------------------------------------- schema
def _leaf_schema(spec: ParamSpec) -> dict[str, Any]:
    json_type = {'bool': 'boolean', 'integer': 'integer', 'double': 'number', 'string': 'string'}
    entry: dict[str, Any] = {'type': json_type.get(spec.type_name, 'array')}
    if spec.type_name == 'double_array':
        entry['items'] = {'type': 'number'}
        if spec.length is not None:
            entry['minItems'] = entry['maxItems'] = spec.length
    entry['description'] = spec.description + (_READ_ONLY_NOTE if spec.read_only else '')
    entry['default'] = list(spec.default) if spec.type_name == 'double_array' else spec.default
    if spec.minimum is not None:
        entry['minimum'] = spec.minimum
    if spec.maximum is not None:
        entry['maximum'] = spec.maximum
    if spec.excluded is not None:
        # The sentinel itself, or a value above the excluded interval.
        entry['anyOf'] = [{'const': spec.excluded[0]}, {'minimum': spec.excluded[1], 'maximum': spec.maximum}]
    if spec.choices:
        entry['enum'] = list(spec.choices)
    if spec.read_only:
        entry['readOnly'] = True
    return entry


def _object_schema(tree: dict[str, Any], description: str | None) -> dict[str, Any]:
    properties = {}
    for key, item in tree.items():
        if isinstance(item, dict):
            properties[key] = _object_schema(item, GROUPS[key])
        else:
            properties[key] = _leaf_schema(item)
    out: dict[str, Any] = {'type': 'object'}
    if description is not None:
        out['description'] = description
    out['properties'] = properties
    out['required'] = list(tree)
    out['additionalProperties'] = False
    return out


def render_schema() -> str:
    """The text of config/detector.schema.json (JSON Schema draft-07 of the parameter file)."""
    node = _object_schema(_tree(), None)
    node['properties']['use_sim_time'] = _USE_SIM_TIME
    schema = {
        '$schema': 'http://json-schema.org/draft-07/schema#',
        'title': f'Parameters for the {NODE_NAME} node',
        'description': 'config/detector.yaml: camera+LiDAR road-anomaly detector (anovox_perception). '
        'Units are in each description.',
        'type': 'object',
        'definitions': {NODE_NAME: node},
        'properties': {
            '/**': {
                'type': 'object',
                'properties': {'ros__parameters': {'$ref': f'#/definitions/{NODE_NAME}'}},
                'required': ['ros__parameters'],
                'additionalProperties': False,
            }
        },
        'required': ['/**'],
        'additionalProperties': False,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + '\n'


# ------------------------------------------------------------------ files
def _rendered() -> dict[str, str]:
    return {YAML_NAME: render_yaml(), SCHEMA_NAME: render_schema()}


def write_config(config_dir: str | Path = _CONFIG_DIR) -> list[Path]:
    """Write both files into ``config_dir``; returns their paths."""
    config_dir = Path(config_dir)
    paths = []
    for name, text in _rendered().items():
        path = config_dir / name
        path.write_text(text, encoding='utf-8')
        paths.append(path)
    return paths


def stale_files(config_dir: str | Path = _CONFIG_DIR) -> list[Path]:
    """The files in ``config_dir`` that are missing or differ from what `write_config` writes."""
    config_dir = Path(config_dir)
    stale = []
    for name, text in _rendered().items():
        path = config_dir / name
        try:
            current = path.read_text(encoding='utf-8')
        except OSError:
            current = None
        if current != text:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (1: ``--check`` found stale files)."""
    parser = argparse.ArgumentParser(
        prog='python -m anovox_perception.tools.parameter_files',
        description=(
            f'Write {YAML_NAME} and {SCHEMA_NAME} from the parameter table (anovox_perception/core/parameters.py).'
        ),
    )
    parser.add_argument(
        '--config-dir', type=Path, default=_CONFIG_DIR, help='folder of the two files (default: %(default)s)'
    )
    parser.add_argument('--check', action='store_true', help='write nothing; exit 1 when a file is missing or stale')
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.config_dir)
        for path in stale:
            print(f'{path}: stale; regenerate with python -m anovox_perception.tools.parameter_files', file=sys.stderr)
        return 1 if stale else 0
    if not args.config_dir.is_dir():
        parser.error(f'--config-dir {args.config_dir}: not a folder')
    for path in write_config(args.config_dir):
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
