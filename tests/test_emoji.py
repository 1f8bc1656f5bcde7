"""The designer-style emoji domains, built from tiny fake npm tarballs (no network in tests)."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tada_core.cli import main
from tada_core.data import IMAGENET_NORM, emoji, list_builtin_domains, load_domain
from tada_core.errors import DataError

STYLES = emoji.BENCH_STYLES


def _entry(category: str, subcategory: str, code: str, missing: tuple[str, ...] = ()) -> dict:
    return {
        "category": category,
        "subcategory": subcategory,
        "image": f"{code}.png",
        **{f"has_img_{s}": s not in missing for s in emoji.STYLES},
    }


def _entries() -> list[dict]:
    """Two classes that pass the rule (20 drawn in every style), and four that do not."""
    rows = [_entry("Animals & Nature", "animal-bird", f"1f{i:03d}") for i in range(20)]
    rows += [_entry("Travel & Places", "sky & weather", f"2f{i:03d}") for i in range(21)]
    rows += [_entry("Travel & Places", "sky & weather", "2f999", missing=("google",))]  # not in every style
    rows += [_entry("Objects", "tool", f"3f{i:03d}") for i in range(19)]  # one short of the minimum
    rows += [_entry("People & Body", "person-role", f"4f{i:03d}") for i in range(30)]  # people: not a thing
    rows += [_entry("Objects", "office", f"5f{i:03d}", missing=("twitter",)) for i in range(25)]
    return rows


def _png(colour: tuple[int, int, int], transparent_corner: bool = True) -> bytes:
    image = Image.new("RGBA", (64, 64), (*colour, 255))
    if transparent_corner:
        image.paste((0, 0, 0, 0), (0, 0, 8, 8))  # a transparent corner: white once composited
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """A folder of fake tarballs, one per package, with their integrity pinned in place of npm's."""
    folder = tmp_path / "registry"
    folder.mkdir()
    entries = _entries()
    _tarball(folder / emoji.tarball_name("emoji-datasource"), {"package/emoji.json": json.dumps(entries).encode()})
    colours = {"apple": (200, 0, 0), "google": (0, 200, 0), "twitter": (0, 0, 200), "facebook": (9, 9, 9)}
    for style in emoji.STYLES:
        files = {f"package/img/{style}/64/{e['image']}": _png(colours[style]) for e in entries if e[f"has_img_{style}"]}
        _tarball(folder / emoji.tarball_name(emoji.package_of(style)), files)
    pinned = {p.name.removesuffix(f"-{emoji.VERSION}.tgz"): emoji.integrity_of(p) for p in folder.glob("*.tgz")}
    monkeypatch.setattr(emoji, "INTEGRITY", pinned)
    return folder


def _fake_npm(tmp_path: Path, registry: Path) -> Path:
    """An executable that answers ``npm pack NAME@VERSION --pack-destination DIR`` from ``registry``."""
    script = tmp_path / "npm"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = pack ] || exit 1\n'
        'name="${2%@*}"; version="${2##*@}"\n'
        f'cp "{registry}/$name-$version.tgz" "$4/"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_rule_keeps_things_drawn_in_every_style_with_enough_emojis():
    classes = emoji.select_classes(_entries())
    assert list(classes) == ["animal-bird", "sky-weather"]  # tool 19 < 20, people excluded, office not in twitter
    assert len(classes["animal-bird"]) == 20 and len(classes["sky-weather"]) == 21  # 2f999 lacks google
    assert emoji.class_folder("sky & weather") == "sky-weather"


def test_download_with_npm_builds_domains(tmp_path, registry, capsys):
    npm = _fake_npm(tmp_path, registry)
    root = tmp_path / "data"
    assert main(["data", "download", "emoji", "--root", str(root), "--npm", str(npm)]) == 0
    assert "emoji-apple 41" in capsys.readouterr().out
    manifest = json.loads((root / "emoji" / "manifest.json").read_text())
    assert manifest["classes"] == ["animal-bird", "sky-weather"] and manifest["styles"] == dict.fromkeys(STYLES, 41)
    domain = load_domain("emoji-google", image_size=224, norm=IMAGENET_NORM, train=False, data_root=str(root))
    assert domain.class_names == ["animal-bird", "sky-weather"] and len(domain) == 41
    assert domain.labels.tolist() == [0] * 20 + [1] * 21
    pixels = np.asarray(Image.open(root / "emoji" / "google" / "animal-bird" / "1f000.png"))
    assert pixels.shape == (64, 64, 3)
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[32, 32].tolist() == [0, 200, 0]  # on white
    rows = {r["name"]: r for r in list_builtin_domains(str(root))}
    assert rows["emoji-twitter"]["available"] and rows["emoji-twitter"]["size"] == 41
    assert not rows["emoji-facebook"]["available"]


def test_tarballs_put_by_hand_need_no_npm(tmp_path, registry):
    root = tmp_path / "data"
    (root / "emoji" / "tarballs").mkdir(parents=True)
    for path in registry.glob("*.tgz"):
        (root / "emoji" / "tarballs" / path.name).write_bytes(path.read_bytes())
    built = emoji.download_emoji(root, npm=str(tmp_path / "no-such-npm"))
    assert built["styles"] == dict.fromkeys(STYLES, 41)


def test_without_npm_says_how_to_install_or_where_to_put_tarballs(tmp_path, registry):
    with pytest.raises(DataError, match=r"not installed.*apt-get install npm.*by hand"):
        emoji.download_emoji(tmp_path / "data", npm=str(tmp_path / "no-such-npm"))


def test_a_tampered_tarball_is_refused(tmp_path, registry):
    name = emoji.tarball_name(emoji.package_of("twitter"))
    tarballs = tmp_path / "tarballs"
    tarballs.mkdir()
    for path in registry.glob("*.tgz"):
        (tarballs / path.name).write_bytes(path.read_bytes())
    (tarballs / name).write_bytes((tarballs / name).read_bytes() + b"x")
    with pytest.raises(DataError, match="does not match the published integrity"):
        emoji.build_emoji(tarballs, tmp_path / "out")
    assert not (tmp_path / "out" / "twitter").exists()


def test_unknown_style_and_unbuilt_domain_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown emoji style"):
        emoji.download_emoji(tmp_path, styles=("comic",))
    with pytest.raises(DataError, match="tada data download emoji"):
        load_domain("emoji-apple", image_size=224, norm=IMAGENET_NORM, train=False, data_root=str(tmp_path))


def test_built_styles_appear_in_the_apps_domain_pickers(tmp_path, registry, monkeypatch):
    from app.serving.domains import DomainCatalog
    from app.serving.storage import Storage

    root = tmp_path / "data"
    monkeypatch.setenv("TADA_DATA_ROOT", str(root))
    catalog = DomainCatalog(tmp_path / "app-data", Storage(tmp_path / "store"))
    assert "emoji-google" not in catalog.builtins()
    emoji.download_emoji(root, npm=str(_fake_npm(tmp_path, registry)))
    assert {"emoji-apple", "emoji-google", "emoji-twitter"} <= set(catalog.builtins())
    assert "emoji-facebook" not in catalog.builtins()
    assert catalog.resolve("emoji-twitter") == "emoji-twitter"
