"""Dataset readers on tiny fixtures written in the real layouts, bad input, and the real data."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalsuite.data import READERS, get_reader
from evalsuite.data.custom import read_image_folder, read_labelled_csv
from evalsuite.data.deepfashion import read_deepfashion
from evalsuite.data.fmnist import CLASS_NAMES, read_fashion_mnist
from evalsuite.errors import DataError, SpecError

# --- registry ---------------------------------------------------------------------------------


def test_registry_names_every_reader() -> None:
    assert set(READERS) == {
        "fashion_mnist",
        "deepfashion",
        "image_folder",
        "labelled_csv",
        "catalogue",
        "styles_catalogue",
        "webdataset",
        "pairs_csv",
        "hf_imagefolder",
        "hf_dataset",
    }
    assert get_reader("fashion_mnist") is read_fashion_mnist
    assert get_reader("labelled_csv") is read_labelled_csv


def test_unknown_reader_lists_known_and_suggests() -> None:
    with pytest.raises(SpecError) as info:
        get_reader("fashion-mnist")
    message = str(info.value)
    assert "'fashion-mnist'" in message
    assert "catalogue, deepfashion, fashion_mnist, hf_dataset, hf_imagefolder" in message
    assert "Did you mean 'fashion_mnist'" in message


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="label_colum"):
        read_image_folder(tmp_path, label_colum="x")


# --- Fashion-MNIST ----------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int, count: int | None = None) -> bytes:
    """An IDX file: big-endian magic, dimension sizes (count first), then the bytes."""
    shape = (len(array) if count is None else count, *array.shape[1:])
    return np.array([magic, *shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()


def write_idx(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_fmnist(folder: Path, n: int = 12, prefix: str = "t10k", gz: bool = True) -> np.ndarray:
    """Images whose first pixel is the index, labels index % 10; returns the images."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    write_idx(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images, 2051), gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(np.arange(n) % 10, 2049), gz)
    return images


@pytest.mark.parametrize("gz", [True, False])
def test_fmnist_reads_gzipped_and_plain_files(tmp_path: Path, gz: bool) -> None:
    images = write_fmnist(tmp_path, n=12, gz=gz)
    items = read_fashion_mnist(tmp_path)
    assert len(items) == 12
    assert items[3].id == "fmnist-test-000003"
    assert items[3].fields == {"label": "Dress", "label_index": "3"}
    assert items[11].fields["label"] == CLASS_NAMES[1] == "Trouser"
    assert items[5].pixels is not None and items[5].pixels.shape == (28, 28)
    assert items[5].pixels.dtype == np.uint8
    np.testing.assert_array_equal(items[5].pixels, images[5])
    assert items[0].path is None


def test_fmnist_train_split_and_header_count(tmp_path: Path) -> None:
    write_fmnist(tmp_path, n=7, prefix="train", gz=False)
    items = read_fashion_mnist(tmp_path, split="train")
    assert [item.id for item in items][-1] == "fmnist-train-000006"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        read_fashion_mnist(tmp_path, split="test")


def test_fmnist_header_count_wins_over_trailing_bytes(tmp_path: Path) -> None:
    images = np.zeros((5, 28, 28), np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(images, 2051, count=3), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.arange(3), 2049), gz=True)
    assert len(read_fashion_mnist(tmp_path)) == 3


def test_fmnist_truncated_images_file(tmp_path: Path) -> None:
    images = np.zeros((10, 28, 28), np.uint8)
    data = idx_bytes(images, 2051)[:-100]
    write_idx(tmp_path / "t10k-images-idx3-ubyte", data, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.arange(10) % 10, 2049), gz=True)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*shorter than its header"):
        read_fashion_mnist(tmp_path)


def test_fmnist_truncated_gzip_stream(tmp_path: Path) -> None:
    write_fmnist(tmp_path, n=12, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        read_fashion_mnist(tmp_path)


def test_fmnist_label_count_mismatch(tmp_path: Path) -> None:
    write_fmnist(tmp_path, n=12, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.arange(11) % 10, 2049), gz=False)
    with pytest.raises(DataError, match="11 labels but t10k-images-idx3-ubyte has 12 images"):
        read_fashion_mnist(tmp_path)


