"""Machine description printed and stored with every benchmark result."""

import json

from tfrs_smoe import reporting


def report(title: str, columns, rows, output: str = "", extra=None) -> None:
  """Prints `title` with the machine, a fixed-width table, and writes JSON when `output` is set.

  Args:
    title: what was measured; the machine description is appended.
    columns: (header, row key, format spec) per column, e.g. ("users/s", "users_per_second",
      ".0f"); the first column is left-aligned.
    rows: dicts with the keys of `columns`.
    output: JSON path ("" = none), written as {"machine", "results", **extra}.
    extra: more JSON fields, e.g. the flags.
  """
  info = reporting.machine_info()
  print(f"{title}; {reporting.machine_description()}")
  widths = [max([len(header), 8] + [len(f"{row[key]:{spec}}") for row in rows]) + 1
            for header, key, spec in columns]
  align = ["<"] + [">"] * (len(columns) - 1)
  print("".join(f"{header:{a}{w}}" for (header, _, _), a, w in zip(columns, align, widths)))
  for row in rows:
    print("".join(f"{row[key]:{a}{w}{spec}}" for (_, key, spec), a, w
                  in zip(columns, align, widths)))
  if output:
    with open(output, "w", encoding="utf-8") as f:
      json.dump({"machine": info, "results": rows, **(extra or {})}, f, indent=2)
