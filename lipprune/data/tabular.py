"""Tabular fairness data: COMPAS, Adult, German credit, and the synthetic generator of Wick et al.

``load(name, split, *, data_dir=None, download=False, **kw) -> Dataset`` with

* ``x``: float32 features: categorical columns one-hot (categories in declared or sorted order, as
  listed by `encode`), numeric columns standardized to zero mean and unit variance **with the
  statistics of the training rows only** (no test row leaks into the preprocessing);
* ``y``: int32 labels; ``extras['group']``: int32 protected attribute (1 = protected);
  ``extras['z']``: the clean label (for real data, the recorded label: equal to ``y``).

Below `load`: ``read(name) -> Table`` (the rows after the publisher's filter, raw columns, and the
attributes group reports need, e.g. COMPAS's own ``decile_score``), ``partition(n, seed)`` (the
random 40/40/20 split), ``encode(table, fit_rows, drop)`` (features fitted on chosen rows) and
``protected_group(table, protected)``.

Sources. Each file is read from, in order: ``path=`` (a file, or a folder holding it), ``data_dir``,
``$LIPPRUNE_DATA_DIR``, the cache ``~/.cache/lipprune/tabular``. If none has it and
``download=True``, it is fetched from its publisher into ``data_dir`` (or the cache) and its sha256
checked; offline (a 3-second socket probe), or with ``download=False``, the error names both
options. ``verify=True`` (default) also checks the sha256 of local files; ``verify=False`` skips
that check (parsing errors are still reported with the file and the problem).

Datasets:

* ``compas``: ProPublica's ``compas-scores-two-years.csv`` with ProPublica's filtering
  (``-30 <= days_b_screening_arrest <= 30``, ``is_recid != -1``, ``c_charge_degree != 'O'``,
  ``score_text != 'N/A'``): 6,172 of 7,214 rows. Features (14): age category (3, one-hot), sex (2),
  race (6), charge degree (F/M, 2), priors count (standardized); ``drop_features=('race',)`` leaves
  race out. Protected: race == African-American (3,175 rows). Label ``y = z = two_year_recid``
  (1 = re-offended within two years, ProPublica's coding: the *unfavourable* outcome). Splits
  ``'all'``, or the paper's random 40% ``'train'`` / 40% ``'unlabeled'`` / 20% ``'test'`` partition
  drawn with ``seed`` (kwarg, default 0).
* ``adult``: UCI Adult. ``'train'`` = adult.data (32,561 rows), ``'test'`` = adult.test (16,281
  rows; its first comment line skipped, the trailing '.' of labels stripped), ``'all'`` = both. Six
  numeric columns standardized with adult.data statistics, eight categorical columns one-hot over the
  categories present in the files read (``'?'`` is a category). Label: income ``>50K``. Protected:
  ``protected='sex'`` (default: Female) or ``'race'`` (not White).
* ``german``: UCI Statlog German credit (1,000 rows, 7 numeric + 13 categorical attributes). Label:
  1 = good credit (the favourable outcome), 0 = bad. Protected: ``protected='age'`` (default:
  age <= 25) or ``'sex'`` (female: personal-status codes A92, A95). Splits as for COMPAS.

The synthetic generator of Wick et al. is `lipprune.fairness.synthetic.generate`: it composes the
bias injections of `lipprune.fairness.bias`, and the data layer does not import the fairness layer.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import urllib.parse
import urllib.request

import numpy as np

from lipprune.data.dataset import Dataset

NAMES = ("compas", "adult", "german")
# The protected attributes each dataset offers; the first is the default.
PROTECTED = {"compas": ("race",), "adult": ("sex", "race"), "german": ("age", "sex")}
SPLITS_RANDOM = ("all", "train", "unlabeled", "test")
NETWORK_TIMEOUT_S = 3.0

# filename -> (publisher URL, sha256).
SOURCES = {
    "compas-scores-two-years.csv": (
        "https://raw.githubusercontent.com/propublica/compas-analysis/master/compas-scores-two-years.csv",
        "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d"),
    "adult.data": (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data",
        "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"),
    "adult.test": (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.test",
        "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
    "german.data": (
        "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/german.data",
        "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871"),
}


class DataFileError(ValueError):
  """A data file is corrupt: wrong checksum, missing column or unparsable value."""


# ---------------------------------------------------------------------------------------------
# Locating, downloading and verifying files.


def cache_dir() -> str:
  return os.path.expanduser(os.environ.get("LIPPRUNE_DATA_DIR") or "~/.cache/lipprune/tabular")


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _verify(path: str, filename: str) -> None:
  expected = SOURCES[filename][1]
  got = sha256(path)
  if got != expected:
    raise DataFileError(f"{path}: sha256 {got} does not match the publisher's {expected} for "
                        f"{filename}; the file is corrupt or a different version (re-download it, "
                        f"or pass verify=False, --config.verify=False in the experiments, to parse "
                        f"it anyway)")


def _check_text(path: str) -> None:
  """Without the checksum (``verify=False``) a corrupt file must still fail naming itself: the
  parsers read UTF-8 text, and a flipped byte would otherwise surface as a bare UnicodeDecodeError."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise DataFileError(f"{path}: byte {e.start} is not UTF-8 text ({e.reason}); the file is "
                        "corrupt (with verify=True its sha256 check would report it)") from None


