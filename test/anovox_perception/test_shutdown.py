"""anovox-detect stops cleanly on SIGINT / SIGTERM: once, twice, while starting, during inference, during shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip('rclpy')

from fake_onnx_model import write_fake_model
from ros_processes import ros_env

pytestmark = pytest.mark.ros

SCRIPT = Path(__file__).with_name('shutdown_script.py')


@pytest.fixture(scope='module')
def model_path(tmp_path_factory) -> Path:
    return write_fake_model(tmp_path_factory.mktemp('model') / 'fake_tiny.onnx')


@pytest.mark.parametrize(
    'scenario',
    [
        'sigint',
        'sigterm_during_inference',
        'sigint_twice_during_inference',
        'sigint_again_during_shutdown',
        'sigint_while_starting',
    ],
)
def test_stop_signals_end_the_node_with_status_0_and_no_traceback(scenario, model_path):
    env = {**ros_env(), 'PYTHONPATH': str(SCRIPT.parent)}
    # The timeout only guards against a hang; the scenario's signals are raised in-process.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), scenario, str(model_path)], env=env, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output
    (line,) = [x for x in done.stdout.splitlines() if x.startswith('result ')]
    result = json.loads(line.removeprefix('result '))
    assert result['status'] == 0
    assert not result['worker_alive'], 'the inference worker was joined'
    assert result['inference_entered'] == scenario.endswith('during_inference')


def test_two_real_sigints_in_quick_succession_end_the_process_with_status_0(model_path):
    # The second signal lands while the node shuts down or Python tears down (the process
    # used to die of it with -2 there); either way the exit status must be 0.
    cmd = [sys.executable, '-m', 'anovox_perception.ros.node', '--ros-args', '-p', f'model_path:={model_path}']
    proc = subprocess.Popen(cmd, env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "model 'fake_tiny'" in line:
                break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.03)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        output = ''.join(lines) + rest
        assert proc.returncode == 0, output
        assert 'Traceback' not in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
