"""The LICENSE file is the license pyproject.toml declares."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_license_file_is_the_agpl_that_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "AGPL-3.0-or-later"
    text = (ROOT / "LICENSE").read_text()
    assert text.split("\n", 2)[:2] == [
        "                    GNU AFFERO GENERAL PUBLIC LICENSE",
        "                       Version 3, 19 November 2007",
    ]
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 30000  # the whole text, not a stub