def _network_available(url: str, timeout: float) -> bool:
  from lipprune.data import catalog  # pylint: disable=g-import-not-at-top
  host = urllib.parse.urlparse(url).hostname
  return catalog.network_available((host, 443), timeout)


def locate(filename: str, *, data_dir=None, path=None, download: bool = False, verify: bool = True,
           timeout: float = NETWORK_TIMEOUT_S) -> str:
  """The local path of ``filename`` (see the module docstring for the search order)."""
  candidates = []
  if path is not None:
    path = os.path.expanduser(str(path))
    candidates.append(os.path.join(path, filename) if os.path.isdir(path) else path)
  for d in (data_dir, os.environ.get("LIPPRUNE_DATA_DIR"), cache_dir()):
    if d:
      candidates.append(os.path.join(os.path.expanduser(str(d)), filename))
  for c in candidates:
    if os.path.isfile(c):
      if verify:
        _verify(c, filename)
      else:
        _check_text(c)
      return c
  url, _ = SOURCES[filename]
  target_dir = os.path.expanduser(str(data_dir)) if data_dir else cache_dir()
  how = (f"Either pass download=True on a machine with internet (it fetches {url} into {target_dir} "
         f"and checks its sha256), or download that file yourself and pass data_dir=<its folder> "
         f"or path=<the file>.")
  if not download:
    raise FileNotFoundError(f"{filename} not found (looked in: {', '.join(candidates)}). {how}")
  if not _network_available(url, timeout):
    raise ConnectionError(f"{filename} not found locally and {urllib.parse.urlparse(url).hostname} is "
                          f"unreachable (no network within {timeout:.0f} s). {how}")
  os.makedirs(target_dir, exist_ok=True)
  dest = os.path.join(target_dir, filename)
  tmp = dest + ".part"
  try:
    try:
      with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
        f.write(response.read())
    except OSError as e:  # URLError, timeouts, resets, a full disk
      raise ConnectionError(f"downloading {url} to {dest} failed: {e}. {how}") from e
    _verify(tmp, filename)
    os.replace(tmp, dest)
  finally:  # a failed or interrupted download leaves no partial file behind
    if os.path.exists(tmp):
      os.remove(tmp)
  return dest


# ---------------------------------------------------------------------------------------------
# Parsing helpers.


def _column(rows, header, name, filename):
  if name not in header:
    raise DataFileError(f"{filename}: missing column {name!r}")
  i = header.index(name)
  return [r[i] for r in rows]


def _to_float(values, column, filename, row_offset=2):
  out = np.empty(len(values), np.float64)
  for i, v in enumerate(values):
    try:
      out[i] = float(v)
    except ValueError:
      raise DataFileError(f"{filename}: column {column!r}, row {i + row_offset}: cannot parse "
                          f"{v!r} as a number") from None
  return out


def _one_hot(values, categories):
  values = np.asarray(values)
  return np.stack([(values == c) for c in categories], 1).astype(np.float32)


def _standardize(v, mean, std):
  return ((v - mean) / (std if std > 0 else 1.0)).astype(np.float32)[:, None]


# ---------------------------------------------------------------------------------------------
# Raw tables and their encoding (statistics fitted on chosen rows only).


