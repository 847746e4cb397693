"""Exact l_inf and l_2 separation of scikit-learn digits (1437 train, 360 test); seconds on CPU.
2 eps marked at eps = 0.1 (l_inf, the robust_digits_* radius) and l2_eps = 0.5."""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.dataset = "digits"
  c.data_dir = ""
  c.download = False
  c.verify = True  # tabular data: check each file's sha256 (False: parse a modified file anyway)
  c.norms = "linf,l2"
  c.eps = 0.1
  c.l2_eps = 0.5
  c.bins = 50
  c.max_train = 0  # 0: every example
  c.max_test = 0
  c.query_chunk = 256
  c.ref_chunk = 1024
  return c
