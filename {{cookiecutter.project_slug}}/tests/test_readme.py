"""The README's settings table is the handoff to engineering: it must match core/settings.py."""

from pathlib import Path

from {{ cookiecutter.package_name }}.core.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_setting_with_its_default() -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in README.read_text().splitlines()
        if line.startswith("| `")
    }
    for name, field in Settings.model_fields.items():
        row = rows.get(name.upper())
        assert row is not None, f"{name.upper()} is missing from the README's settings table"
        default = field.default
        if default is None:
            expected = "unset"
        elif isinstance(default, bool):
            expected = f"`{str(default).lower()}`"
        else:
            expected = f"`{default}`"
        assert expected in row, f"{name.upper()}: README does not say the default is {expected}"