@dataclasses.dataclass(frozen=True)
class Table:
  """A data set after its publisher's filter and before encoding.

  Attributes:
    name: one of ``NAMES``.
    columns: the feature columns in encoding order: float64 arrays (numeric, standardized by
      `encode`) or str arrays (categorical, one-hot by `encode`).
    label: int32 labels (COMPAS: 1 = re-offended within two years; Adult: income > 50K; German:
      good credit).
    attributes: per-row columns kept for group reports and protected attributes, not features
      (COMPAS: ``race, sex, age_cat, decile_score, score_text``; Adult: ``sex, race, part``;
      German: ``age, personal_status``).
    categories: declared category lists of categorical columns (COMPAS); a categorical column not
      listed here takes the sorted values present in the table.
  """

  name: str
  columns: dict
  label: np.ndarray
  attributes: dict
  categories: dict = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.label)

  def take(self, index) -> "Table":
    pick = lambda d: {k: v[index] for k, v in d.items()}
    return dataclasses.replace(self, columns=pick(self.columns), label=self.label[index],
                               attributes=pick(self.attributes))


def encode(table: Table, fit_rows=None, drop=()) -> tuple[np.ndarray, list[str]]:
  """Features ``(x float32 (n, D), names)`` of every row of ``table``.

  Numeric columns are standardized with the mean and standard deviation of the ``fit_rows`` (an
  index array or boolean mask; all rows when None): fitting on the training rows only keeps test
  rows from leaking into the preprocessing. Categorical columns are one-hot over the declared
  categories or, if none are declared, the sorted values present in the table (the file's schema,
  not a statistic: every split of one table then has the same columns). ``drop`` names source
  columns to leave out (e.g. ``('race',)``).
  """
  unknown = sorted(set(drop) - set(table.columns))
  if unknown:
    raise ValueError(f"drop={list(drop)}: {unknown} are not feature columns of {table.name}; "
                     f"expected names from {list(table.columns)}")
  fit = np.arange(len(table)) if fit_rows is None else np.asarray(fit_rows)
  if fit.dtype == bool:
    fit = np.flatnonzero(fit)
  if fit.size == 0:
    raise ValueError(f"fit_rows selects no row of {table.name}")
  feats, names = [], []
  for column, values in table.columns.items():
    if column in drop:
      continue
    if values.dtype.kind == "f":
      feats.append(_standardize(values, values[fit].mean(), values[fit].std()))
      names.append(column)
    else:
      cats = table.categories.get(column) or sorted(set(values.tolist()))
      feats.append(_one_hot(values, cats))
      names += [f"{column}={c}" for c in cats]
  return np.concatenate(feats, 1), names


def partition(n: int, seed: int, fractions=(0.4, 0.4, 0.2)) -> dict:
  """``{'train', 'unlabeled', 'test'}``: sorted row indices of a random partition of ``n`` rows
  (shares ``fractions``), a function of ``seed`` alone."""
  if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
    raise ValueError(f"fractions={fractions}; need three non-negative numbers summing to 1")
  perm = np.random.default_rng(seed).permutation(n)
  n_train = int(round(fractions[0] * n))
  n_unl = int(round(fractions[1] * n))
  parts = {"train": perm[:n_train], "unlabeled": perm[n_train:n_train + n_unl],
           "test": perm[n_train + n_unl:]}
  return {k: np.sort(v) for k, v in parts.items()}


def random_split(ds: Dataset, split: str, seed: int, fractions=(0.4, 0.4, 0.2)) -> Dataset:
  """Rows of ``ds`` in ``split`` of `partition` (``'all'``: every row)."""
  if split not in SPLITS_RANDOM:
    raise ValueError(f"split={split!r} for {ds.name!r}; expected one of {list(SPLITS_RANDOM)}")
  if split == "all":
    return ds
  return ds.take(partition(len(ds), seed, fractions)[split])


# ---------------------------------------------------------------------------------------------
# COMPAS.

COMPAS_AGE = ("25 - 45", "Greater than 45", "Less than 25")
COMPAS_SEX = ("Female", "Male")
COMPAS_RACE = ("African-American", "Asian", "Caucasian", "Hispanic", "Native American", "Other")
COMPAS_DEGREE = ("F", "M")
COMPAS_FEATURES = ("age_cat", "sex", "race", "c_charge_degree", "priors_count")


