from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dglbs.data import images as images_module
from dglbs.data.images import (
    FASHION_MNIST_CLASSES,
    STL10_CLASSES,
    ImageDataset,
    channel_stats,
    collate,
    load_cifar10,
    load_cifar100,
    load_fashion_mnist,
    load_image_dataset,
    load_image_folder,
    load_mnist,
    load_stl10,
    read_idx,
)
from dglbs.data.paths import default_data_dir


def random_bytes(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_pickle(path: Path, content: dict) -> None:
    # The originals are Python 2 pickles whose keys load as bytes.
    with path.open("wb") as file:
        pickle.dump({key.encode(): value for key, value in content.items()}, file)


def write_cifar10(root: Path) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = random_bytes((13, 3072), 0)
    labels = [i % 10 for i in range(13)]
    for batch in range(5):
        rows = slice(2 * batch, 2 * batch + 2)
        write_pickle(folder / f"data_batch_{batch + 1}", {"data": data[rows], "labels": labels[rows]})
    write_pickle(folder / "test_batch", {"data": data[10:], "labels": labels[10:]})
    write_pickle(folder / "batches.meta", {"label_names": [f"c{i}".encode() for i in range(10)]})
    return data, labels


def test_cifar10_pickles_give_planar_rgb_images(tmp_path: Path) -> None:
    data, labels = write_cifar10(tmp_path)
    train = load_cifar10(tmp_path, "train")
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == labels[:10]
    # Each row holds the red, then green, then blue plane, row-major.
    assert train.images[3, 1, 5, 7] == data[3, 1024 + 5 * 32 + 7]
    assert train.classes == tuple(f"c{i}" for i in range(10))
    # The batch folder itself is accepted as the root too.
    test = load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert torch.equal(test.images, torch.from_numpy(data[10:]).view(3, 3, 32, 32))


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = random_bytes((4, 3072), 1)
    write_pickle(folder / "train", {"data": data, "fine_labels": [0, 99, 5, 7], "coarse_labels": [0, 19, 1, 2]})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                                   "coarse_label_names": [f"g{i}" for i in range(20)]})
    fine = load_cifar100(tmp_path, "train")
    coarse = load_cifar100(tmp_path, "train", label_kind="coarse")
    assert fine.labels.tolist() == [0, 99, 5, 7] and fine.num_classes == 100
    assert coarse.labels.tolist() == [0, 19, 1, 2] and coarse.classes[19] == "g19"
    assert torch.equal(fine.images, coarse.images)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path, "test")
    with pytest.raises(ValueError, match="label_kind"):
        load_cifar100(tmp_path, label_kind="medium")


