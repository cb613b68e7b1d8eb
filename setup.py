"""Installs tfrs_smoe: engagement-aware sequential recommendation on TensorFlow Recommenders."""

import setuptools

setuptools.setup(
    name="tfrs_smoe",
    version="0.1.0",
    description=("S-MoE-BST and sampling-bias-corrected two-tower retrieval on TensorFlow "
                 "Recommenders, with engagement-aware data pipelines and evaluation."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfrs_smoe", "tfrs_smoe.*"]),
    license="Apache-2.0",
    python_requires=">=3.9",
    install_requires=[
        "tensorflow==2.21.*",
        "tf-keras==2.21.*",
        "tensorflow-recommenders==0.7.7",
        "tensorflow-datasets>=4.9",
        "absl-py>=1.0",
        "tensorboard>=2.16",
        "importlib_resources>=5.0",
        "numpy>=1.23",
        "PyYAML>=6.0",
        # The export writes TF Serving's warm-up requests (PredictionLog protos).
        "tensorflow-serving-api==2.21.*",
        # Watch logs are read as Arrow record batches (CSV, TSV, Parquet).
        "pyarrow>=14",
        # Paired bootstrap intervals of model comparisons (scipy.stats.bootstrap).
        "scipy>=1.9",
        # Out-of-core preparation of large logs (tfrs_smoe/data/preparation/, tfrs-smoe-prepare).
        "apache-beam>=2.60",
    ],
    # The experiment binaries (tfrs_smoe/binaries/; experiments/*.py wrap them).
    entry_points={
        "console_scripts": [
            "tfrs-smoe-train = tfrs_smoe.binaries.train:run",
            "tfrs-smoe-evaluate = tfrs_smoe.binaries.evaluate:run",
            "tfrs-smoe-export = tfrs_smoe.binaries.export:run",
            "tfrs-smoe-sweep = tfrs_smoe.binaries.sweep:run",
            "tfrs-smoe-prepare = tfrs_smoe.binaries.prepare:run",
        ],
    },
    extras_require={
        # ruff: the lint (ruff.toml) that .ci/run and tests/lint_test.py run; pinned to a minor
        # release, since ruff's minor releases add rules to the selected families.
        "test": ["pytest>=7", "pytest-xdist>=3", "matplotlib>=3.5", "ruff==0.17.*"],
        "plots": ["matplotlib>=3.5"],
    },
)