def test_fmnist_wrong_magic_and_bad_label(tmp_path: Path) -> None:
    write_fmnist(tmp_path, n=4, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.array([1, 2, 3, 4]), 2051))
    with pytest.raises(DataError, match="magic number is 2051, expected 2049"):
        read_fashion_mnist(tmp_path)
    labels.write_bytes(idx_bytes(np.array([1, 2, 10, 4]), 2049))
    with pytest.raises(DataError, match="label 10 at index 2"):
        read_fashion_mnist(tmp_path)


def test_fmnist_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_fashion_mnist(tmp_path / "nope")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        read_fashion_mnist(tmp_path)
    with pytest.raises(DataError, match="unknown split"):
        read_fashion_mnist(tmp_path, split="val")


def test_fmnist_real_test_set(fmnist_dir: Path) -> None:
    items = get_reader("fashion_mnist")(fmnist_dir)
    assert len(items) == 4443
    counts = Counter(int(item.fields["label_index"]) for item in items)
    assert [counts[k] for k in range(10)] == [452, 429, 470, 437, 458, 428, 435, 452, 467, 415]
    # The official test set starts: Ankle boot, Pullover, Trouser, Trouser, Shirt.
    assert [int(item.fields["label_index"]) for item in items[:5]] == [9, 2, 1, 1, 6]
    assert items[0].fields["label"] == "Ankle boot"
    assert items[0].pixels is not None and items[0].pixels.shape == (28, 28)
    assert 0 < items[0].pixels.mean() < 255
    assert items[-1].id == "fmnist-test-004442"


# --- DeepFashion ------------------------------------------------------------------------------

CATEGORIES = [("Blouse", 1), ("Jeans", 2), ("Dress", 3)]
IMAGES = [
    ("img/Sheer_Blouse/img_00000001.jpg", 1, "train"),
    ("img/Sheer_Blouse/img_00000002.jpg", 1, "test"),
    ("img/Skinny_Jeans/img_00000001.jpg", 2, "val"),
    ("img/Skinny_Jeans/img_00000002.jpg", 2, "test"),
    ("img/Maxi_Dress/img_00000001.jpg", 3, "test"),
]


def listing(header: str, rows: list[str]) -> str:
    return f"{len(rows)}\n{header}\n" + "\n".join(rows) + "\n"


def write_deepfashion(root: Path, flat: bool = False) -> Path:
    """A miniature Category-and-Attribute tree; names are padded with runs of spaces."""
    anno, evaluation = (root, root) if flat else (root / "Anno", root / "Eval")
    anno.mkdir(parents=True, exist_ok=True)
    evaluation.mkdir(parents=True, exist_ok=True)
    cloth = [f"{name:<28}{kind}" for name, kind in CATEGORIES]
    (anno / "list_category_cloth.txt").write_text(listing("category_name  category_type", cloth))
    labels = [f"{name:<60}{label}" for name, label, _ in IMAGES]
    (anno / "list_category_img.txt").write_text(listing("image_name  category_label", labels))
    statuses = [f"{name:<60}{status}" for name, _, status in IMAGES]
    (evaluation / "list_eval_partition.txt").write_text(
        listing("image_name  evaluation_status", statuses)
    )
    return root


@pytest.mark.parametrize("flat", [False, True])
def test_deepfashion_reads_test_split(tmp_path: Path, flat: bool) -> None:
    root = write_deepfashion(tmp_path, flat=flat)
    items = get_reader("deepfashion")(root)
    assert [item.id for item in items] == [IMAGES[1][0], IMAGES[3][0], IMAGES[4][0]]
    assert items[0].fields == {"category": "Blouse", "category_type": "upper"}
    assert items[1].fields == {"category": "Jeans", "category_type": "lower"}
    assert items[2].fields == {"category": "Dress", "category_type": "full"}
    assert items[2].path == root / "img/Maxi_Dress/img_00000001.jpg"


