import numpy as np
import pytest

from etl.codes import Codes, unique_rows


@pytest.mark.parametrize("words", [1, 2])
def test_codes_are_stable_across_batches_and_the_table_grows(words):
    rng = np.random.default_rng(0)
    codes = Codes(words)
    for distinct in [3, 50, 1_000, 5_000, 20_000]:  # the table grows past a quarter full several times
        keys = (rng.integers(0, distinct, (8_000, 1)) * np.arange(1, words + 1) * 0x10001).astype("<u8")
        keys[:3] = 0  # key 0 is a key like any other (an empty slot holds 0 too)
        got = codes.codes(keys)
        assert got.dtype == np.int32
        assert (codes.keys[got] == keys).all()  # each code names its key
    assert len(np.unique(codes.keys, axis=0)) == len(codes)  # one code per key
    pair = np.array([[0] * words, [2**64 - 1] * words], "<u8")
    first = codes.codes(pair)
    assert codes.codes(pair[::-1]).tolist() == first[::-1].tolist()


def test_keys_differing_in_one_word_are_different_keys():
    codes = Codes(2)
    keys = np.array([[1, 2], [1, 3], [2, 2], [1, 2]], "<u8")
    assert codes.codes(keys).tolist() == [0, 1, 2, 0]


def test_keys_that_share_a_home_slot_get_their_own_codes():
    codes = Codes()
    # Keys whose hashes agree in their top bits land in one slot and are probed past each other.
    home = codes._slots(np.arange(100_000, dtype="<u8").reshape(-1, 1))
    crowded = np.flatnonzero(home == home[0])[:6].astype("<u8").reshape(-1, 1)
    assert len(crowded) == 6
    got = codes.codes(np.concatenate([crowded, crowded[::-1], crowded]))
    assert got.tolist() == [*range(6), *range(5, -1, -1), *range(6)]
    assert codes.codes(crowded).tolist() == list(range(6))


def test_keys_of_two_bytes_index_the_table_directly():
    codes = Codes(1, key_bits=16)
    keys = np.array([[0], [65535], [12336], [0], [65535]], "<u8")
    assert codes.codes(keys).tolist() == [0, 1, 2, 0, 1]  # new keys coded in order of first appearance
    every = np.arange(65536, dtype="<u8").reshape(-1, 1)
    got = codes.codes(every)
    assert (codes.keys[got] == every).all() and len(codes) == 65536


@pytest.mark.parametrize("words", [1, 2])
def test_distinct_keys_come_in_order_of_first_appearance(words):
    rng = np.random.default_rng(1)
    runs = np.repeat(np.array([7, 3, 7, 0, 9, 3], "<u8"), [5, 1, 4, 2, 3, 6])  # a field in runs, as DBFs hold
    scattered = rng.integers(0, 500, 20_000).astype("<u8")
    for column in (runs, scattered):
        keys = np.stack([column * (w + 1) for w in range(words)], axis=1)
        seen = list(dict.fromkeys(map(tuple, keys.tolist())))
        assert unique_rows(keys).tolist() == [list(k) for k in seen]
    assert unique_rows(np.zeros((0, words), "<u8")).shape == (0, words)
