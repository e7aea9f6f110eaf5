"""Grouping keys on hand-made batches (pure functions, no trainer)."""

import pytest
import torch

from open_r1_ext.token_scavenger.grouping import (
    GROUPING_KEYS,
    LatentBatch,
    final_answer,
    get_grouping_key,
    kmeans_in_groups,
)


def same_partition(labels, expected):
    labels = labels.tolist()
    return all(
        (labels[i] == labels[j]) == (expected[i] == expected[j]) for i in range(len(expected)) for j in range(i)
    )


def test_registry_lists_names_in_its_error():
    assert set(GROUPING_KEYS) == {"answer", "prefix", "hidden"}
    with pytest.raises(ValueError, match=r"known grouping keys: \['answer', 'hidden', 'prefix'\]"):
        get_grouping_key("length")


def test_final_answer_formats():
    assert final_answer("3,8,16>16") == "16"
    assert final_answer("so \\boxed{x^{2}} and \\boxed{7}") == "7"
    assert final_answer("<think>\nhm\n</think>\n<answer>\n42\n</answer>") == "42"
    assert final_answer("no mark at all") == "no"


def test_answer_key():
    completions = ["1,3>3", "1,4>4", "x>3", "garbage", "2,4>4 ", "\\boxed{3}"]
    labels = get_grouping_key("answer")(
        LatentBatch(group_ids=torch.zeros(6, dtype=torch.long), completions=completions)
    )
    assert same_partition(labels, ["3", "4", "3", "garbage", "4", "3"])


def test_prefix_key_first_tokens_and_adaptive_ids():
    ids = torch.tensor([[5, 6, 7], [5, 6, 8], [5, 9, 7], [5, 6, -1], [4, -1, -1], [4, -1, -1]])
    batch = LatentBatch(group_ids=torch.zeros(6, dtype=torch.long), completion_ids=ids[:, :2], prefix_tokens=2)
    assert same_partition(get_grouping_key("prefix")(batch), [0, 0, 1, 0, 2, 2])
    # token-adaptive prefix ids win over tokens
    batch.prefix_ids = torch.tensor([10, 10, 10, 3, 3, 4])
    assert get_grouping_key("prefix")(batch).tolist() == [10, 10, 10, 3, 3, 4]


def test_hidden_key_kmeans_within_each_prompt_group():
    torch.manual_seed(0)
    a, b = torch.randn(8), torch.randn(8)
    noise = 0.01 * torch.randn(8, 8)
    # group 0: rows 0,1,4 near a and 2,3,5 near b; group 1 (rows 6..11): all near a but two near -a
    hidden = torch.stack([a, a, b, b, a, b] + [a, a, a, -a, -a, a]) + torch.cat([noise, noise[:4]])
    batch = LatentBatch(group_ids=torch.arange(12) // 6, hidden=hidden, num_clusters=2)
    labels = get_grouping_key("hidden")(batch)
    assert same_partition(labels[:6], [0, 0, 1, 1, 0, 1])
    assert same_partition(labels[6:], [0, 0, 0, 1, 1, 0])
    assert torch.equal(labels, get_grouping_key("hidden")(batch))  # deterministic


def test_kmeans_never_exceeds_group_size_and_handles_duplicates():
    x = torch.ones(3, 4, 5)  # identical points
    labels = kmeans_in_groups(x, k=8)
    assert labels.shape == (3, 4) and (labels == labels[:, :1]).all()