def test_deepfashion_other_splits(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    assert [item.fields["category"] for item in read_deepfashion(root, "val")] == ["Jeans"]
    assert len(read_deepfashion(root, "train")) == 1
    assert len(read_deepfashion(root, None)) == 5
    with pytest.raises(DataError, match="unknown split"):
        read_deepfashion(root, "dev")


def test_deepfashion_missing_file_names_layout(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    (root / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(DataError, match=r"list_eval_partition\.txt.*expected the DeepFashion"):
        read_deepfashion(root)


def test_deepfashion_malformed_row_names_line(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    path = root / "Anno" / "list_category_img.txt"
    lines = path.read_text().splitlines()
    lines[3] = "img/Sheer_Blouse/img_00000002.jpg"  # no label
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"list_category_img\.txt, line 4"):
        read_deepfashion(root)


def test_deepfashion_label_out_of_range(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    path = root / "Anno" / "list_category_img.txt"
    text = path.read_text().splitlines()
    text[-1] = f"{IMAGES[-1][0]}   4"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"line 7: category_label '4' is not in 1\.\.3"):
        read_deepfashion(root)


def test_deepfashion_count_header_and_status_checks(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    cloth = root / "Anno" / "list_category_cloth.txt"
    cloth.write_text(cloth.read_text().replace("3\n", "4\n", 1))
    with pytest.raises(DataError, match="line 1 says 4 rows, the file has 3"):
        read_deepfashion(root)
    write_deepfashion(root)
    cloth.write_text(cloth.read_text().replace("category_type", "type"))
    with pytest.raises(DataError, match="line 2 must be the header"):
        read_deepfashion(root)
    write_deepfashion(root)
    partition = root / "Eval" / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace("val\n", "valid\n"))
    with pytest.raises(DataError, match=r"line 5: evaluation_status 'valid'"):
        read_deepfashion(root)


def test_deepfashion_image_without_category(tmp_path: Path) -> None:
    root = write_deepfashion(tmp_path)
    partition = root / "Eval" / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace("Maxi_Dress", "Mini_Dress"))
    with pytest.raises(DataError, match="has no category"):
        read_deepfashion(root)


# --- ImageFolder ------------------------------------------------------------------------------


def save_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def test_image_folder_labels_order_and_extensions(tmp_path: Path) -> None:
    for name in ["sneaker/b.jpg", "sneaker/a.PNG", "boot/z.webp", "boot/deep/c.bmp", "boot/d.gif"]:
        save_image(tmp_path / name)
    (tmp_path / "boot" / "notes.txt").write_text("not an image")
    save_image(tmp_path / "boot" / ".hidden.jpg")
    items = get_reader("image_folder")(tmp_path)
    assert [item.id for item in items] == [
        "boot/d.gif",
        "boot/deep/c.bmp",
        "boot/z.webp",
        "sneaker/a.PNG",
        "sneaker/b.jpg",
    ]
    assert [item.fields["label"] for item in items] == ["boot"] * 3 + ["sneaker"] * 2
    assert items[1].path == tmp_path / "boot" / "deep" / "c.bmp"


def test_image_folder_split_and_errors(tmp_path: Path) -> None:
    save_image(tmp_path / "test" / "heel" / "1.jpg")
    assert [item.id for item in read_image_folder(tmp_path, split="test")] == ["heel/1.jpg"]
    with pytest.raises(DataError, match="image folder not found"):
        read_image_folder(tmp_path, split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        read_image_folder(tmp_path / "empty")
    save_image(tmp_path / "test" / "stray.png")
    with pytest.raises(DataError, match=r"stray\.png: image is not inside a class folder"):
        read_image_folder(tmp_path, split="test")


# --- labelled CSV -----------------------------------------------------------------------------


def test_labelled_csv_reads_fields_captions_and_paths(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "path,label,caption,colour\n"
        "imgs/1.jpg,sneaker,a white sneaker,white\n"
        "imgs/2.jpg, boot ,,black\n"
    )
    items = get_reader("labelled_csv")(csv)
    assert [item.id for item in items] == ["imgs/1.jpg", "imgs/2.jpg"]
    assert items[0].path == tmp_path / "imgs" / "1.jpg"
    assert items[0].caption == "a white sneaker"
    assert items[0].fields == {"label": "sneaker", "colour": "white"}
    assert items[1].caption is None
    assert items[1].fields["label"] == "boot"
    assert read_labelled_csv(tmp_path) == items  # the folder holding one CSV


def test_labelled_csv_split_column(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,split\n1.jpg,a,train\n2.jpg,b,test\n3.jpg,a,test\n")
    assert [item.id for item in read_labelled_csv(csv, split="test")] == ["2.jpg", "3.jpg"]
    assert len(read_labelled_csv(csv)) == 3
    with pytest.raises(
        DataError, match=r"no row has split 'val'; splits present: \['test', 'train'\]"
    ):
        read_labelled_csv(csv, split="val")


def test_labelled_csv_missing_column(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,class\n1.jpg,a\n")
    with pytest.raises(DataError, match=r"labels\.csv: missing column\(s\) \['label'\]"):
        read_labelled_csv(csv)


def test_labelled_csv_empty_label_names_row_and_column(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n1.jpg,a\n2.jpg,  \n")
    with pytest.raises(DataError, match=r"labels\.csv, row 3, column 'label': empty label"):
        read_labelled_csv(csv)
    csv.write_text("path,label\n,a\n")
    with pytest.raises(DataError, match=r"row 2, column 'path': empty path"):
        read_labelled_csv(csv)


def test_labelled_csv_duplicates_and_folder_errors(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n1.jpg,a\n1.jpg,b\n")
    with pytest.raises(DataError, match=r"row 3, column 'path': '1\.jpg' repeats row 2"):
        read_labelled_csv(csv)
    (tmp_path / "other.csv").write_text("path,label\n")
    with pytest.raises(DataError, match=r"exactly one \.csv file"):
        read_labelled_csv(tmp_path)
    with pytest.raises(DataError, match="not found"):
        read_labelled_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="cannot parse CSV"):
        read_labelled_csv(tmp_path / "empty.csv")


def test_styles_catalogue_splits_like_prepare(catalogue_dir: Path, tmp_path: Path) -> None:
    """The whole Kaggle folder read as is: the split computed on read is the one `prepare
    footwear` writes (same stratification, seed and sizes)."""
    from evalsuite.data.catalogue import read_catalogue
    from evalsuite.data.prepare import prepare_footwear
    from evalsuite.data.styles import read_styles_catalogue

    everything = read_styles_catalogue(catalogue_dir)
    assert len(everything) == 8231
    assert Counter(i.fields["split"] for i in everything) == {
        "train": 5934, "val": 656, "test": 1641
    }  # fmt: skip
    test = read_styles_catalogue(catalogue_dir, "test")
    assert {i.id for i in test} == {i.id for i in everything if i.fields["split"] == "test"}
    assert all(i.path == catalogue_dir / "images" / f"{i.id}.jpg" for i in test[:5])
    prepared = tmp_path / "footwear"
    prepare_footwear(catalogue_dir / "images", catalogue_dir / "styles.csv", prepared)
    for split in ("train", "val", "test"):
        mine = read_styles_catalogue(catalogue_dir, split, master_category="Footwear")
        assert [i.id for i in mine] == [i.id for i in read_catalogue(prepared, split)], split
    with pytest.raises(SpecError, match=r"unknown option\(s\) \['sed'\]"):
        read_styles_catalogue(catalogue_dir, sed=1)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        read_styles_catalogue(catalogue_dir, "dev")
    with pytest.raises(DataError, match=r"no styles\.csv"):
        read_styles_catalogue(tmp_path)
