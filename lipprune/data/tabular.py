"""Tabular fairness data: COMPAS, Adult, German credit, and the synthetic generator of Wick et al.

``load(name, split, *, data_dir=None, download=False, **kw) -> Dataset`` with

* ``x``: float32 features: categorical columns one-hot (categories in sorted order, as listed by
  `feature_names`), numeric columns standardized to zero mean and unit variance;
* ``y``: int32 labels; ``extras['group']``: int32 protected attribute (1 = protected);
  ``extras['z']``: the clean label (for real data, the recorded label: equal to ``y``).

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
  race (6), charge degree (F/M, 2), priors count (standardized). Protected: race ==
  African-American (3,175 rows). Label ``y = z = two_year_recid`` (1 = reoffended: the
  *unfavourable* outcome). Splits ``'all'``, or the paper's random 40% ``'train'`` / 40%
  ``'unlabeled'`` / 20% ``'test'`` partition drawn with ``seed`` (kwarg, default 0).
* ``adult``: UCI Adult. ``'train'`` = adult.data (32,561 rows), ``'test'`` = adult.test (16,281
  rows; its first comment line skipped, the trailing '.' of labels stripped), ``'all'`` = both. Six
  numeric columns standardized with train statistics, eight categorical columns one-hot over the
  categories seen in adult.data (``'?'`` is a category). Label: income ``>50K``. Protected:
  ``protected='sex'`` (default: Female) or ``'race'`` (not White).
* ``german``: UCI Statlog German credit (1,000 rows, 7 numeric + 13 categorical attributes). Label:
  1 = good credit (the favourable outcome), 0 = bad. Protected: ``protected='age'`` (default:
  age <= 25) or ``'sex'`` (female: personal-status codes A92, A95). Splits as for COMPAS.

The synthetic generator of Wick et al. is `lipprune.fairness.synthetic.generate`: it composes the
bias injections of `lipprune.fairness.bias`, and the data layer does not import the fairness layer.
"""
from __future__ import annotations

import csv
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


def random_split(ds: Dataset, split: str, seed: int, fractions=(0.4, 0.4, 0.2)) -> Dataset:
  if split not in SPLITS_RANDOM:
    raise ValueError(f"split={split!r} for {ds.name!r}; expected one of {list(SPLITS_RANDOM)}")
  if split == "all":
    return ds
  if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
    raise ValueError(f"fractions={fractions}; need three non-negative numbers summing to 1")
  n = len(ds)
  perm = np.random.default_rng(seed).permutation(n)
  n_train = int(round(fractions[0] * n))
  n_unl = int(round(fractions[1] * n))
  parts = {"train": perm[:n_train], "unlabeled": perm[n_train:n_train + n_unl],
           "test": perm[n_train + n_unl:]}
  return ds.take(np.sort(parts[split]))


# ---------------------------------------------------------------------------------------------
# COMPAS.

COMPAS_AGE = ("25 - 45", "Greater than 45", "Less than 25")
COMPAS_SEX = ("Female", "Male")
COMPAS_RACE = ("African-American", "Asian", "Caucasian", "Hispanic", "Native American", "Other")
COMPAS_DEGREE = ("F", "M")


