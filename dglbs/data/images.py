"""Image datasets read from their standard on-disk formats; nothing is ever downloaded.

Every reader returns an :class:`ImageDataset`: uint8 images of shape ``(N, C, H, W)``
and int64 labels ``(N,)`` (``-1`` where a split has no labels). Augmentation and
conversion to float happen later, batched on the training device, so the collate
function (:func:`collate`) only stacks uint8 tensors.

Formats:

- CIFAR-10 / CIFAR-100: the python pickle batches (``cifar-10-batches-py/``,
  ``cifar-100-python/``); unpickling can run code, so read only trusted copies.
- STL-10: the binary files (``stl10_binary/{train,test}_{X,y}.bin``,
  ``unlabeled_X.bin``); the 2.7 GB unlabeled split is memory-mapped.
- MNIST / Fashion-MNIST: IDX files, gzipped or raw (Fashion-MNIST is bundled in
  ``<data dir>/fashion-mnist``).
- ImageNet-style trees: ``<split>/<class>/<image>``, decoded with Pillow (the
  ``vision`` extra installs it).

Loaded by name (:func:`load_image_dataset`), every dataset is looked up the same
way: ``root`` is the data folder that holds the dataset's folder
(:data:`DATASET_FOLDERS`, e.g. ``<root>/cifar-10-batches-py``) or that folder
itself; without ``root``, the default data folder of :mod:`dglbs.data.paths`.
"""
from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .._checks import check_int
from .paths import default_data_dir

DATASET_FOLDERS = {
    "fashion-mnist": "fashion-mnist",
    "mnist": "mnist",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "stl10": "stl10_binary",
    "imagenet-folder": "imagenet",
}
"""Each dataset's folder in a data folder (its archive's folder name where it has one)."""

DATASETS = tuple(DATASET_FOLDERS)
"""Names :func:`load_image_dataset` takes."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
"""File endings :func:`load_image_folder` decodes; other files are ignored."""

STL10_SIZE = 96
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


class ImageDataset:
    """Images and labels held as tensors; ``dataset[i]`` is ``(image, label)``.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
        May be a view of a memory-mapped file; items are read on access.
    labels : Tensor of shape (N,), int64
        Class indices, ``-1`` for unlabeled images.
    classes : sequence of str, optional
        Class names, indexed by label.
    name : str
        Shown by ``repr``.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, *, classes: Sequence[str] | None = None, name: str = "images"
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(
                "images must be a uint8 tensor of shape (N, C, H, W), got "
                f"{getattr(images, 'dtype', type(images).__name__)} of shape {tuple(getattr(images, 'shape', ()))}"
            )
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels, got shape {tuple(images.shape)}")
        labels = torch.as_tensor(labels)
        if labels.dtype != torch.int64 or labels.shape != (len(images),):
            raise ValueError(
                f"labels must be an int64 tensor of shape ({len(images)},), got {labels.dtype} of shape "
                f"{tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels
        self.classes = tuple(classes) if classes is not None else None
        if self.classes is not None and len(labels) and int(labels.max()) >= len(self.classes):
            raise ValueError(f"labels go up to {int(labels.max())} but only {len(self.classes)} classes are named")
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Image ``index`` as a uint8 tensor ``(C, H, W)`` and its label."""
        return self.images[index], int(self.labels[index])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def num_classes(self) -> int:
        """Number of named classes, else the largest label + 1 (0 if unlabeled)."""
        if self.classes is not None:
            return len(self.classes)
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageDataset:
        """The images at ``indices``, copied into memory."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(self.images[indices], self.labels[indices], classes=self.classes, name=self.name)

    def __repr__(self) -> str:
        height, width = self.image_size
        return (f"ImageDataset({self.name!r}, {len(self)} images, {self.channels}x{height}x{width}, "
                f"{self.num_classes} classes)")


def collate(items: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image, label)`` items into uint8 images ``(B, C, H, W)`` and int64 labels ``(B,)``."""
    images, labels = zip(*items)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def channel_stats(images: torch.Tensor, *, max_images: int = 10_000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of pixel values scaled to ``[0, 1]``.

    Parameters
    ----------
    images : Tensor of shape (N, C, H, W), uint8
    max_images : int
        At most this many evenly spaced images are read (cheap on memory-mapped data).

    Returns
    -------
    (mean, std) : pair of tuples of C floats
    """
    check_int("max_images", max_images, low=1)
    if images.dtype != torch.uint8 or images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 (N, C, H, W) tensor, got {images.dtype} "
                         f"of shape {tuple(images.shape)}")
    picked = torch.linspace(0, len(images) - 1, min(max_images, len(images))).long()
    pixels = images[picked].transpose(0, 1).reshape(images.shape[1], -1).double() / 255.0
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())


