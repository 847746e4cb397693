"""bench.bench_pgd's PyTorch PGD attacks the same function as lipprune's: identical outputs."""
import pytest

from bench import bench_pgd

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name,batch", [("mlp", 16), ("cnn", 4)])
def test_torch_and_lipprune_pgd_agree(name, batch):
  torch.set_num_threads(1)
  assert bench_pgd.agreement(torch, name, batch_size=batch) > 0.999


def test_bench_skips_without_torch(monkeypatch, capsys):
  monkeypatch.setattr(bench_pgd.common, "optional_import", lambda name: None)
  assert bench_pgd.main(["--models=mlp"]) == 0
  assert "torch is not installed" in capsys.readouterr().err
