"""The binaries as a user starts them: the wrappers, `python -m`, console scripts; their --help."""

import ast
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CONSOLE_SCRIPTS = {"tfrs-smoe-train": "tfrs_smoe.binaries.train:run",
                    "tfrs-smoe-evaluate": "tfrs_smoe.binaries.evaluate:run",
                    "tfrs-smoe-export": "tfrs_smoe.binaries.export:run",
                    "tfrs-smoe-sweep": "tfrs_smoe.binaries.sweep:run",
                    "tfrs-smoe-prepare": "tfrs_smoe.binaries.prepare:run"}


def _run(*command):
  """Runs a binary as a user would: TensorFlow's log level left unset."""
  env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env,
                        timeout=300, check=False, cwd=_ROOT)


@pytest.fixture(scope="module", name="train_help")
def _train_help():
  return _run(os.path.join(_ROOT, "experiments", "train.py"), "--help")


def test_help_lists_the_shared_flags_and_the_binarys_own(train_help):
  # --help shows the main module's key flags only; the shared ones used to need --helpfull.
  assert train_help.stdout.startswith("Trains a model, evaluates it"), train_help.stdout[:500]
  for flag in ("--model_dir", "--dataset", "--data_dir", "--model:", "--params_override",
               "--seed", "--export_dir", "--strategy", "--[no]overwrite", "-v,--verbosity"):
    assert flag in train_help.stdout, flag


def test_the_binaries_print_no_tensorflow_import_noise(train_help):
  for noise in ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "oneDNN"):
    assert noise not in train_help.stderr, train_help.stderr[-2000:]


def test_python_m_runs_the_packaged_binary():
  result = _run("-m", "tfrs_smoe.binaries.evaluate", "--help")
  assert result.stdout.startswith("Evaluates a trained model"), result.stderr[-2000:]
  for flag in ("--model_dir", "--split", "--params_override", "--tfds_data_dir"):
    assert flag in result.stdout, flag


def test_a_console_script_as_pip_writes_it_shows_the_binarys_help(tmp_path):
  # pip's console-script template for `tfrs-smoe-sweep = tfrs_smoe.binaries.sweep:run`.
  script = tmp_path / "tfrs-smoe-sweep"
  script.write_text("import re\nimport sys\nfrom tfrs_smoe.binaries.sweep import run\n"
                    "if __name__ == '__main__':\n"
                    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                    "    sys.exit(run())\n", encoding="utf-8")
  result = _run(str(script), "--help")
  assert result.stdout.startswith("One sweep over a registered variant set"), (
      result.stdout[:300] + result.stderr[-2000:])
  for flag in ("--variant_set", "--variants", "--seeds", "--params_override", "--resume"):
    assert flag in result.stdout, flag


def test_setup_declares_a_console_script_for_every_binary():
  with open(os.path.join(_ROOT, "setup.py"), encoding="utf-8") as f:
    call = next(node for node in ast.walk(ast.parse(f.read())) if isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "setup")
  entry_points = ast.literal_eval(next(k.value for k in call.keywords
                                       if k.arg == "entry_points"))
  declared = dict(line.replace(" ", "").split("=") for line in entry_points["console_scripts"])
  assert declared == _CONSOLE_SCRIPTS
  for target in declared.values():
    module, function = target.split(":")
    path = os.path.join(_ROOT, *module.split(".")) + ".py"
    with open(path, encoding="utf-8") as f:
      functions = {node.name for node in ast.parse(f.read()).body
                   if isinstance(node, ast.FunctionDef)}
    assert {function, "main"} <= functions, path
