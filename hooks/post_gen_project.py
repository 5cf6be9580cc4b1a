"""Remove what the chosen options turn off. Declarative on purpose: no logic, no network."""

import shutil
from pathlib import Path

# Each framework's own files (core/model.py, training/onnx_convert.py, its test, the lock
# files) sit side by side under frameworks/<name>/, laid out as in the project: the chosen
# one's take their places.
FRAMEWORKS = Path("frameworks")
shutil.copytree(FRAMEWORKS / {{ cookiecutter.framework | tojson }}, ".", dirs_exist_ok=True)
shutil.rmtree(FRAMEWORKS)

REMOVE_WHEN = {
    "LICENSE": {{ cookiecutter.license | tojson }} == "Proprietary",
}

for path, remove in REMOVE_WHEN.items():
    if remove:
        Path(path).unlink()
