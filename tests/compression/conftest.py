import os


os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


torch.set_num_threads(1)

from compression_testutils import TEXT  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A prepared data folder built from six tiny in-memory 'plays' (no package text, no download)."""
    from open_r1_ext.compression.data import prepare_data

    plays = tmp_path_factory.mktemp("plays")
    for i in range(6):
        (plays / f"play{i}.txt").write_text(TEXT * (8 + i))
    out = tmp_path_factory.mktemp("data")
    prepare_data(out, vocab_size=300, seq_len=16, texts_folder=str(plays), test_every=3)
    return out
