import numpy as np

from etl.codes import Codes


def test_codes_are_stable_across_batches_and_the_table_grows():
    rng = np.random.default_rng(0)
    codes = Codes()
    for distinct in [3, 50, 1_000, 5_000, 20_000]:  # the table grows past a quarter full several times
        keys = (rng.integers(0, distinct, 8_000) * 0x10001).astype("<u8")
        keys[:3] = 0  # key 0 is a key like any other (an empty slot holds 0 too)
        got = codes.codes(keys)
        assert got.dtype == np.int32
        assert (codes.keys[got] == keys).all()  # each code names its key
    assert len(np.unique(codes.keys)) == len(codes)  # one code per key
    first = codes.codes(np.array([0, 2**64 - 1], "<u8"))
    assert codes.codes(np.array([2**64 - 1, 0], "<u8")).tolist() == first[::-1].tolist()


def test_keys_that_share_a_home_slot_get_their_own_codes():
    codes = Codes()
    # Keys whose hashes agree in their top bits land in one slot and are probed past each other.
    home = codes._slots(np.arange(100_000, dtype="<u8"))
    crowded = np.flatnonzero(home == home[0])[:6].astype("<u8")
    assert len(crowded) == 6
    got = codes.codes(np.concatenate([crowded, crowded[::-1], crowded]))
    assert got.tolist() == [*range(6), *range(5, -1, -1), *range(6)]
    assert codes.codes(crowded).tolist() == list(range(6))
