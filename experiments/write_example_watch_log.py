r"""Writes a small watch log with string ids as CSV and as Parquet, to train on with no code.

The log is the synthetic streaming generator's (`tfrs_smoe.data.synthetic`, a few hundred
accounts), rewritten with a streaming service's string ids ("acct-3f9c1a...",
"title-the-silent-heist-f01") into three folders of `--output_dir`, each a `--data_dir` for
`--dataset=watch_log` (see the README's "Your own data"):

  csv/      interactions.csv (user_id, item_id, ISO 8601 timestamp, watch_seconds,
            runtime_seconds), items.csv (genres joined by "|", a "maturity" column),
            users.csv (user_id, country, plan): the default column names.
  parquet/  interactions/part-0000{0,1}.parquet (two shards; columns account, title_id,
            integer timestamp, watch_seconds, runtime_seconds), items.parquet (title_id, title,
            genres as a list, year, runtime_seconds, maturity), users.parquet (account, country,
            plan): other column names, mapped with data.columns.
  dirty/    the csv folder with five bad interaction rows appended (a row with a missing
            field, an unparsable timestamp, NaN watch seconds, an empty account, and a
            duplicate): it fails with a message naming file, row and column, and trains with
            data.skip_bad_lines: true, which reports the skipped rows per file.

Example:
  python experiments/write_example_watch_log.py --output_dir=/tmp/my_log
  python experiments/train.py --dataset=watch_log --data_dir=/tmp/my_log/csv \
      --model_dir=/tmp/runs/mine --model=smoe_bst --export_dir=/tmp/exports/mine
"""

import datetime
import hashlib
import os
import re

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tfrs_smoe.data import synthetic

flags.DEFINE_string("output_dir", None, "Where the csv/, parquet/ and dirty/ folders go.")
flags.DEFINE_integer("num_users", 300, "Accounts in the log.")
flags.DEFINE_integer("num_titles", 400, "Titles in the catalogue.")
flags.DEFINE_integer("seed", 0, "Seed of the generator.")
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS

_COUNTRIES = np.array(["BR", "DE", "IN", "US"])
_PLANS = np.array(["basic", "standard", "premium"])
_MATURITY = np.array(["all", "teen", "adult"])
_DIRTY_ROWS = (
    "acct-broken,title-x,2024-01-01T00:00:00Z,10\n"  # 4 fields instead of 5
    "{user},{item},yesterday evening,100,3600\n"  # unparsable timestamp
    "{user},{item},2024-01-02T00:00:00Z,NaN,3600\n"  # NaN watch seconds
    ",{item},2024-01-03T00:00:00Z,100,3600\n"  # empty account
)


def _account(raw_id: str) -> str:
  return "acct-" + hashlib.sha256(raw_id.encode("utf-8")).hexdigest()[:10]


def _title_id(title: str, raw_id: str) -> str:
  return "title-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + "-" + raw_id


def _write_csv(columns, path: str) -> None:
  pa_csv.write_csv(pa.table(columns), path)


def write_example(output_dir: str, num_users: int, num_titles: int, seed: int = 0) -> dict:
  """Writes the csv/, parquet/ and dirty/ folders; returns {folder: path}."""
  log, _ = synthetic.generate_watch_log(synthetic.SyntheticConfig(
      num_users=num_users, num_titles=num_titles, seed=seed))
  events, items = log.interactions, log.items
  rng = np.random.RandomState(seed)
  accounts = np.array([_account(u) for u in np.unique(events.user_id)])
  account_of = dict(zip(np.unique(events.user_id), accounts))
  title_ids = np.array([_title_id(t, i) for t, i in zip(items.title, items.item_id)])
  title_of = dict(zip(items.item_id, title_ids))
  user = np.array([account_of[u] for u in events.user_id])
  item = np.array([title_of[i] for i in events.item_id])
  times = [datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ") for t in events.timestamp]
  watch = np.round(events.watch_seconds).astype(np.int64)
  runtime = np.round(events.runtime_seconds).astype(np.int64)
  maturity = _MATURITY[rng.randint(len(_MATURITY), size=len(items))]
  country = _COUNTRIES[rng.randint(len(_COUNTRIES), size=len(accounts))]
  plan = _PLANS[rng.randint(len(_PLANS), size=len(accounts))]
  folders = {name: os.path.join(output_dir, name) for name in ("csv", "parquet", "dirty")}
  for folder in folders.values():
    os.makedirs(folder, exist_ok=True)

  interactions = {"user_id": user, "item_id": item, "timestamp": times,
                  "watch_seconds": watch, "runtime_seconds": runtime}
  catalogue = {"item_id": title_ids, "title": items.title, "genres": items.genres,
               "year": items.year, "runtime_seconds": np.round(items.runtime_seconds),
               "maturity": maturity}
  users = {"user_id": accounts, "country": country, "plan": plan}
  for name in ("csv", "dirty"):
    _write_csv(interactions, os.path.join(folders[name], "interactions.csv"))
    _write_csv(catalogue, os.path.join(folders[name], "items.csv"))
    _write_csv(users, os.path.join(folders[name], "users.csv"))
  with open(os.path.join(folders["dirty"], "interactions.csv"), "a", encoding="utf-8") as f:
    f.write(_DIRTY_ROWS.format(user=user[0], item=item[0]))
    f.write(f"{user[0]},{item[0]},{times[0]},{watch[0]},{runtime[0]}\n")  # a duplicate

  shards = os.path.join(folders["parquet"], "interactions")
  os.makedirs(shards, exist_ok=True)
  table = pa.table({"account": user, "title_id": item,
                    "timestamp": events.timestamp.astype(np.int64),
                    "watch_seconds": events.watch_seconds, "runtime_seconds": runtime})
  half = table.num_rows // 2
  pq.write_table(table.slice(0, half), os.path.join(shards, "part-00000.parquet"))
  pq.write_table(table.slice(half), os.path.join(shards, "part-00001.parquet"))
  pq.write_table(pa.table({
      "title_id": title_ids, "title": items.title,
      "genres": pa.array([g.split("|") if g else [] for g in items.genres],
                         pa.list_(pa.string())),
      "year": items.year, "runtime_seconds": items.runtime_seconds, "maturity": maturity}),
                 os.path.join(folders["parquet"], "items.parquet"))
  pq.write_table(pa.table({"account": accounts, "country": country, "plan": plan}),
                 os.path.join(folders["parquet"], "users.parquet"))
  return folders


def main(argv):
  del argv
  folders = write_example(FLAGS.output_dir, FLAGS.num_users, FLAGS.num_titles, FLAGS.seed)
  print(f"Wrote a watch log of {FLAGS.num_users} accounts and {FLAGS.num_titles} titles:")
  for folder in folders.values():
    print(f"  {folder}/: {', '.join(sorted(os.listdir(folder)))}")
  print("Parquet column mapping: --params_override='data: {columns: {user_id: account, "
        "item_id: title_id}}'")


if __name__ == "__main__":
  app.run(main)
