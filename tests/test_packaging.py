"""`pip install .` (not editable) carries the locales: the installed bot speaks from any folder.

Kept fast: the wheel is built offline (--no-build-isolation), installed without its
dependencies into a fresh venv without pip, and that venv sees the dependencies already
installed here through a .pth path line (a path line adds a directory; it does not run the
editable-install finder of this venv, so `bot` can only come from the wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import tx

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed; returns its python."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # a copy: the build writes build/ and *.egg-info next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bot", src / "bot", ignore=ignore)
    shutil.copytree(ROOT / "locales", src / "locales", ignore=ignore)
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("paincoach_bot-*.whl")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "_deps_from_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_speaks_from_another_folder(installed: Path, tmp_path: Path):
    where = subprocess.run(
        [str(installed), "-c", "import bot, bot.i18n as i; print(bot.__file__, i.LOCALES_DIR)"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in where, f"bot was imported from the repository: {where}"
    script = "/start\n1\n:quit\n"
    out = subprocess.run(
        [str(installed), "-m", "bot", "demo", "--lang", "es"],
        cwd=tmp_path,
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert tx("start.consent_yes", "es") in text, text[:2000]
    # Telegram's language is one we speak: setup goes straight to the time zone, in Spanish.
    assert tx("setup.ask_timezone", "es") in text, text[-2000:]
    assert "lunes" in text  # the clock line: common.weekday rendered
    for raw_key in ("common.weekday", "start.greeting", "start.consent_yes", "demo.banner"):
        assert raw_key not in text, raw_key
