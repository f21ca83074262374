"""Build the self-contained Queue Admin folder: ``python packaging/build.py``.

The result is ``dist/queue-admin/`` with ``queue-admin`` (the window) and ``queue-admin-cli``
(``.exe`` on Windows) sharing one folder of libraries, the SVG icons inside, and the user
guide, runbook and CLI reference in ``docs/`` beside the programs. Nothing on the target
machine needs Python. Needs the build extra: ``python -m pip install -e ".[build]"``.

Before PyInstaller runs, the Windows icon (``.ico``) is drawn from ``resources/app-icon.svg``
with Qt and a version resource is written from the package version; both go to
``build/assets/`` and are used only when building on Windows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "queue_admin.spec"
BUNDLE_NAME = "queue-admin"
PROGRAMS = ("queue-admin", "queue-admin-cli")
#: The sizes drawn into the .ico: what Explorer, the task bar and Alt+Tab ask for.
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


def executable_name(program: str) -> str:
    """The file name of ``program`` in the bundle on this platform."""
    return f"{program}.exe" if sys.platform == "win32" else program


def package_version() -> str:
    """The version written into the package (``queue_admin_gui.__version__``)."""
    namespace: dict[str, str] = {}
    init = (ROOT / "queue_admin_gui" / "__init__.py").read_text(encoding="utf-8")
    for line in init.splitlines():
        if line.startswith("__version__"):
            exec(line, namespace)  # noqa: S102 - one assignment line of our own package
    return namespace["__version__"]


def render_icon_pngs(svg: Path, sizes: tuple[int, ...] = ICON_SIZES) -> list[tuple[int, bytes]]:
    """The SVG drawn at each size as PNG bytes, with Qt (offscreen, no window)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    application = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"build: cannot read the icon {svg}")
    pngs = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        pngs.append((size, bytes(data.data())))
    del application
    return pngs


def ico_bytes(pngs: list[tuple[int, bytes]]) -> bytes:
    """A Windows .ico holding each PNG as one image (Vista and later read PNG entries)."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    directory, images = b"", b""
    for size, png in pngs:
        side = 0 if size >= 256 else size  # 0 means 256 in an icon directory
        directory += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        images += png
        offset += len(png)
    return header + directory + images


def version_resource(version: str) -> str:
    """The Windows version resource of both programs, in PyInstaller's version-file form."""
    numbers = [int(part) for part in version.split(".")[:4] if part.isdigit()]
    numbers += [0] * (4 - len(numbers))
    fields = {
        "CompanyName": "PrismQ",
        "FileDescription": "Queue Admin: PrismQ SQLite task queue administration",
        "FileVersion": version,
        "InternalName": "queue-admin",
        "ProductName": "Queue Admin",
        "ProductVersion": version,
    }
    strings = ",\n".join(f"          StringStruct({key!r}, {value!r})"
                         for key, value in fields.items())
    return (
        "VSVersionInfo(\n"
        f"  ffi=FixedFileInfo(filevers={tuple(numbers)}, prodvers={tuple(numbers)},\n"
        "    mask=0x3f, flags=0x0, OS=0x40004, fileType=0x1, subtype=0x0, date=(0, 0)),\n"
        "  kids=[\n"
        "    StringFileInfo([StringTable('040904B0', [\n"
        f"{strings}])]),\n"
        "    VarFileInfo([VarStruct('Translation', [1033, 1200])])])\n"
    )


def write_assets(assets: Path) -> None:
    """Write the .ico and the version resource the spec picks up."""
    assets.mkdir(parents=True, exist_ok=True)
    pngs = render_icon_pngs(ROOT / "resources" / "app-icon.svg")
    (assets / "queue-admin.ico").write_bytes(ico_bytes(pngs))
    (assets / "version_info.txt").write_text(version_resource(package_version()),
                                             encoding="utf-8")


def copy_docs(bundle: Path) -> None:
    """Put the user guide, runbook and CLI reference (with their images) beside the programs."""
    target = bundle / "docs"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / "docs", target, ignore=shutil.ignore_patterns("benchmarks*"))


def check_bundle(bundle: Path) -> list[str]:
    """What the finished folder lacks; empty when both programs, icons and docs are there."""
    missing = [name for name in map(executable_name, PROGRAMS)
               if not (bundle / name).is_file()]
    if not list(bundle.rglob("queue_admin_gui/resources/app-icon.svg")):
        missing.append("queue_admin_gui/resources/app-icon.svg")
    if not (bundle / "docs" / "USER_GUIDE.md").is_file():
        missing.append("docs/USER_GUIDE.md")
    return missing


def folder_size(folder: Path) -> int:
    """Bytes of every file below ``folder`` (a link counts once, as the file it points to)."""
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and not path.is_symlink())


def build(dist: Path, work: Path) -> Path:
    """Run PyInstaller on the spec and finish the folder; returns ``dist/queue-admin``."""
    try:
        import PyInstaller.__main__ as pyinstaller
    except ImportError as error:
        raise SystemExit('build: PyInstaller is missing; run: python -m pip install -e ".[build]"'
                         ) from error
    assets = work / "assets"
    write_assets(assets)
    os.environ["QUEUE_ADMIN_BUILD_ASSETS"] = str(assets)
    pyinstaller.run([str(SPEC), "--noconfirm", "--clean", "--log-level", "WARN",
                     "--distpath", str(dist), "--workpath", str(work / "pyinstaller")])
    bundle = dist / BUNDLE_NAME
    copy_docs(bundle)
    missing = check_bundle(bundle)
    if missing:
        raise SystemExit(f"build: the bundle lacks {', '.join(missing)}")
    return bundle


def main(argv: list[str] | None = None) -> int:
    """Build the bundle and say where it is and how big."""
    parser = argparse.ArgumentParser(description="Build dist/queue-admin/ with PyInstaller.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--work", type=Path, default=ROOT / "build",
                        help="folder for intermediate files")
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    bundle = build(arguments.dist.resolve(), arguments.work.resolve())
    print(f"built {bundle} ({folder_size(bundle) / 1e6:.0f} MB) in "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
