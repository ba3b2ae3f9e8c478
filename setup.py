"""Build hook: the shipped model and demo corpus (data/xmodal-mini, data/demo) travel in the wheel as engine/_shipped."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("xmodal-mini", "demo")


class BuildWithShippedData(build_py):
    """build_py that also copies data/<name> into the built engine package (editable installs read data/ in place)."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for name in SHIPPED:
            src, dst = root / "data" / name, Path(self.build_lib) / "engine" / "_shipped" / name
            if src.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)


setup(cmdclass={"build_py": BuildWithShippedData})
