from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reload_middleware import ConfigError
from reload_middleware._config import OPTIONS, Config, is_enabled, parse_flag


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_true_values(value: str) -> None:
    assert parse_flag("RELOAD_MIDDLEWARE", value) is True


@pytest.mark.parametrize("value", ["0", "false", "No", "off", ""])
def test_false_values(value: str) -> None:
    assert parse_flag("RELOAD_MIDDLEWARE", value) is False


def test_bad_flag_names_variable_and_value() -> None:
    with pytest.raises(ConfigError, match=r"RELOAD_MIDDLEWARE='maybe' is not a boolean"):
        is_enabled(environ={"RELOAD_MIDDLEWARE": "maybe"})


def test_unset_is_disabled_and_explicit_wins() -> None:
    assert is_enabled(environ={}) is False
    assert is_enabled(True, environ={"RELOAD_MIDDLEWARE": "0"}) is True
    assert is_enabled(False, environ={"RELOAD_MIDDLEWARE": "1"}) is False


def test_environment_fills_what_is_not_passed(tmp_path: Path) -> None:
    config = Config.resolve(
        {
            "RELOAD_MIDDLEWARE_WATCH": "off",
            "RELOAD_MIDDLEWARE_WATCH_DIRS": str(tmp_path),
            "RELOAD_MIDDLEWARE_EXCLUDE": "*_test.py, migrations/*",
            "RELOAD_MIDDLEWARE_INCLUDE": "*.html,.env, *.yaml",
            "RELOAD_MIDDLEWARE_TOKEN": "s3cret",
            "RELOAD_MIDDLEWARE_DRAIN_TIMEOUT": "2.5",
            "RELOAD_MIDDLEWARE_ADMIN_PATH": "/_admin/reload",
        }
    )
    assert config.watch is False
    assert config.watch_dirs == (tmp_path.resolve(),)
    assert config.exclude == ("*_test.py", "migrations/*")
    assert config.include == ("*.html", ".env", "*.yaml")
    assert config.token == "s3cret"
    assert config.drain_timeout == 2.5
    assert config.admin_path == "/_admin/reload"


def test_explicit_options_win_over_environment() -> None:
    environ = {"RELOAD_MIDDLEWARE_TOKEN": "from-env", "RELOAD_MIDDLEWARE_WATCH": "0"}
    config = Config.resolve(environ, token=None, watch=True, version_header=None, admin_path=None)
    assert (config.token, config.watch, config.version_header, config.admin_path) == (None, True, None, None)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RELOAD_MIDDLEWARE_DRAIN_TIMEOUT": "soon"}, "RELOAD_MIDDLEWARE_DRAIN_TIMEOUT='soon' is not a number"),
        ({"RELOAD_MIDDLEWARE_DRAIN_TIMEOUT": "-1"}, "RELOAD_MIDDLEWARE_DRAIN_TIMEOUT='-1' must be a finite"),
        ({"RELOAD_MIDDLEWARE_STARTUP_TIMEOUT": "nan"}, "RELOAD_MIDDLEWARE_STARTUP_TIMEOUT='nan' must be a finite"),
        ({"RELOAD_MIDDLEWARE_WATCH": "sometimes"}, "RELOAD_MIDDLEWARE_WATCH='sometimes' is not a boolean"),
        ({"RELOAD_MIDDLEWARE_ADMIN_PATH": "reload"}, "RELOAD_MIDDLEWARE_ADMIN_PATH='reload' must start with '/'"),
        ({"RELOAD_MIDDLEWARE_BUILD_TIMEOUT": "0"}, "RELOAD_MIDDLEWARE_BUILD_TIMEOUT='0' must be more than 0"),
        ({"RELOAD_MIDDLEWARE_MAX_VERSIONS": "1"}, "RELOAD_MIDDLEWARE_MAX_VERSIONS='1' must be 2 or more"),
        ({"RELOAD_MIDDLEWARE_VERSION_HEADER": "x version"}, "not a valid header name"),
        ({"RELOAD_MIDDLEWARE_WATCH_DIRS": "/no/such/dir"}, "'/no/such/dir' does not exist"),
    ],
)
def test_bad_values_are_clear_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Config.resolve(environ)


def test_an_explicit_bad_value_is_named_as_the_keyword_the_user_wrote() -> None:
    with pytest.raises(ConfigError, match=r"^drain_timeout=-1 must be a finite number"):
        Config.resolve({"RELOAD_MIDDLEWARE_DRAIN_TIMEOUT": "5"}, drain_timeout=-1)


def test_a_token_with_surrounding_white_space_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError, match="RELOAD_MIDDLEWARE_TOKEN must not start or end with white space") as info:
        Config.resolve({"RELOAD_MIDDLEWARE_TOKEN": "s3cret "})
    assert "s3cret" not in str(info.value)


def test_an_unknown_option_is_an_error_that_lists_the_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown option.*drain_timout.*drain_timeout"):
        Config.resolve({}, drain_timout=1)


def test_every_declared_option_is_a_config_field_with_the_same_default() -> None:
    fields = {field.name: field.default for field in dataclasses.fields(Config)}
    assert set(fields) == {"factory", *(option.name for option in OPTIONS)}
    for option in OPTIONS:
        assert fields[option.name] == option.default, option.name