def _root(root: str | Path | None) -> Path:
    path = default_data_dir() if root is None else Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"root={str(path)!r} does not exist; pass the data folder that holds the "
                                "dataset's folder, or that folder itself")
    return path


def _dataset_folder(root: str | Path | None, folder: str, markers: Sequence[str], what: str) -> Path:
    """``root/folder`` or ``root`` itself, whichever holds one of ``markers`` (first found)."""
    root = _root(root)
    for candidate in (root / folder, root):
        if any((candidate / marker).exists() for marker in markers):
            return candidate
    raise FileNotFoundError(
        f"no {what} under {str(root)!r}: expected {str(root / folder / markers[0])!r} (or {markers[0]} directly "
        f"in that folder); unpack the original archive there (this library never downloads data)"
    )


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def _unpickle(path: Path) -> dict[str, object]:
    """A CIFAR batch as a dict with str keys (the originals are Python 2 pickles with bytes keys)."""
    try:
        with path.open("rb") as file:
            content = pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as error:
        raise ValueError(
            f"{str(path)!r} is not a readable CIFAR pickle batch ({error}); re-extract the archive"
        ) from error
    if not isinstance(content, dict):
        raise ValueError(f"{str(path)!r} holds a {type(content).__name__}, expected a CIFAR batch dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}


def _cifar_arrays(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"{str(path)!r} lacks the 'data' or {label_key!r} entry of a CIFAR batch; "
                         f"found keys {sorted(batch)}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{str(path)!r}: data must be (n, 3072) with n labels, got data {data.shape} and "
                         f"{len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(meta: Path, key: str) -> list[str] | None:
    """Class names from a CIFAR meta file, if it is there."""
    names = _unpickle(meta).get(key) if meta.is_file() else None
    return None if names is None else [name.decode() if isinstance(name, bytes) else str(name) for name in names]


def _cifar(paths: list[Path], label_key: str, classes: Sequence[str] | None, name: str) -> ImageDataset:
    arrays = [_cifar_arrays(path, label_key) for path in paths]
    images = torch.from_numpy(np.concatenate([images for images, _ in arrays]))
    labels = torch.from_numpy(np.concatenate([labels for _, labels in arrays]))
    return ImageDataset(images, labels, classes=classes, name=name)


def load_cifar10(root: str | Path | None = None, split: str = "train") -> ImageDataset:
    """CIFAR-10 from its python pickle batches.

    Parameters
    ----------
    root : str or Path, optional
        Folder holding ``cifar-10-batches-py/`` (or that folder itself); default
        :func:`~dglbs.data.paths.default_data_dir`.
    split : {"train", "test"}
        ``data_batch_1`` … ``data_batch_5`` (50,000 images) or ``test_batch`` (10,000).

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 3, 32, 32)``, labels in ``[0, 10)``.
    """
    _check_split(split, ("train", "test"))
    folder = _dataset_folder(root, DATASET_FOLDERS["cifar10"], ("test_batch",), "CIFAR-10 python batches")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 folder {str(folder)!r} lacks {missing}; re-extract the archive")
    classes = _class_names(folder / "batches.meta", "label_names") or CIFAR10_CLASSES
    return _cifar([folder / name for name in names], "labels", classes, f"cifar10-{split}")


def load_cifar100(root: str | Path | None = None, split: str = "train", *, label_kind: str = "fine") -> ImageDataset:
    """CIFAR-100 from its python pickle files.

    Parameters
    ----------
    root : str or Path, optional
        Folder holding ``cifar-100-python/`` (or that folder itself).
    split : {"train", "test"}
    label_kind : {"fine", "coarse"}
        100 classes or the 20 super-classes.

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 3, 32, 32)``.
    """
    _check_split(split, ("train", "test"))
    if label_kind not in ("fine", "coarse"):
        raise ValueError(f"label_kind must be 'fine' or 'coarse', got {label_kind!r}")
    folder = _dataset_folder(root, DATASET_FOLDERS["cifar100"], (split,), "CIFAR-100 python files")
    classes = _class_names(folder / "meta", f"{label_kind}_label_names")
    return _cifar([folder / split], f"{label_kind}_labels", classes, f"cifar100-{split}")


def _read_stl_images(path: Path, *, memory_map: bool) -> torch.Tensor:
    image_bytes = 3 * STL10_SIZE * STL10_SIZE
    size = path.stat().st_size
    if size == 0 or size % image_bytes:
        raise ValueError(f"{str(path)!r} has {size} bytes, not a positive multiple of {image_bytes} "
                         "(one 3x96x96 STL-10 image); the file is truncated or not an STL-10 image file")
    count = size // image_bytes
    # Copy-on-write mapping: pages are read on access and the tensor is writable
    # (torch warns on read-only arrays) without ever touching the file.
    raw = np.memmap(path, dtype=np.uint8, mode="c", shape=(count, 3, STL10_SIZE, STL10_SIZE)) if memory_map \
        else np.fromfile(path, dtype=np.uint8).reshape(count, 3, STL10_SIZE, STL10_SIZE)
    # STL-10 stores each channel column-major.
    return torch.from_numpy(raw).transpose(2, 3)


def load_stl10(root: str | Path | None = None, split: str = "train") -> ImageDataset:
    """STL-10 from its binary files.

    Parameters
    ----------
    root : str or Path, optional
        Folder holding ``stl10_binary/`` (or that folder itself).
    split : {"train", "test", "unlabeled"}
        5,000 / 8,000 labelled images, or the 100,000 unlabeled ones, which are
        memory-mapped (labels ``-1``); items are read from disk when accessed.

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 3, 96, 96)``, labels in ``[0, 10)`` (the files store 1-10).
    """
    _check_split(split, ("train", "test", "unlabeled"))
    folder = _dataset_folder(root, DATASET_FOLDERS["stl10"], (f"{split}_X.bin",), f"STL-10 binary {split} split")
    images = _read_stl_images(folder / f"{split}_X.bin", memory_map=split == "unlabeled")
    if split == "unlabeled":
        labels = torch.full((len(images),), -1, dtype=torch.int64)
    else:
        label_path = folder / f"{split}_y.bin"
        if not label_path.is_file():
            raise FileNotFoundError(f"STL-10 labels {str(label_path)!r} are missing; re-extract the archive")
        raw = np.fromfile(label_path, dtype=np.uint8)
        if len(raw) != len(images) or len(raw) and (raw.min() < 1 or raw.max() > len(STL10_CLASSES)):
            raise ValueError(f"{str(label_path)!r} must hold {len(images)} labels in 1..10, got {len(raw)} values "
                             f"in [{raw.min() if len(raw) else '-'}, {raw.max() if len(raw) else '-'}]")
        labels = torch.from_numpy(raw.astype(np.int64) - 1)
    return ImageDataset(images, labels, classes=STL10_CLASSES, name=f"stl10-{split}")


IDX_TYPES = {0x08: np.uint8}
"""IDX element types read here (image and label files are unsigned bytes)."""


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format), gzipped (``.gz``) or raw, as a numpy array.

    Raises
    ------
    ValueError
        On a bad magic number, an unsupported element type, or a size that does not
        match the header (truncated or corrupt file).
    """
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as file:
            content = file.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read IDX file {str(path)!r} ({error}); the file is corrupt or truncated") from error
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in IDX_TYPES:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file (bad magic number {content[:4].hex()})")
    ndim = content[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(content[4:header], dtype=">u4"))
    if len(shape) != ndim or len(content) - header != int(np.prod(shape)):
        raise ValueError(f"{str(path)!r}: header says shape {shape} but the file holds {len(content) - header} "
                         "values after it; the file is truncated or corrupt")
    return np.frombuffer(content, dtype=IDX_TYPES[content[2]], offset=header).reshape(shape)


def _idx_stem(split: str, kind: str) -> str:
    """``{train,t10k}-{images-idx3,labels-idx1}-ubyte``."""
    return f"{'train' if split == 'train' else 't10k'}-{kind}-ubyte"


def _idx_folder(root: str | Path | None, name: str, split: str) -> Path:
    """The folder of a named MNIST-format dataset: ``root/<its folder>`` or ``root``."""
    stem = _idx_stem(split, "images-idx3")
    return _dataset_folder(root, DATASET_FOLDERS[name], (f"{stem}.gz", stem), f"{name} IDX files")


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"neither {str(folder / stem)!r}.gz nor the raw file exists; put the IDX files there")


def load_mnist(root: str | Path, split: str = "train", *, classes: Sequence[str] | None = None,
               name: str = "mnist") -> ImageDataset:
    """MNIST-format IDX files: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Parameters
    ----------
    root : str or Path
        Folder holding the four files.
    split : {"train", "test"}
    classes : sequence of str, optional
        Class names (default: the digits).

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 1, H, W)`` (28 x 28 for MNIST).
    """
    _check_split(split, ("train", "test"))
    folder = _root(root)
    images = read_idx(_idx_file(folder, _idx_stem(split, "images-idx3")))
    labels = read_idx(_idx_file(folder, _idx_stem(split, "labels-idx1")))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{str(folder)!r}: expected images (N, H, W) and N labels, got {images.shape} and "
                         f"{labels.shape}")
    classes = tuple(str(digit) for digit in range(10)) if classes is None else classes
    if len(labels) and labels.max() >= len(classes):
        raise ValueError(f"{str(folder)!r}: label {labels.max()} is out of range for {len(classes)} classes")
    return ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                        classes=classes, name=f"{name}-{split}")


def load_fashion_mnist(root: str | Path | None = None, split: str = "train") -> ImageDataset:
    """Fashion-MNIST (bundled: ``<data dir>/fashion-mnist``); see :func:`load_mnist`.

    Parameters
    ----------
    root : str or Path, optional
        The data folder holding ``fashion-mnist/``, or the folder of the IDX files.
    split : {"train", "test"}

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 1, 28, 28)``: 60,000 train or 10,000 test, 10 classes.
    """
    _check_split(split, ("train", "test"))
    folder = _idx_folder(root, "fashion-mnist", split)
    return load_mnist(folder, split, classes=FASHION_MNIST_CLASSES, name="fashion-mnist")


def _decode(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None:
                # Shorter side to `size`, then the central square, as ImageNet evaluation does.
                scale = size / min(image.size)
                width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
                image = image.resize((width, height), Image.Resampling.BICUBIC)
                left, top = (width - size) // 2, (height - size) // 2
                image = image.crop((left, top, left + size, top + size))
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot decode image {str(path)!r} ({error}); remove or replace the file") from error


def load_image_folder(
    root: str | Path,
    *,
    size: int | None = None,
    classes: Sequence[str] | None = None,
    num_workers: int = 1,
) -> ImageDataset:
    """An ImageNet-style tree ``root/<class name>/<image file>`` (e.g. ImageNet-100 ``train/``).

    Parameters
    ----------
    root : str or Path
        One folder per class; files ending in :data:`IMAGE_EXTENSIONS` are decoded
        (as RGB), others ignored.
    size : int, optional
        Resize the shorter side to ``size`` and keep the central ``size x size``
        square. Without it all images must already share one size.
    classes : sequence of str, optional
        Class folder names in label order (pass the training split's ``classes`` when
        loading its validation split). Default: the sub-folders of ``root``, sorted.
    num_workers : int
        Threads decoding images.

    Returns
    -------
    ImageDataset
        uint8 images ``(N, 3, size, size)``, files in sorted order within each class.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if size is not None:
        check_int("size", size, low=1)
    check_int("num_workers", num_workers, low=1)
    if classes is None:
        classes = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
    classes = tuple(classes)
    if not classes:
        raise ValueError(f"{str(root)!r} has no class sub-folders; expected root/<class>/<image> files")
    files, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"class folder {str(folder)!r} is missing")
        found = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS)
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(f"{str(root)!r} holds no image files ending in {IMAGE_EXTENSIONS}")
    with ThreadPoolExecutor(num_workers) as pool:
        arrays = list(pool.map(lambda path: _decode(path, size), files))
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images in {str(root)!r} have different sizes ({sorted(shapes)[:3]}...); pass size= to "
                         "resize and center-crop them to one square size")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), classes=classes, name=root.name)




