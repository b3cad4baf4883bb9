"""Batches put together from the arrays of one set (deepmd_tebd/data/batch.py): the batches of
every frame of a validation set cover each frame once, in stored order and chunks of at most
batch_atoms atoms, with the layout of the sampled training batches."""
import numpy as np
from test_data_system import write_system

from deepmd_tebd.data.batch import frame_chunks, whole_set_batches
from deepmd_tebd.data.data_system import DataSystem


def test_frame_chunks_cover_the_frames_in_pieces_of_batch_atoms():
    assert frame_chunks(5, 3, 7) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert frame_chunks(2, 10, 7) == [slice(0, 1), slice(1, 2)]


def test_whole_set_batches_hold_every_frame_once_in_the_training_layout(tmp_path):
    a = write_system(tmp_path / "a", [0, 1, 1], [5, 2], labels=("energy", "force"))
    b = write_system(tmp_path / "b", [1, 0], [3], nopbc=True)
    data = DataSystem([a, b], batch_size=1, type_map=["O", "H"], seed=1)
    labels = ["energy", "force", "virial"]
    batches = whole_set_batches(data, labels, batch_atoms=7)
    frames = [[0, 1], [2, 3], [4], [1000, 1001], [0, 1, 2]]  # the energy is the frame's number
    assert [batch["energy"].tolist() for batch in batches] == frames
    found = [(batch["find_force"], batch["find_virial"]) for batch in batches]
    assert found == [(1, 0)] * 4 + [(0, 0)]
    assert not batches[-1]["force"].any() and batches[-1]["default_mesh"].shape == (0,)
    assert batches[0]["natoms_vec"].tolist() == [3, 3, 1, 2]
    sampled = DataSystem([a, b], batch_size=1, type_map=["O", "H"], seed=1, labels=labels)
    for batch, drawn in ((batches[0], sampled.get_batch(0)), (batches[-1], sampled.get_batch(1))):
        assert sorted(batch) == sorted(drawn)
        for key, value in drawn.items():
            value, ours = np.asarray(value), np.asarray(batch[key])
            assert (ours.dtype, ours.shape[1:]) == (value.dtype, value.shape[1:]), key
