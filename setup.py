"""ament_python package: builds with colcon on a ROS 2 install, installs with pip elsewhere."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'anovox_perception'

# The ROS 2 (Kilted) Python wheels on PyPI, for machines without a ROS 2 install.
ROS_WHEELS = [
    'ros-rclpy',
    'ros-rmw-fastrtps-cpp',  # rclpy cannot import without an RMW implementation
    'ros-std-msgs',
    'ros-sensor-msgs',
    'ros-geometry-msgs',
    'ros-nav-msgs',
    'ros-visualization-msgs',
    'ros-diagnostic-msgs',
]

TEST_REQUIRES = ['pytest', 'pytest-timeout', 'hypothesis', 'jsonschema']

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (
            f'share/{PACKAGE}/config',
            glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.json') + glob('config/*.xml'),
        ),
        (f'share/{PACKAGE}/models', glob('models/*.onnx') + glob('models/*.json') + glob('models/*.md')),
    ],
    python_requires='>=3.10',
    install_requires=['numpy>=1.24', 'pyyaml', 'pillow', 'rosbags>=0.10'],
    extras_require={
        'ros': ROS_WHEELS,
        'runtime': ['onnxruntime>=1.17'],
        # NVIDIA machines: TensorRT 10 builds the engine, cuda-python holds its buffers and stream.
        'tensorrt': ['tensorrt>=10,<11', 'cuda-python>=12'],
        'train': [
            'torch==2.14.1',
            'torchvision==0.29.1',
            'onnx>=1.15',
            'onnxruntime>=1.17',
            'tqdm',
            'matplotlib',
        ],
        # `colcon test` runs pytest only when the package names it as a test requirement.
        'test': TEST_REQUIRES,
        'dev': [*TEST_REQUIRES, 'ruff', 'colcon-common-extensions'],
    },
    tests_require=TEST_REQUIRES,
    zip_safe=True,
    maintainer='anovox_perception maintainers',
    maintainer_email='maintainers@anovox-perception.invalid',
    description='Online camera+LiDAR road-anomaly detection for ROS 2 (AnoVox).',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'anovox-detect = anovox_perception.ros.node:main',
            'anovox-replay = anovox_perception.tools.replay:main',
            'anovox-make-bag = anovox_training.data.to_bag:main',
            'anovox-build-engine = anovox_perception.backends.build_engine:main',
            'anovox-bench = anovox_perception.tools.bench:main',
            'anovox-real-check = anovox_training.evaluate.real_check:main',
        ],
    },
)
