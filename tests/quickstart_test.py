"""docs/quickstart.md runs as written: its ```python blocks, in order, in one namespace.

The blocks run in a fresh working directory (their relative paths, runs/ and my_log/, land
there), after the page's shell command that writes the example watch log. A change of the API
that breaks the page breaks this test.
"""

import os
import re
import shlex
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_QUICKSTART = os.path.join(_ROOT, "docs", "quickstart.md")


def _page() -> str:
  with open(_QUICKSTART, encoding="utf-8") as f:
    return f.read()


def _python_blocks(text: str) -> list:
  return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def _example_log_command(text: str) -> list:
  """The page's `python experiments/write_example_watch_log.py ...` line, as an argv."""
  lines = [line for line in text.splitlines()
           if line.startswith("python experiments/write_example_watch_log.py")]
  assert len(lines) == 1, lines
  argv = shlex.split(lines[0])
  return [sys.executable, os.path.join(_ROOT, argv[1]), *argv[2:]]


def test_the_page_has_the_blocks_this_test_runs():
  blocks = _python_blocks(_page())
  assert len(blocks) == 2
  assert "run.fit(split" in blocks[0] and "recommender.recommend(" in blocks[0]
  assert "dataset: watch_log" in blocks[1]


def test_quickstart_runs_and_prints_metrics_and_recommendations(tmp_path, monkeypatch, capsys):
  text = _page()
  load_fit_evaluate_recommend, own_log = _python_blocks(text)
  monkeypatch.chdir(tmp_path)
  # The shell step that block 2 needs, beside block 1 (which does not read its folder).
  example_log = subprocess.Popen(_example_log_command(text), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
  try:
    namespace = {"__name__": "quickstart"}
    exec(compile(load_fit_evaluate_recommend, f"{_QUICKSTART} (block 1)", "exec"), namespace)
    printed = capsys.readouterr().out
    # One line per epoch, the metrics table of both protocols, then the 5 recommendations.
    assert re.search(r"^epoch 2/2\b.*NDCG@10", printed, re.MULTILINE), printed
    for protocol in ("full_ranking", "phns_test"):
      assert re.search(rf"^{protocol}( +[01]\.\d{{4}}){{7}} +300$", printed, re.MULTILINE), printed
    recommended = re.findall(r"^ *-?\d+\.\d{3}  (.+)$", printed, re.MULTILINE)
    titles = namespace["titles"]
    assert len(recommended) == 5 and set(recommended) <= set(titles.values()), printed
    # The recommendations are real items, none of them from the history they were asked for.
    top = [item.decode() for item in namespace["top"]["item_ids"][0].numpy()]
    assert len(set(top)) == 5 and not set(top) & set(namespace["history"])
    assert (tmp_path / "runs" / "quickstart" / "params.yaml").is_file()
    output, _ = example_log.communicate(timeout=120)
  finally:
    if example_log.poll() is None:  # Block 1 failed: stop the script too.
      example_log.kill()
      example_log.wait()
  assert example_log.returncode == 0, output
  exec(compile(own_log, f"{_QUICKSTART} (block 2)", "exec"), namespace)
  printed = capsys.readouterr().out
  assert re.search(r"^300 users, \d+ items, \d+ training interactions", printed,
                   re.MULTILINE), printed
  assert namespace["split"].item_vocabulary.ids[0].startswith("title-")
