"""Two CPU processes: advantages are computed on the rewards gathered from both and sliced back to each."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from open_r1_ext.core.advantages import get_estimator


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_slice_gathered_advantages(tmp_path):
    # torchrun, not `accelerate launch`: accelerate's multi-CPU launcher needs MPI; TRL still runs under
    # accelerate's MULTI_CPU state (gloo)
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    with socket.socket() as sock:  # a free port: `--master_port 0` hung at rendezvous on this machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    cmd += [os.path.join(os.path.dirname(__file__), "two_process_run.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.load(open(tmp_path / f"rank{r}.json")) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    rec = [r["records"][0] for r in ranks]

    # the gathered batch is rank 0's rows then rank 1's: one prompt group of 8 split 4 / 4 across processes
    texts = rec[0]["texts"] + rec[1]["texts"]
    rewards = torch.tensor([sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in texts])
    firsts = [tuple(f) for f in rec[0]["first_tokens"] + rec[1]["first_tokens"]]
    index = {}
    latent = torch.tensor([index.setdefault(f, len(index)) for f in firsts])
    expected = get_estimator("two_level")(rewards, torch.zeros(8, dtype=torch.long), latent, clamp_max=5.0).advantages
    got = torch.tensor(rec[0]["advantages"] + rec[1]["advantages"])
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)
    # a per-process estimate would differ: the group statistics need both halves
    local = get_estimator("two_level")(rewards[:4], torch.zeros(4, dtype=torch.long), latent[:4], clamp_max=5.0)
    assert rewards.std() > 0 and not torch.allclose(local.advantages, expected[:4], atol=1e-3)
