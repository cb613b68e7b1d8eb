"""The experiment binaries, shipped with the package.

Each of train, evaluate, export and sweep has `main(argv)` (absl's main, after flag parsing) and
`run()` (the console-script entry: `tfrs-smoe-train`, `tfrs-smoe-evaluate`, `tfrs-smoe-export`,
`tfrs-smoe-sweep`), and runs as `python -m tfrs_smoe.binaries.<name>`; `experiments/<name>.py`
are thin wrappers over them. `quiet` keeps TensorFlow's import noise out of their output.

This package's `__init__` imports nothing, so that `tfrs_smoe/__init__.py` can import `quiet`
before TensorFlow.
"""
