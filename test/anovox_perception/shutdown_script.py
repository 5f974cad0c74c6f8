"""Run ``anovox-detect``'s ``main()`` and deliver stop signals at chosen moments (see test_shutdown.py).

    python shutdown_script.py SCENARIO MODEL_PATH

Prints one ``result {...}`` JSON line after ``main()`` returns and exits with its status.
Signals are raised in-process at the moment the scenario names, so the test does not
depend on timing:

- ``sigint``: SIGINT once the executor spins.
- ``sigterm_during_inference``: SIGTERM while a frame is inside the backend.
- ``sigint_twice_during_inference``: SIGINT twice while a frame is inside the backend.
- ``sigint_again_during_shutdown``: SIGINT, then SIGINT again inside ``destroy_node``.
- ``sigint_while_starting``: SIGINT while the model loads.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np

from anovox_perception.core.detector import CloudFrame
from anovox_perception.core.sync import SyncedPair
from anovox_perception.ros import node as node_module


def main() -> int:
    scenario, model_path = sys.argv[1], sys.argv[2]
    nodes: list[node_module.DetectorNode] = []
    in_inference = threading.Event()
    leave_inference = threading.Event()

    original_process = node_module.Detector.process
    original_destroy = node_module.DetectorNode.destroy_node
    original_init = node_module.Detector.__init__
    original_spin = node_module.SingleThreadedExecutor.spin
    original_add = node_module.SingleThreadedExecutor.add_node

    def slow_process(self, pair):
        in_inference.set()
        leave_inference.wait(timeout=0.5)  # a frame that takes a while in the backend
        return original_process(self, pair)

    def add_node(self, node):
        nodes.append(node)
        return original_add(self, node)

    def signal_during_inference(stop: signal.Signals, times: int) -> None:
        in_inference.wait(timeout=10)
        for _ in range(times):
            os.kill(os.getpid(), stop)

    def spin(self):
        if scenario.endswith('during_inference'):
            points = np.random.default_rng(0).uniform(-5, 5, size=(500, 4)).astype(np.float32)
            stop = signal.SIGTERM if scenario.startswith('sigterm') else signal.SIGINT
            times = 2 if scenario.startswith('sigint_twice') else 1
            threading.Thread(target=signal_during_inference, args=(stop, times), daemon=True).start()
            nodes[0]._on_pair(SyncedPair(1, CloudFrame(points, 'lidar', time.monotonic())))
        else:
            signal.raise_signal(signal.SIGINT)
        return original_spin(self)

    def destroy(self):
        if scenario == 'sigint_again_during_shutdown':
            signal.raise_signal(signal.SIGINT)
        leave_inference.set()
        return original_destroy(self)

    def loading_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if scenario == 'sigint_while_starting':
            signal.raise_signal(signal.SIGINT)

    node_module.Detector.process = slow_process
    node_module.Detector.__init__ = loading_init
    node_module.DetectorNode.destroy_node = destroy
    node_module.SingleThreadedExecutor.spin = spin
    node_module.SingleThreadedExecutor.add_node = add_node
    argv = ['anovox-detect', '--ros-args', '-p', f'model_path:={model_path}', '-p', 'backend:=onnxruntime']
    status = node_module.main(argv)
    worker = getattr(nodes[0], '_worker', None) if nodes else None
    result = {
        'status': status,
        'worker_alive': bool(worker is not None and worker.is_alive()),
        'inference_entered': in_inference.is_set(),
    }
    print('result ' + json.dumps(result), flush=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
