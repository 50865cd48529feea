"""Image classification sets by tfds name: `cifar10`, `imagenet2012`, `imagenette`.

- Offline: CIFAR-10 from `DATA_DIR/cifar10_jpg/cifar10_jpg.tar` (the images as JPEG
  files in `<split>/<class>/` folders, `../shared/data/README.md`), decoded once into
  ArrayRecord files (`image_folder`) and read by index; no network, no TensorFlow.
- Otherwise tfds: the split read by index from the ArrayRecord files tfds prepares
  (`tfds.data_source`, downloaded and prepared by tfds when needed; ImageNet needs its
  manual download, see tfds's `imagenet2012` page).

Every image of a batch must have one size: sets whose images vary (ImageNet,
Imagenette) are resized on read, shorter side to `config.data.image_size` (bilinear),
then centre-cropped to `image_size` x `image_size`; augmentation (a random-resized crop,
`config.data.host_crop_scale`) then works on that square.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bigjax.datasets import image_folder, local_files, tfds_builders
from bigjax.datasets.record_files import RecordDataset
from bigjax.datasets.tfds_source import TfdsDataset


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """A tfds image classification set: its classes, splits, and offline copy (if any)."""

    num_classes: int
    splits: tuple[str, ...]
    fixed_size: bool  # every image the same size (no resize on read)
    offline: tuple[str, str] | None = None  # (folder under DATA_DIR, tar file in it)


SETS = {
    "cifar10": ImageSet(10, ("train", "test"), True, ("cifar10_jpg", "cifar10_jpg.tar")),
    "imagenet2012": ImageSet(1000, ("train", "validation"), False),
    "imagenette": ImageSet(10, ("train", "validation"), False),
}
NAMES = tuple(SETS)


class ResizeAndCentreCrop:
    """`example -> example` with its `image: uint8 [h, w, c]` resized (shorter side to
    `size`, bilinear) and centre-cropped to `[size, size, c]` (picklable, for workers)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        image = np.asarray(image, np.uint8)
        h, w = image.shape[:2]
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        resized = np.asarray(pil.resize((new_w, new_h), Image.BILINEAR), np.uint8)
        resized = resized.reshape(new_h, new_w, image.shape[-1])
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        return resized[top:top + self.size, left:left + self.size]


def load(name: str, split: str, data_dir: str | None, prepared_dir: str,
         image_size: int | None = None) -> RecordDataset | TfdsDataset:
    """Split `split` of image set `name`, read by index."""
    spec = SETS[name]
    local_files.check_split(name, split, spec.splits)
    if spec.offline is not None:
        folder = local_files.local_folder(spec.offline[0], [spec.offline[1]], data_dir)
        if folder is not None:
            data = image_folder.load(split, f"{folder}/{spec.offline[1]}", prepared_dir)
            if data.num_classes != spec.num_classes:
                raise ValueError(f"{folder}/{spec.offline[1]} holds {data.num_classes} class "
                                 f"folders; {name} has {spec.num_classes}.")
            return data
    resize = None
    if not spec.fixed_size:
        if not image_size:
            raise ValueError(f"{name}'s images vary in size: set config.data.image_size (e.g. "
                             "224) to resize and centre-crop them on read.")
        resize = ResizeAndCentreCrop(image_size)
    return TfdsDataset(_tfds_source(name, split), name, spec.num_classes,
                       {"image": ("image", np.uint8), "label": ("label", np.int32)},
                       transforms={"image": resize} if resize else None)


def _tfds_source(name: str, split: str):
    spec = SETS[name]
    return tfds_builders.prepared_split(name, split, f"{spec.offline[0]}/{spec.offline[1]}"
                                        if spec.offline else f"tfds's prepared {name}")[1]