def read_compas(file: str) -> Table:
  """ProPublica-filtered COMPAS (6,172 rows) as a `Table`.

  Features: age category, sex, race, charge degree (categorical), priors count (numeric). Label:
  ``two_year_recid`` (1 = re-offended within two years, ProPublica's coding). Attributes for group
  reports: ``race, sex, age_cat`` (str), ``decile_score`` (int 1-10: the COMPAS risk score;
  ProPublica calls decile >= 5, score text Medium or High, "high risk") and ``score_text``.
  """
  with open(file, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  if not rows:
    raise DataFileError(f"{file}: empty file")
  header, rows = rows[0], rows[1:]
  bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
  if bad:
    raise DataFileError(f"{file}: row {bad[0]} has a different number of fields than the header")
  col = lambda c: _column(rows, header, c, file)
  days = col("days_b_screening_arrest")
  is_recid = _to_float(col("is_recid"), "is_recid", file)
  degree = col("c_charge_degree")
  score_text = col("score_text")
  # ProPublica's R filter drops rows whose days_b_screening_arrest is missing (NA comparisons).
  days_f = np.array([float(d) if d.strip() not in ("", "NA") else np.nan for d in
                     _check_numeric_or_missing(days, "days_b_screening_arrest", file)])
  keep = ((np.abs(days_f) <= 30) & (is_recid != -1) & (np.asarray(degree) != "O")
          & (np.asarray(score_text) != "N/A"))
  idx = np.flatnonzero(keep)
  take = lambda values: [values[i] for i in idx]
  age, sex, race, deg = take(col("age_cat")), take(col("sex")), take(col("race")), take(degree)
  for values, cats, cname in ((age, COMPAS_AGE, "age_cat"), (sex, COMPAS_SEX, "sex"),
                              (race, COMPAS_RACE, "race"), (deg, COMPAS_DEGREE, "c_charge_degree")):
    unknown = sorted(set(values) - set(cats))
    if unknown:
      raise DataFileError(f"{file}: column {cname!r} has unexpected values {unknown[:5]}")
  priors = _to_float(take(col("priors_count")), "priors_count", file)
  label = _to_float(take(col("two_year_recid")), "two_year_recid", file)
  if not np.isin(label, (0, 1)).all():
    raise DataFileError(f"{file}: column 'two_year_recid' has values other than 0/1")
  decile = _to_float(take(col("decile_score")), "decile_score", file)
  if not np.isin(decile, np.arange(1, 11)).all():
    raise DataFileError(f"{file}: column 'decile_score' has values outside 1..10")
  text = lambda v: np.asarray(v, dtype=str)
  return Table(
      name="compas",
      columns={"age_cat": text(age), "sex": text(sex), "race": text(race), "c_charge_degree": text(deg),
               "priors_count": priors},
      label=label.astype(np.int32),
      attributes={"race": text(race), "sex": text(sex), "age_cat": text(age),
                  "decile_score": decile.astype(np.int32), "score_text": text(take(score_text))},
      categories={"age_cat": COMPAS_AGE, "sex": COMPAS_SEX, "race": COMPAS_RACE,
                  "c_charge_degree": COMPAS_DEGREE})


def _check_numeric_or_missing(values, column, file):
  for i, v in enumerate(values):
    if v.strip() in ("", "NA"):
      continue
    try:
      float(v)
    except ValueError:
      raise DataFileError(f"{file}: column {column!r}, row {i + 2}: cannot parse {v!r} as a number") from None
  return values


# ---------------------------------------------------------------------------------------------
# Adult.

ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                 "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                 "hours-per-week", "native-country", "income")
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _read_adult_rows(file: str, is_test: bool) -> list[list[str]]:
  rows = []
  with open(file, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      line = line.strip()
      if not line or line.startswith("|"):
        continue  # blank lines and adult.test's comment line "|1x3 Cross validator"
      fields = [v.strip() for v in line.split(",")]
      if len(fields) != len(ADULT_COLUMNS):
        raise DataFileError(f"{file}: line {lineno} has {len(fields)} fields, expected "
                            f"{len(ADULT_COLUMNS)} ({', '.join(ADULT_COLUMNS)})")
      if is_test:
        fields[-1] = fields[-1].rstrip(".")
      if fields[-1] not in ("<=50K", ">50K"):
        raise DataFileError(f"{file}: line {lineno}: income {fields[-1]!r} is not '<=50K' or '>50K'")
      for c in ADULT_NUMERIC:
        v = fields[ADULT_COLUMNS.index(c)]
        try:
          float(v)
        except ValueError:
          raise DataFileError(f"{file}: line {lineno}, column {c!r}: cannot parse {v!r} as a number") from None
      rows.append(fields)
  if not rows:
    raise DataFileError(f"{file}: no data rows")
  return rows


def read_adult(train_file: str, test_file: str | None) -> Table:
  """adult.data rows, then adult.test rows (when ``test_file`` is given), as a `Table`.

  Attributes: ``sex``, ``race`` and ``part`` (``'train'`` for adult.data rows, ``'test'`` for
  adult.test rows: `load` fits the encoding on the adult.data rows).
  """
  parts = [("train", _read_adult_rows(train_file, False))]
  if test_file is not None:
    parts.append(("test", _read_adult_rows(test_file, True)))
  rows = [r for _, part_rows in parts for r in part_rows]
  col = lambda c: np.asarray([r[ADULT_COLUMNS.index(c)] for r in rows], dtype=str)
  columns = {c: col(c).astype(np.float64) for c in ADULT_NUMERIC}
  columns.update({c: col(c) for c in ADULT_COLUMNS[:-1] if c not in ADULT_NUMERIC})
  part = np.concatenate([np.full(len(part_rows), name) for name, part_rows in parts])
  return Table(name="adult", columns=columns, label=(col("income") == ">50K").astype(np.int32),
               attributes={"sex": col("sex"), "race": col("race"), "part": part})


# ---------------------------------------------------------------------------------------------
# German credit.

GERMAN_NUMERIC = {1: "duration", 4: "credit_amount", 7: "installment_rate", 10: "residence_since",
                  12: "age", 15: "existing_credits", 17: "people_liable"}
GERMAN_NUM_ATTRS = 20
GERMAN_FEMALE = ("A92", "A95")  # personal status and sex: female divorced/separated/married, single
GERMAN_YOUNG_AGE = 25  # protected='age': age <= 25 years.


def read_german(file: str) -> Table:
  """Statlog German credit as a `Table` (label 1 = good credit, 0 = bad).

  Features: the 20 attributes in file order (7 numeric, the others categorical, named
  ``attribute<j>``). Attributes: ``age`` (years) and ``sex`` (``'female'`` for personal-status
  codes A92/A95, else ``'male'``).
  """
  rows = []
  with open(file, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) != GERMAN_NUM_ATTRS + 1:
        raise DataFileError(f"{file}: line {lineno} has {len(fields)} fields, expected "
                            f"{GERMAN_NUM_ATTRS + 1} (20 attributes and the label)")
      for j in GERMAN_NUMERIC:
        try:
          float(fields[j])
        except ValueError:
          raise DataFileError(f"{file}: line {lineno}, attribute {j + 1} ({GERMAN_NUMERIC[j]}): cannot "
                              f"parse {fields[j]!r} as a number") from None
      if fields[-1] not in ("1", "2"):
        raise DataFileError(f"{file}: line {lineno}: label {fields[-1]!r} is not 1 (good) or 2 (bad)")
      rows.append(fields)
  if not rows:
    raise DataFileError(f"{file}: no data rows")
  columns = {}
  for j in range(GERMAN_NUM_ATTRS):
    values = np.asarray([r[j] for r in rows], dtype=str)
    if j in GERMAN_NUMERIC:
      columns[GERMAN_NUMERIC[j]] = values.astype(np.float64)
    else:
      columns[f"attribute{j + 1}"] = values
  female = np.isin([r[8] for r in rows], GERMAN_FEMALE)
  return Table(name="german", columns=columns,
               label=(np.asarray([r[-1] for r in rows]) == "1").astype(np.int32),
               attributes={"age": columns["age"].copy(), "sex": np.where(female, "female", "male")})


# ---------------------------------------------------------------------------------------------
# The entry point.


def feature_columns(name: str) -> tuple[str, ...]:
  """The source columns of data set ``name`` that `encode` turns into features, in order."""
  if name == "compas":
    return COMPAS_FEATURES
  if name == "adult":
    return ADULT_NUMERIC + tuple(c for c in ADULT_COLUMNS[:-1] if c not in ADULT_NUMERIC)
  if name == "german":
    return tuple(GERMAN_NUMERIC.get(j, f"attribute{j + 1}") for j in range(GERMAN_NUM_ATTRS))
  raise ValueError(f"unknown tabular dataset {name!r}; expected one of {list(NAMES)}")


def protected_group(table: Table, protected: str | None = None) -> np.ndarray:
  """int32 protected attribute of each row (1 = protected): COMPAS race African-American; Adult
  ``'sex'`` Female (default) or ``'race'`` not White; German ``'age'`` <= 25 (default) or ``'sex'``
  female."""
  allowed = PROTECTED[table.name]
  protected = protected or allowed[0]
  if protected not in allowed:
    raise ValueError(f"protected={protected!r} for {table.name}; expected one of {list(allowed)}")
  a = table.attributes
  if table.name == "compas":
    group = a["race"] == "African-American"
  elif table.name == "adult":
    group = a["sex"] == "Female" if protected == "sex" else a["race"] != "White"
  else:
    group = a["age"] <= GERMAN_YOUNG_AGE if protected == "age" else a["sex"] == "female"
  return group.astype(np.int32)


def read(name: str, *, data_dir=None, download: bool = False, path=None, verify: bool = True,
         adult_test: bool = True) -> Table:
  """The `Table` of data set ``name``, its files located as the module docstring says
  (``adult_test=False`` reads adult.data only)."""
  if name not in NAMES:
    raise ValueError(f"unknown tabular dataset {name!r}; expected one of {list(NAMES)}")
  find = lambda fn: locate(fn, data_dir=data_dir, path=path, download=download, verify=verify)
  if name == "compas":
    return read_compas(find("compas-scores-two-years.csv"))
  if name == "german":
    return read_german(find("german.data"))
  return read_adult(find("adult.data"), find("adult.test") if adult_test else None)


def load(name: str, split: str = "all", *, data_dir=None, download: bool = False, path=None,
         verify: bool = True, seed: int = 0, fractions=(0.4, 0.4, 0.2),
         protected: str | None = None, drop_features=()) -> Dataset:
  """Loads a tabular fairness data set (see the module docstring for each one).

  Args:
    name: one of ``NAMES``.
    split: ``'all' | 'train' | 'unlabeled' | 'test'`` (compas, german); ``'all' | 'train' | 'test'``
      (adult).
    data_dir, download, path, verify: where the files come from (module docstring).
    seed: the random partition (compas, german).
    fractions: train/unlabeled/test shares of the random partition.
    protected: which attribute is protected: adult ``'sex'|'race'``, german ``'age'|'sex'``.
    drop_features: source columns left out of ``x`` (e.g. ``('race',)`` for COMPAS without race).

  The encoding is fitted on training rows only: the ``'train'`` part of the partition drawn with
  ``seed`` (compas, german), adult.data (adult); for ``split='all'`` of compas and german, on all
  rows.
  """
  if name not in NAMES:
    raise ValueError(f"unknown tabular dataset {name!r}; expected one of {list(NAMES)}")
  # Arguments are checked before any file is read or fetched.
  splits = ("all", "train", "test") if name == "adult" else SPLITS_RANDOM
  if split not in splits:
    raise ValueError(f"split={split!r} for {name!r}; expected one of {list(splits)}")
  if protected not in (None,) + PROTECTED[name]:
    raise ValueError(f"protected={protected!r} for {name}; expected one of {list(PROTECTED[name])}")
  unknown = sorted(set(drop_features) - set(feature_columns(name)))
  if unknown:
    raise ValueError(f"drop_features={list(drop_features)} for {name}: {unknown} are not feature "
                     f"columns; expected names from {list(feature_columns(name))}")
  table = read(name, data_dir=data_dir, download=download, path=path, verify=verify,
               adult_test=split != "train")
  if name == "adult":
    fit = table.attributes["part"] == "train"
    rows = np.arange(len(table)) if split == "all" else np.flatnonzero(table.attributes["part"] == split)
  else:
    parts = partition(len(table), seed, fractions) if split != "all" else None
    fit = None if parts is None else parts["train"]
    rows = np.arange(len(table)) if parts is None else parts[split]
  x, _ = encode(table, fit, drop_features)
  return Dataset(x=x[rows], y=table.label[rows], num_classes=2, name=name,
                 extras={"group": protected_group(table, protected)[rows], "z": table.label[rows].copy()})
