"""MovieLens as a TFDS data set, prepared offline from local files, and its loader.

`MovieLens` reads the GroupLens files (see `tfrs_smoe.data.movielens_files`) from
`download_config.manual_dir` and writes one record per rating in the layout of
`tfrs_smoe.data.records`, with `rating` and, for "100k" and "1m", the user features. Nothing is
downloaded: the files must already be on disk.

Engagement is the proxy rating / 5; ratings <= `abandonment_rating` stars (2 by default) are
abandonments, so the data set's `abandonment_threshold` is 2 / 5 = 0.4.

Prepared data is cached in `data_dir` by config name and version, as TFDS does:
`data_dir/movielens/<config>/<version>`. So that the cache is never reused wrongly:
  * `skip_bad_lines=True` configs are named "<format>-skip_bad_lines" (`movielens_config`), apart
    from the strict ones;
  * the prepared data records the SHA-256 of the files it came from (metadata "source_files");
    `load_movielens` prepares again when the files in `manual_dir` differ;
  * a version that reads the files differently (1.1.0: duplicate ratings dropped, UTF-8 item
    files decoded as UTF-8) is prepared into a folder of its own.

The builder is not registered with TFDS by name: "movielens" is also the name of the official
TFDS MovieLens builder (whose "*-ratings" configs download from the web), and registering both
in one process fails. Construct it directly, or use `load_movielens`.

Metadata written during generation (the skipped line counts, the number of duplicate rating
rows dropped and the source digests) is saved to
metadata.json beside dataset_info.json and read back by a builder made later on the same
`data_dir`, through `builder.info.metadata`.
"""

import dataclasses
import os
from typing import Optional

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds

from tfrs_smoe.data import movielens_files
from tfrs_smoe.data import records
from tfrs_smoe.data import schema

# The user features of the formats with a user file. Ages are years in "100k" and the age-group
# codes of the README in "1m"; occupations are names in "100k" and codes in "1m".
_USER_FIELDS = {"age": tf.int32, "gender": tf.string, "occupation": tf.string,
                "zip": tf.string}
_FORMATS_WITH_USERS = ("100k", "1m")
_SKIP_BAD_LINES_SUFFIX = "-skip_bad_lines"

_CITATION = """
@article{harper2015movielens,
  title={The MovieLens Datasets: History and Context},
  author={Harper, F. Maxwell and Konstan, Joseph A.},
  journal={ACM Transactions on Interactive Intelligent Systems (TiiS)},
  volume={5},
  number={4},
  pages={19:1--19:19},
  year={2015},
  doi={10.1145/2827872}
}
"""


@dataclasses.dataclass(eq=False)
class MovieLensConfig(tfds.core.BuilderConfig):
  """Which MovieLens files to read, and how.

  Attributes:
    format: "100k", "1m" or "latest-small" (keys of `movielens_files.FORMATS`), by default the
      default config's.
    skip_bad_lines: skip and count malformed lines instead of failing.
    abandonment_rating: ratings <= this are abandonments; the metadata's abandonment_threshold
      is abandonment_rating / 5.

  Example:
    >>> config = MovieLensConfig(name="1m-strict-positives", format="1m", abandonment_rating=3.0)
    >>> builder = MovieLens(config=config, data_dir="tfds")
    >>> builder.builder_config.name, builder.builder_config.format
    ('1m-strict-positives', '1m')
  """

  format: str = "latest-small"
  skip_bad_lines: bool = False
  abandonment_rating: float = movielens_files.DEFAULT_ABANDONMENT_RATING

  def __post_init__(self):
    if self.format not in movielens_files.FORMATS:
      raise ValueError(f"Unknown MovieLens format {self.format!r}; choose from "
                       f"{sorted(movielens_files.FORMATS)}.")
    if not 0.0 <= self.abandonment_rating < movielens_files.MAX_RATING:
      raise ValueError(f"abandonment_rating {self.abandonment_rating} is not in "
                       f"[0, {movielens_files.MAX_RATING}).")


