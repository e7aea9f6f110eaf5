import os


# One torch thread per test process (the suite runs on 2-core machines beside other work), and a cache folder
# for built-in models shared by the whole session so each warm start is trained once.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _builtin_cache(tmp_path_factory):
    if "OPEN_R1_EXT_CACHE" not in os.environ:
        os.environ["OPEN_R1_EXT_CACHE"] = str(tmp_path_factory.mktemp("open_r1_ext_cache"))
    yield


@pytest.fixture(scope="session")
def char_tok():
    from open_r1_ext.core.tiny import char_tokenizer

    return char_tokenizer()


@pytest.fixture
def tiny_model(char_tok):
    from open_r1_ext.core.tiny import TinyModelSettings, tiny_llama

    torch.manual_seed(0)
    settings = TinyModelSettings(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    return tiny_llama(len(char_tok), settings, char_tok)


@pytest.fixture(scope="session")
def micro_model_state(char_tok):
    """`(config, state_dict)` of a micro Llama over the character tokenizer; `tiny_helpers.fresh_model` rebuilds it."""
    from open_r1_ext.core.tiny import micro_llama

    model = micro_llama(char_tok)
    return model.config, model.state_dict()