def load_image_dataset(name: str, root: str | Path | None = None, split: str = "train", *,
                       size: int | None = None, num_workers: int = 1,
                       classes: Sequence[str] | None = None) -> ImageDataset:
    """Any supported dataset by name.

    Parameters
    ----------
    name : one of :data:`DATASETS`
    root : str or Path, optional
        The data folder holding the dataset's folder (:data:`DATASET_FOLDERS`), or
        that folder itself; default :func:`~dglbs.data.paths.default_data_dir`. For
        ``"imagenet-folder"`` the dataset's folder holds one sub-folder per split
        (``train/``, ``val/``), each ``<class>/<image>``.
    split : str
        ``"train"`` / ``"test"``; STL-10 also ``"unlabeled"``; any sub-folder name
        for ``"imagenet-folder"``.
    size, num_workers, classes
        Only for ``"imagenet-folder"``; see :func:`load_image_folder`.
    """
    if name == "fashion-mnist":
        return load_fashion_mnist(root, split)
    if name == "mnist":
        _check_split(split, ("train", "test"))
        return load_mnist(_idx_folder(root, "mnist", split), split)
    if name == "cifar10":
        return load_cifar10(root, split)
    if name == "cifar100":
        return load_cifar100(root, split)
    if name == "stl10":
        return load_stl10(root, split)
    if name == "imagenet-folder":
        return load_image_folder(_image_folder_split(root, split), size=size, classes=classes,
                                 num_workers=num_workers)
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")


def _image_folder_split(root: str | Path | None, split: str) -> Path:
    """``<root>/imagenet/<split>`` or ``<root>/<split>``, with an error that shows the layout."""
    data = _root(root)
    for folder in (data / DATASET_FOLDERS["imagenet-folder"], data):
        if (folder / split).is_dir():
            return folder / split
    raise FileNotFoundError(
        f"no {split}/ split for imagenet-folder under {str(data)!r}: expected {split}/<class>/<image> files in "
        f"{str(data / DATASET_FOLDERS['imagenet-folder'])!r} or in {str(data)!r} itself "
        "(e.g. imagenet/train/n01440764/x.JPEG, one folder per class)"
    )