def movielens_config(format: str,  # pylint: disable=redefined-builtin
                     skip_bad_lines: bool = False) -> MovieLensConfig:
  """The builder config for a format: the predefined one, or its skip_bad_lines variant.

  The variant has its own name, "<format>-skip_bad_lines", so that its prepared data never
  stands in for the strict config's (whose preparation fails on a malformed line).

  Args:
    format: "100k", "1m" or "latest-small".
    skip_bad_lines: whether malformed lines are skipped.

  Returns:
    The config to pass as `MovieLens(config=...)`.

  Example:
    >>> movielens_config("1m", skip_bad_lines=True).name
    '1m-skip_bad_lines'
  """
  strict = MovieLens.builder_configs.get(format)
  if strict is None:
    raise ValueError(f"Unknown MovieLens format {format!r}; choose from "
                     f"{sorted(movielens_files.FORMATS)}.")
  if not skip_bad_lines:
    return strict
  return dataclasses.replace(strict, name=format + _SKIP_BAD_LINES_SUFFIX, skip_bad_lines=True,
                             description=strict.description + " Malformed lines are skipped.")


class MovieLens(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """MovieLens ratings from local GroupLens files, one record per rating.

  Example (tiny files in the 100k format):
    >>> os.makedirs("ml-100k", exist_ok=True)
    >>> drama = "|".join("1" if genre == 8 else "0" for genre in range(19))
    >>> for name, text in (("u.item", f"10|Heat (1995)|01-Jan-1995||http://x|{drama}\\n"),
    ...                    ("u.data", "1\\t10\\t5\\t881250949\\n2\\t10\\t2\\t881250950\\n"),
    ...                    ("u.user", "1|24|M|technician|85711\\n2|53|F|other|94043\\n")):
    ...   with open(os.path.join("ml-100k", name), "w", encoding="latin-1") as f:
    ...     _ = f.write(text)
    >>> builder = MovieLens(config="100k", data_dir="tfds")
    >>> builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
    ...     manual_dir="ml-100k", try_download_gcs=False))
    Downloading and preparing dataset ... to tfds/movielens/100k/1.1.0...
    Dataset movielens downloaded and prepared to tfds/movielens/100k/1.1.0. ...
    >>> builder.info.metadata["skipped_lines"]  # u.genre too when the folder has it.
    {'u.item': 0, 'u.user': 0, 'u.data': 0}
  """

  name = "movielens"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Ratings of the 100k, 1m and latest-small files, read offline.",
      "1.1.0": "Duplicate (user, item, timestamp) ratings dropped and counted "
               "(metadata duplicate_rows); 100k and 1m files that are valid UTF-8 decoded as "
               "UTF-8, not latin-1.",
  }
  BUILDER_CONFIGS = [
      MovieLensConfig(name=format_name, format=format_name,
                      description=f"MovieLens {format_name} ({', '.join(files)}).")
      for format_name, files in movielens_files.FORMATS.items()
  ]
  DEFAULT_CONFIG_NAME = "latest-small"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the archive of the format from https://grouplens.org/datasets/movielens/ and extract
  it, then pass the folder that directly holds its files as
  `download_config=tfds.download.DownloadConfig(manual_dir=...)`:
    100k:          ml-100k.zip -> u.data, u.item, u.user (u.genre is read when present)
    1m:            ml-1m.zip -> ratings.dat, movies.dat, users.dat
    latest-small:  ml-latest-small.zip -> ratings.csv, movies.csv
  """

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    user_fields = _USER_FIELDS if config.format in _FORMATS_WITH_USERS else None
    return tfds.core.DatasetInfo(
        builder=self,
        description=("MovieLens ratings with engagement = rating / 5 and item (and user) "
                     "metadata in every record."),
        features=records.interaction_features(optional_fields=("rating",),
                                              user_fields=user_fields),
        homepage="https://grouplens.org/datasets/movielens/",
        citation=_CITATION,
        # skipped_lines, duplicate_rows and source_files are filled in while generating (file
        # name -> count, count, file name -> SHA-256); empty means the data is not prepared yet.
        metadata=tfds.core.MetadataDict(
            abandonment_threshold=config.abandonment_rating / movielens_files.MAX_RATING,
            max_rating=movielens_files.MAX_RATING,
            skipped_lines={},
            duplicate_rows=0,
            source_files={}),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    directory = os.fspath(dl_manager.manual_dir)
    # The 100k records declare user features, so the user file the parser treats as optional is
    # required here rather than filled with made-up values.
    if config.format == "100k" and not os.path.isfile(os.path.join(directory, "u.user")):
      raise schema.DataError(
          f"MovieLens '100k' files missing from {directory}: u.user (the movielens/100k data "
          "set has user features; ml-100k.zip contains u.user).")
    result = movielens_files.read_movielens(directory, config.format, config.skip_bad_lines)
    # Set before the DatasetInfo is written, so they are saved to metadata.json with the data.
    self.info.metadata["skipped_lines"] = result.skipped
    self.info.metadata["duplicate_rows"] = result.duplicate_rows
    self.info.metadata["source_files"] = movielens_files.source_fingerprint(directory,
                                                                            config.format)
    return {"train": self._generate_examples(result.columns)}

  def _generate_examples(self, columns):
    names = list(columns)
    for index in range(len(columns["user_id"])):
      yield index, {name: columns[name][index] for name in names}


def load_movielens(manual_dir: str,
                   format: str = "latest-small",  # pylint: disable=redefined-builtin
                   data_dir: Optional[str] = None,
                   skip_bad_lines: bool = False,
                   abandonment_rating: float = movielens_files.DEFAULT_ABANDONMENT_RATING
                   ) -> schema.WatchLog:
  """Prepares MovieLens from local files (offline) and loads it as a WatchLog.

  Prepared data in `data_dir` is reused when it was made from the same files (by SHA-256) and
  prepared again otherwise, so the files in `manual_dir` must stay there.

  Args:
    manual_dir: the folder holding the format's files.
    format: "100k", "1m" or "latest-small".
    data_dir: the TFDS data folder; None for the TFDS default (~/tensorflow_datasets).
    skip_bad_lines: skip, count and report malformed lines instead of raising; the counts are
      in the builder's metadata["skipped_lines"]. Duplicate rating rows are always dropped
      (metadata["duplicate_rows"]); both are reported again when prepared data is reused.
    abandonment_rating: ratings <= this are abandonments (threshold abandonment_rating / 5).

  Returns:
    The log named "movielens/<format>", with user features for "100k" and "1m".

  Raises:
    schema.DataError: a file is missing or a line is malformed (unless skipped).

  Example (tiny files in the latest-small format):
    >>> os.makedirs("ml-latest-small", exist_ok=True)
    >>> with open("ml-latest-small/movies.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("movieId,title,genres\\n1,Toy Story (1995),Adventure|Animation\\n")
    >>> with open("ml-latest-small/ratings.csv", "w", encoding="utf-8") as f:
    ...   _ = f.write("userId,movieId,rating,timestamp\\n1,1,5.0,964982703\\n2,1,2.5,964983000\\n")
    >>> log = load_movielens("ml-latest-small", data_dir="tfds")
    Downloading and preparing dataset ... to tfds/movielens/latest-small/1.1.0...
    Dataset movielens downloaded and prepared to tfds/movielens/latest-small/1.1.0. ...
    >>> log.abandonment_threshold, len(log.interactions.user_id)
    (0.4, 2)
  """
  if not 0.0 <= abandonment_rating < movielens_files.MAX_RATING:
    raise ValueError(f"abandonment_rating {abandonment_rating} is not in "
                     f"[0, {movielens_files.MAX_RATING}).")
  config = movielens_config(format, skip_bad_lines)
  builder = MovieLens(config=config, data_dir=data_dir)
  source_files = movielens_files.source_fingerprint(manual_dir, format)
  mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  reused = builder.is_prepared()
  if reused and builder.info.metadata.get("source_files") != source_files:
    logging.warning("%s was prepared from other files than those in %s; preparing it again.",
                    builder.data_path, manual_dir)
    mode = tfds.download.GenerateMode.FORCE_REDOWNLOAD
    reused = False
  if reused:
    # Preparing warned about them; say it again, as the watch_log reader does.
    skipped = builder.info.metadata.get("skipped_lines", {})
    duplicates = builder.info.metadata.get("duplicate_rows", 0)
    if sum(skipped.values()) or duplicates:
      logging.warning("%s was prepared with malformed lines skipped %s and %d duplicate rating "
                      "row(s) dropped.", builder.data_path, skipped, duplicates)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir), download_mode=mode, try_download_gcs=False))
  columns = records.read_columns(builder, "train")
  return records.watch_log_from_columns(f"movielens/{format}", columns,
                                        abandonment_rating / movielens_files.MAX_RATING)