def read_compas(file: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
  """ProPublica-filtered COMPAS: ``(x, two_year_recid, african_american, feature_names)``."""
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
  x = np.concatenate([_one_hot(age, COMPAS_AGE), _one_hot(sex, COMPAS_SEX), _one_hot(race, COMPAS_RACE),
                      _one_hot(deg, COMPAS_DEGREE), _standardize(priors, priors.mean(), priors.std())], 1)
  names = ([f"age_cat={c}" for c in COMPAS_AGE] + [f"sex={c}" for c in COMPAS_SEX]
           + [f"race={c}" for c in COMPAS_RACE] + [f"c_charge_degree={c}" for c in COMPAS_DEGREE]
           + ["priors_count"])
  group = (np.asarray(race) == "African-American").astype(np.int32)
  return x, label.astype(np.int32), group, names


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


def read_adult(train_file: str, test_file: str | None, protected: str = "sex"):
  """Returns ``{'train': (x, y, group), 'test': ...}`` and the feature names."""
  if protected not in ("sex", "race"):
    raise ValueError(f"protected={protected!r} for adult; expected one of ['sex', 'race']")
  train = _read_adult_rows(train_file, False)
  parts = {"train": train}
  if test_file is not None:
    parts["test"] = _read_adult_rows(test_file, True)
  cols = lambda rows, c: [r[ADULT_COLUMNS.index(c)] for r in rows]
  stats = {}
  for c in ADULT_NUMERIC:
    v = np.asarray(cols(train, c), np.float64)
    stats[c] = (v.mean(), v.std())
  categorical = [c for c in ADULT_COLUMNS[:-1] if c not in ADULT_NUMERIC]
  cats = {c: sorted(set(cols(train, c))) for c in categorical}
  names = list(ADULT_NUMERIC) + [f"{c}={v}" for c in categorical for v in cats[c]]
  out = {}
  for split, rows in parts.items():
    feats = [_standardize(np.asarray(cols(rows, c), np.float64), *stats[c]) for c in ADULT_NUMERIC]
    feats += [_one_hot(cols(rows, c), cats[c]) for c in categorical]
    y = (np.asarray(cols(rows, "income")) == ">50K").astype(np.int32)
    if protected == "sex":
      group = (np.asarray(cols(rows, "sex")) == "Female").astype(np.int32)
    else:
      group = (np.asarray(cols(rows, "race")) != "White").astype(np.int32)
    out[split] = (np.concatenate(feats, 1), y, group)
  return out, names


# ---------------------------------------------------------------------------------------------
# German credit.

GERMAN_NUMERIC = {1: "duration", 4: "credit_amount", 7: "installment_rate", 10: "residence_since",
                  12: "age", 15: "existing_credits", 17: "people_liable"}
GERMAN_NUM_ATTRS = 20


def read_german(file: str, protected: str = "age"):
  """``(x, y, group, feature_names)`` for Statlog German credit (y: 1 = good, 0 = bad)."""
  if protected not in ("age", "sex"):
    raise ValueError(f"protected={protected!r} for german; expected one of ['age', 'sex']")
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
  feats, names = [], []
  for j in range(GERMAN_NUM_ATTRS):
    values = [r[j] for r in rows]
    if j in GERMAN_NUMERIC:
      v = np.asarray(values, np.float64)
      feats.append(_standardize(v, v.mean(), v.std()))
      names.append(GERMAN_NUMERIC[j])
    else:
      cats = sorted(set(values))
      feats.append(_one_hot(values, cats))
      names += [f"attribute{j + 1}={c}" for c in cats]
  y = (np.asarray([r[-1] for r in rows]) == "1").astype(np.int32)
  if protected == "age":
    group = (np.asarray([float(r[12]) for r in rows]) <= 25).astype(np.int32)
  else:
    group = np.isin([r[8] for r in rows], ("A92", "A95")).astype(np.int32)
  return np.concatenate(feats, 1), y, group, names


# ---------------------------------------------------------------------------------------------
# The entry point.


def _dataset(name, x, y, group):
  return Dataset(x=np.asarray(x, np.float32), y=np.asarray(y, np.int32), num_classes=2, name=name,
                 extras={"group": np.asarray(group, np.int32), "z": np.asarray(y, np.int32).copy()})


def load(name: str, split: str = "all", *, data_dir=None, download: bool = False, path=None,
         verify: bool = True, seed: int = 0, fractions=(0.4, 0.4, 0.2),
         protected: str | None = None) -> Dataset:
  """Loads a tabular fairness data set (see the module docstring for each one).

  Args:
    name: one of ``NAMES``.
    split: ``'all' | 'train' | 'unlabeled' | 'test'`` (compas, german); ``'all' | 'train' | 'test'``
      (adult).
    data_dir, download, path, verify: where the files come from (module docstring).
    seed: the random partition (compas, german).
    fractions: train/unlabeled/test shares of the random partition.
    protected: which attribute is protected: adult ``'sex'|'race'``, german ``'age'|'sex'``.
  """
  if name not in NAMES:
    raise ValueError(f"unknown tabular dataset {name!r}; expected one of {list(NAMES)}")
  # Arguments are checked before any file is read or fetched.
  splits = ("all", "train", "test") if name == "adult" else SPLITS_RANDOM
  if split not in splits:
    raise ValueError(f"split={split!r} for {name!r}; expected one of {list(splits)}")
  if protected not in (None,) + PROTECTED[name]:
    raise ValueError(f"protected={protected!r} for {name}; expected one of {list(PROTECTED[name])}")
  find = lambda fn: locate(fn, data_dir=data_dir, path=path, download=download, verify=verify)
  if name == "compas":
    x, y, group, _ = read_compas(find("compas-scores-two-years.csv"))
    return random_split(_dataset(name, x, y, group), split, seed, fractions)
  if name == "german":
    x, y, group, _ = read_german(find("german.data"), protected or "age")
    return random_split(_dataset(name, x, y, group), split, seed, fractions)
  if name == "adult":
    test_file = find("adult.test") if split != "train" else None
    parts, _ = read_adult(find("adult.data"), test_file, protected or "sex")
    if split == "all":
      x, y, g = (np.concatenate([parts["train"][i], parts["test"][i]]) for i in range(3))
      return _dataset(name, x, y, g)
    return _dataset(name, *parts[split])