def test_cifar_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_cifar10(tmp_path)
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path, "train")
    (folder / "test_batch").write_bytes(b"definitely not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(tmp_path, "test")
    write_pickle(folder / "test_batch", {"data": random_bytes((2, 100), 2), "labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(tmp_path, "validation")


def write_stl(folder: Path, split: str, images: np.ndarray, labels: np.ndarray | None) -> None:
    # STL-10 stores every channel column-major.
    (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
    if labels is not None:
        (folder / f"{split}_y.bin").write_bytes(labels.astype(np.uint8).tobytes())


def test_stl10_binary_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    train = random_bytes((2, 3, 96, 96), 3)
    unlabeled = random_bytes((3, 3, 96, 96), 4)
    write_stl(folder, "train", train, np.array([1, 10]))
    write_stl(folder, "unlabeled", unlabeled, None)

    loaded = load_stl10(tmp_path, "train")
    assert torch.equal(loaded.images, torch.from_numpy(train))
    assert loaded.labels.tolist() == [0, 9] and loaded.classes == STL10_CLASSES

    modes = []
    real_memmap = np.memmap

    def spy(*args, **kwargs):
        modes.append(kwargs.get("mode"))
        return real_memmap(*args, **kwargs)

    monkeypatch.setattr(images_module.np, "memmap", spy)
    pool = load_stl10(tmp_path, "unlabeled")
    assert modes == ["c"], "the unlabeled split must be memory-mapped"
    assert torch.equal(pool.images, torch.from_numpy(unlabeled))
    assert pool.labels.tolist() == [-1, -1, -1]
    batch, labels = collate([pool[2], pool[0]])
    assert torch.equal(batch, torch.from_numpy(unlabeled[[2, 0]])) and labels.tolist() == [-1, -1]


def test_stl10_errors(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="train_X.bin"):
        load_stl10(tmp_path, "train")
    (folder / "train_X.bin").write_bytes(bytes(3 * 96 * 96 + 5))
    with pytest.raises(ValueError, match="truncated"):
        load_stl10(tmp_path, "train")
    write_stl(folder, "train", random_bytes((2, 3, 96, 96), 5), np.array([1, 11]))
    with pytest.raises(ValueError, match="1..10"):
        load_stl10(tmp_path, "train")
    (folder / "train_y.bin").unlink()
    with pytest.raises(FileNotFoundError, match="train_y.bin"):
        load_stl10(tmp_path, "train")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, *, gzipped: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        name = f"{prefix}-{kind}-ubyte"
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (folder / name).write_bytes(idx_bytes(array))


def test_mnist_idx_gzipped_and_raw(tmp_path: Path) -> None:
    images, labels = random_bytes((3, 4, 5), 6), np.array([7, 0, 9])
    write_mnist(tmp_path, "train", images, labels, gzipped=True)
    write_mnist(tmp_path, "t10k", images[:2], labels[:2], gzipped=False)
    train = load_mnist(tmp_path, "train")
    assert train.images.shape == (3, 1, 4, 5)
    assert torch.equal(train.images[:, 0], torch.from_numpy(images))
    assert train.labels.tolist() == [7, 0, 9]
    test = load_fashion_mnist(tmp_path, "test")
    assert len(test) == 2 and test.classes == FASHION_MNIST_CLASSES
    assert test.name == "fashion-mnist-test"


def test_idx_corrupt_files(tmp_path: Path) -> None:
    good = idx_bytes(random_bytes((2, 3, 3), 7))
    (tmp_path / "magic").write_bytes(b"\x00\x00\x0d\x03" + good[4:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(good[:-4])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")


def test_bundled_fashion_mnist_test_split() -> None:
    test = load_fashion_mnist(split="test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.labels.bincount().tolist() == [1000] * 10
    assert test.image_size == (28, 28) and test.channels == 1
    same = load_image_dataset("fashion-mnist", default_data_dir() / "fashion-mnist", "test")
    assert torch.equal(same.images[:5], test.images[:5])


def test_named_datasets_are_read_from_the_data_folder_or_their_own_folder(tmp_path: Path) -> None:
    images, labels = random_bytes((3, 4, 5), 8), np.array([1, 2, 3])
    write_mnist(tmp_path / "data" / "mnist", "t10k", images, labels, gzipped=True)
    write_mnist(tmp_path / "data" / "fashion-mnist", "t10k", images[:2], labels[:2], gzipped=False)
    write_cifar10(tmp_path / "data")
    data = tmp_path / "data"
    assert len(load_image_dataset("mnist", data, "test")) == 3
    assert len(load_image_dataset("mnist", data / "mnist", "test")) == 3
    assert len(load_image_dataset("fashion-mnist", data, "test")) == 2
    assert len(load_image_dataset("cifar10", data, "test")) == 3
    with pytest.raises(FileNotFoundError, match=r"no mnist IDX files under .*: expected .*mnist/train-images-idx3-ubyte"
                                                r"\.gz' \(or train-images-idx3-ubyte\.gz directly in that folder\)"):
        load_image_dataset("mnist", data, "train")
    with pytest.raises(FileNotFoundError, match=r"root=.*nowhere' does not exist; pass the data folder"):
        load_image_dataset("cifar10", tmp_path / "nowhere")


def test_image_folder_by_name_finds_imagenet_or_the_split_folders_and_shows_the_layout(tmp_path: Path) -> None:
    save_image(tmp_path / "data" / "imagenet" / "val" / "cat" / "x.png", (1, 2, 3), (4, 4))
    save_image(tmp_path / "imagenet100" / "val" / "cat" / "x.png", (1, 2, 3), (4, 4))
    from_data = load_image_dataset("imagenet-folder", tmp_path / "data", "val")
    from_own = load_image_dataset("imagenet-folder", tmp_path / "imagenet100", "val")
    assert from_data.classes == from_own.classes == ("cat",) and torch.equal(from_data.images, from_own.images)
    with pytest.raises(FileNotFoundError, match=r"no train/ split for imagenet-folder under .*: expected "
                                                r"train/<class>/<image> files in '.*imagenet' or in .* itself"):
        load_image_dataset("imagenet-folder", tmp_path / "data", "train")


def save_image(path: Path, color: tuple[int, int, int], size: tuple[int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path)


def test_image_folder_tree(tmp_path: Path) -> None:
    root = tmp_path / "train"
    save_image(root / "dog" / "b.png", (0, 0, 255), (8, 8))
    save_image(root / "dog" / "a.png", (0, 255, 0), (8, 8))
    save_image(root / "cat" / "x.png", (128, 128, 128), (8, 8), mode="L")
    (root / "cat" / "notes.txt").write_text("not an image")
    dataset = load_image_folder(root)
    assert dataset.classes == ("cat", "dog")
    assert dataset.labels.tolist() == [0, 1, 1]
    assert dataset.images.shape == (3, 3, 8, 8)
    # Grey files become RGB; files within a class are sorted (a.png before b.png).
    assert dataset.images[0, :, 0, 0].tolist() == [128, 128, 128]
    assert dataset.images[1, :, 0, 0].tolist() == [0, 255, 0]
    reordered = load_image_folder(root, classes=["dog", "cat"])
    assert reordered.labels.tolist() == [0, 0, 1]
    via_name = load_image_dataset("imagenet-folder", tmp_path, "train", classes=["dog", "cat"])
    assert torch.equal(via_name.images, reordered.images)


def test_image_folder_resize_center_crop_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "val"
    picture = Image.new("RGB", (16, 8), (255, 0, 0))
    picture.paste((0, 0, 255), (8, 0, 16, 8))
    (root / "a").mkdir(parents=True)
    picture.save(root / "a" / "wide.png")
    save_image(root / "a" / "small.png", (0, 255, 0), (4, 4))
    with pytest.raises(ValueError, match="different sizes"):
        load_image_folder(root)
    dataset = load_image_folder(root, size=8, num_workers=2)
    assert dataset.images.shape == (2, 3, 8, 8)
    # Shorter side already 8: the central 8 columns are 4 red then 4 blue.
    assert dataset.images[1, 0, 0].tolist() == [255] * 4 + [0] * 4
    assert dataset.images[1, 2, 0].tolist() == [0] * 4 + [255] * 4
    (root / "a" / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image_folder(root, size=8)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(root, classes=["a", "b"])
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(root / "a")


def test_image_dataset_collate_and_stats() -> None:
    pixels = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    pixels[..., 1] = 255
    dataset = ImageDataset(pixels, torch.tensor([0, 1, 1, 2]), classes=["a", "b", "c"])
    image, label = dataset[3]
    assert image.shape == (3, 2, 2) and label == 2
    batch, labels = collate([dataset[1], dataset[0]])
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 2, 2) and labels.tolist() == [1, 0]
    mean, std = channel_stats(pixels)
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.5164,) * 3, abs=1e-3)
    part = dataset.subset([2, 0])
    assert part.labels.tolist() == [1, 0] and part.classes == dataset.classes
    with pytest.raises(TypeError, match="uint8"):
        ImageDataset(pixels.float(), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        ImageDataset(pixels, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="channels"):
        ImageDataset(torch.zeros(1, 2, 2, 2, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ValueError, match="name must be one of"):
        load_image_dataset("svhn")
