"""The lint that CI runs (`ruff check .` with ruff.toml), so that a violation fails here too."""

import importlib.util
import os
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_check_passes():
  assert importlib.util.find_spec("ruff"), "ruff is not installed: pip install -e '.[test]'"
  result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, f"ruff check . (ruff.toml) failed:\n{result.stdout}{result.stderr}"


def _test_command(path):
  """The README's test command (the line after "Run the lint and the tests") or .ci/run's."""
  with open(os.path.join(_ROOT, path), encoding="utf-8") as f:
    lines = [line.strip() for line in f]
  return [line for line in lines if line.startswith("python3 -m venv .venv")]


def test_ci_runs_the_readme_test_command_verbatim_and_lints_before_the_tests():
  readme = [line for line in _test_command("README.md") if "pytest" in line]
  assert len(readme) == 1, readme
  assert _test_command(os.path.join(".ci", "run")) == readme
  command = readme[0]
  assert (command.index('pip install -q -e ".[test]"') < command.index("ruff check .")
          < command.index("python -m pytest"))
