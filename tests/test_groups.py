import pytest
import torch

from mcviz import ChannelGroups


def test_uniform_is_eq1():
    g = ChannelGroups.uniform(4, 3)
    assert g.num_classes == 4 and g.num_channels == 12 and g.sizes == (3, 3, 3, 3)
    assert g.channels(2) == [6, 7, 8]
    assert g.is_uniform and g.is_contiguous


def test_from_sizes_contiguous_in_class_order():
    g = ChannelGroups.from_sizes([2, 3, 1])
    assert [g.channels(i) for i in range(3)] == [[0, 1], [2, 3, 4], [5]]
    assert g.num_channels == 6 and not g.is_uniform and g.is_contiguous


# Table II: (channels, classes) -> {group size: number of classes}
TABLE_II = {
    ("CUB", 512): (200, {2: 88, 3: 112}),
    ("CUB", 2048): (200, {10: 152, 11: 48}),
    ("Cars", 512): (196, {2: 76, 3: 120}),
    ("Cars", 2048): (196, {10: 108, 11: 88}),
    ("Aircraft", 512): (100, {5: 88, 6: 12}),
    ("Aircraft", 2048): (100, {20: 52, 21: 48}),
    ("Flowers", 512): (102, {5: 100, 6: 2}),
    ("Flowers", 2048): (102, {20: 94, 21: 8}),
}


@pytest.mark.parametrize("key", list(TABLE_II))
def test_split_reproduces_table_ii(key):
    channels = key[1]
    classes, expected = TABLE_II[key]
    g = ChannelGroups.split(channels, classes)
    counts = {s: g.sizes.count(s) for s in set(g.sizes)}
    assert counts == expected
    assert g.num_channels == channels
    # the last N % c classes are the larger ones
    small = min(expected)
    assert all(s == small for s in g.sizes[: expected[small]])


def test_rejects_bad_sizes_and_mismatch():
    with pytest.raises(ValueError, match="at least 1|>= 1"):
        ChannelGroups.from_sizes([2, 0, 3])
    with pytest.raises(ValueError, match="xi"):
        ChannelGroups.uniform(3, 0)
    with pytest.raises(ValueError, match="cannot be split"):
        ChannelGroups.split(10, 20)
    g = ChannelGroups.uniform(5, 3)
    with pytest.raises(ValueError, match="feature map has 14 channels but the channel groups expect 15"):
        g.check(14)


def test_members_may_share_and_be_uneven():
    g = ChannelGroups.from_members([[0, 4], [4, 1, 2], [3]], 6)
    assert g.sizes == (2, 3, 1) and not g.is_contiguous
    idx, valid = g.padded_index
    assert idx.shape == (3, 3) and valid.sum() == 6
    assert g.to_dict()["members"][1] == [4, 1, 2]
    assert ChannelGroups.from_dict(g.to_dict()) == g
    with pytest.raises(ValueError, match="twice"):
        ChannelGroups.from_members([[1, 1]], 3)
    with pytest.raises(ValueError, match="outside"):
        ChannelGroups.from_members([[7]], 3)


def test_dict_round_trip_contiguous():
    g = ChannelGroups.split(2048, 200)
    assert ChannelGroups.from_dict(g.to_dict()) == g
    assert "10 x 152 + 11 x 48" in repr(g)
    assert torch.equal(g.owner()[:10], torch.zeros(10, dtype=torch.long))
