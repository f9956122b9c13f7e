"""sources.toml → Settings: defaults, relative paths, and clear errors for bad configs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from archiver.config import load_settings
from archiver.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_lists_the_briefing() -> None:
    settings = load_settings(Path(__file__).parent.parent / "sources.toml")
    (source,) = settings.sources
    assert source.id == "kazakhstan-2020"
    assert source.published == date(2020, 11, 1)
    assert Path(source.path).is_file()
    assert settings.fetch.per_host == 2 and settings.fetch.retries == 3
    assert settings.archive.dir.name == "archive"


def test_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    path = write(sub, '[[sources]]\nid = "a"\npath = "docs/a.md"\n[archive]\ndir = "store"\n')
    settings = load_settings(path)
    assert settings.sources[0].path == str(sub / "docs" / "a.md")
    assert settings.archive.dir == sub / "store"
    assert settings.relative(sub / "store" / "x.warc.gz") == "store/x.warc.gz"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[fetch]\nper-host = 2\n", "unknown key 'per-host'"),
        ("[fetch]\ntimeout = 'fast'\n", "[fetch].timeout: expected a number"),
        ("[fetch]\nretries = 1.5\n", "expected a whole number"),
        ("[fetch]\nallow_private_networks = 1\n", "expected true or false"),
        ("[fetch]\nconcurrency = 0\n", "must be at least 1"),
        ("[rescue]\nconcurrency = 0\n", "[rescue] concurrency, breaker_after"),
        ("[rescue]\nbreaker_after = 0\n", "[rescue] concurrency, breaker_after"),
        ("[fetch]\nrun_deadline = -1\n", "[fetch].run_deadline: must not be negative"),
        ("[fetch]\nhost_give_up = 1.5\n", "[fetch].host_give_up: expected a whole number"),
        ("[fetch]\nhost-give-up = 3\n", "unknown key 'host-give-up'"),
        ('[[sources]]\nid = "Bad Id"\npath = "a.md"\n', "sources[1].id"),
        ('[[sources]]\nid = "a"\n', "sources[1].path"),
        ('[[sources]]\nid = "a"\npath = "a.md"\n[[sources]]\nid = "a"\npath = "b.md"\n',
         "listed twice"),
        ('[[sources]]\nid = "a"\npath = "a.md"\npublished = "soon"\n', "published"),
        ('[fetch]\nuser_agent = "Архив/1.0"\n', "[fetch] user_agent must be printable ASCII"),
        ('[fetch]\nuser_agent = "a\\r\\nX-Injected: 1"\n',
         "[fetch] user_agent must be printable ASCII"),
        ('[fetch]\ntransport = "curl"\n', "[fetch] transport must be one of"),
        ("[fetc]\n", "unknown table"),
        ("this is = not [ toml", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_source_id_lists_the_known_ones(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[[sources]]\nid = "a"\npath = "a.md"\n'))
    with pytest.raises(ConfigError, match="known: a"):
        settings.source("b")


def test_run_limits_are_read_with_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.fetch.run_deadline == 3600 and settings.fetch.host_give_up == 3
    assert settings.check.outage_min_hosts == 5
    path = write(tmp_path, "[fetch]\nrun_deadline = 0\nhost_give_up = 0\n"
                           "[check]\noutage_min_hosts = 8\n")
    settings = load_settings(path)
    assert settings.fetch.run_deadline == 0.0 and settings.fetch.host_give_up == 0
    assert settings.check.outage_min_hosts == 8
    overridden = load_settings(path, overrides={"run_deadline": 60.0})
    assert overridden.fetch.run_deadline == 60.0


def test_readme_documents_every_config_key() -> None:
    """Every key the config accepts appears, with its default, in README's sources.toml."""
    import dataclasses
    import tomllib

    from archiver import config

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml", readme.index("## sources.toml")) + len("```toml")
    documented = tomllib.loads(readme[start:readme.index("```", start)])
    defaults = {"fetch": config.FetchSettings(), "rescue": config.RescueSettings(),
                "check": config.CheckSettings(),
                "archive": config.ArchiveSettings(dir=Path("archive"),
                                                  reports_dir=Path("reports"))}
    for table, default in defaults.items():
        keys = set(documented[table])
        names = {f.name for f in dataclasses.fields(default)}  # type: ignore[arg-type]
        assert names == keys, (f"[{table}]: not in README {sorted(names - keys)}, "
                               f"unknown {sorted(keys - names)}")
        for key in keys - {"dir", "reports_dir", "user_agent"}:
            assert documented[table][key] == getattr(default, key), f"[{table}] {key}"
