"""Data-parallel training: 2 CPU processes (gloo, launched by torchrun) end with the weights of
one process trained on the same global batches (in float32: bf16 autocast, the default on CPUs
with native bf16, rounds batches of 2 and of 4 differently)."""

import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from impasto.train import TrainConfig, train
from impasto.train.model import build_model
from impasto.train.store import read_checkpoint


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "data" / f"c{c}").mkdir(parents=True)
        for i in range(8):
            a = (rng.random((16, 16, 3)) * 120 + c * 120).astype(np.uint8)
            Image.fromarray(a).save(tmp_path / "data" / f"c{c}" / f"{i}.png")
    common = ["--arch", "vgg11", "--width", "0.0625", "--size", "16", "--epochs", "1"]
    common += ["--val-fraction", "0", "--max-steps", "3", "--precision", "fp32", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "impasto", "train", "run", str(tmp_path / "data"), "-o", str(tmp_path / "ddp"),
        "--batch-size", "2", *common,
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ddp = read_checkpoint(tmp_path / "ddp")
    assert ddp["world_size"] == 2 and ddp["global_step"] == 3
    one = TrainConfig(
        data=str(tmp_path / "data"), out_dir=str(tmp_path / "one"), arch="vgg11", width=0.0625,
        size=16, epochs=1, batch_size=4, val_fraction=0, max_steps=3, precision="fp32",
    )  # fmt: skip
    train(one)
    single = read_checkpoint(tmp_path / "one")
    for k, v in single["model"].items():
        torch.testing.assert_close(ddp["model"][k], v, rtol=1e-4, atol=1e-6)
    # ...and training moved the weights (the comparison is not between two initialisations).
    init = build_model("vgg11", 0.0625, 2, seed=0).state_dict()
    assert not torch.allclose(init["convs.0.weight"], single["model"]["convs.0.weight"])
