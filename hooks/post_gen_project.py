"""Remove what the chosen options turn off. Declarative on purpose: no logic, no network."""

from pathlib import Path

REMOVE_WHEN = {
    "LICENSE": {{ cookiecutter.license | tojson }} == "Proprietary",
}

for path, remove in REMOVE_WHEN.items():
    if remove:
        Path(path).unlink()
