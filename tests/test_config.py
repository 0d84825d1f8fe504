from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click
import pytest

from reload_middleware import ConfigError
from reload_middleware._config import (
    OPTIONS,
    TEMPLATE_GLOBS,
    Config,
    Option,
    Options,
    is_enabled,
    parse_flag,
)
from reload_middleware._config.docs import docstring_args, options_table

README = Path(__file__).parents[1] / "README.md"


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


def test_the_url_is_read_from_the_environment_given() -> None:
    assert Config.resolve({"RELOAD_MIDDLEWARE_URL": "http://127.0.0.1:9000"}).url == "http://127.0.0.1:9000"
    assert Config.resolve({}).url is None


def test_the_url_is_no_keyword_option() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        Config.resolve({}, url="http://127.0.0.1:9000")


def test_the_options_typed_dict_matches_the_declaration() -> None:
    declared = {option.name: option.kind.keyword_type for option in OPTIONS if option.keyword}
    assert typing.get_type_hints(Options) == declared


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_every_kind_reads_back_what_it_writes_for_the_workers(option: Option) -> None:
    value = option.cli_default if option.cli_default is not None else option.default  # None: not given
    assert option.kind.parse(option.variable, option.kind.format(value)) == (
        tuple(value) if option.kind.many else value
    )


def test_the_readme_table_is_the_one_the_declaration_renders() -> None:
    lines = README.read_text().splitlines()
    section = lines[lines.index("## Configuration") :]
    first = next(index for index, line in enumerate(section) if line.startswith("|"))
    last = next(index for index in range(first, len(section)) if not section[index].startswith("|"))
    assert "\n".join(section[first:last]) == options_table()


def test_the_docstring_lists_every_keyword_option_within_a_hundred_columns() -> None:
    lines = docstring_args().splitlines()
    names = [line.strip().split(":")[0] for line in lines if not line.startswith(" " * 12)]
    assert names == [option.name for option in OPTIONS if option.keyword]
    assert all(len(line) <= 100 and line.startswith(" " * 8) for line in lines)
    assert "``RELOAD_MIDDLEWARE_DRAIN_TIMEOUT``" in docstring_args()


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in OPTIONS:
        monkeypatch.delenv(option.variable, raising=False)


# What the command line accepted before its options were generated: flags and the variable read,
# then what each parses to when not given.
COMMAND_LINE = {
    "watch_dirs": (["--watch", "--reload-dir"], "RELOAD_MIDDLEWARE_WATCH_DIRS"),
    "exclude": (["--exclude", "--reload-exclude"], "RELOAD_MIDDLEWARE_EXCLUDE"),
    "include": (["--include", "--reload-include"], None),
    "reload_delay": (["--reload-delay"], "RELOAD_MIDDLEWARE_RELOAD_DELAY"),
    "token": (["--token"], "RELOAD_MIDDLEWARE_TOKEN"),
    "build_timeout": (["--build-timeout"], "RELOAD_MIDDLEWARE_BUILD_TIMEOUT"),
    "drain_timeout": (["--drain-timeout"], "RELOAD_MIDDLEWARE_DRAIN_TIMEOUT"),
    "manual": (["--manual"], None),
    "no_error_page": (["--no-error-page"], None),
    "live_refresh": (["--live-refresh", "--no-live-refresh"], "RELOAD_MIDDLEWARE_LIVE_REFRESH"),
}
# (live_refresh: not given unless given, so that watch mode decides, as for error_page)
DEFAULTS = {"reload_delay": 0.0, "build_timeout": 5.0, "drain_timeout": 30.0, "manual": False, "no_error_page": False}


@pytest.mark.usefixtures("clean_environ")
def test_the_command_line_options_come_from_the_declaration() -> None:
    from reload_middleware._cli.serve import declared_parameters, serve_command

    generated = {parameter.name: (parameter, option) for parameter, option in declared_parameters()}
    command = serve_command()
    parameters = {parameter.name: parameter for parameter in command.params}
    parsed = command.make_context("reload-middleware", ["m:app"]).params
    assert set(generated) == set(COMMAND_LINE)
    for name, (flags, variable) in COMMAND_LINE.items():
        parameter, option = generated[name]
        assert option.cli is not None
        assert [*parameter.opts, *parameter.secondary_opts] == flags == "/".join(option.cli.flags).split("/")
        assert parameter.envvar == variable == (option.variable if option.cli.envvar else None)
        assert parameter.help == option.cli.help
        command_line = parameters[name]
        assert isinstance(command_line, click.Option)
        assert (command_line.opts, command_line.envvar) == (parameter.opts, parameter.envvar)
        assert parsed[name] == DEFAULTS.get(name, () if option.kind.many else None), name


def worker_config(arguments: list[str]) -> Config:
    """The options a worker process resolves from what the command line hands it."""
    from reload_middleware._cli.serve import declared_parameters, serve_command, worker_environment

    declared = {parameter.name: option for parameter, option in declared_parameters() if parameter.name}
    parsed = serve_command().make_context("reload-middleware", ["m:app", *arguments]).params
    return Config.resolve(worker_environment(parsed, declared))


@pytest.mark.usefixtures("clean_environ")
def test_the_command_line_hands_its_defaults_to_the_workers() -> None:
    config = worker_config([])
    assert (config.watch, config.error_page, config.live_refresh) == (True, True, True)
    assert (config.watch_dirs, config.include, config.token) == ((), TEMPLATE_GLOBS, None)


@pytest.mark.usefixtures("clean_environ")
def test_the_browser_features_follow_watch_mode_unless_set_either_way() -> None:
    assert (worker_config(["--manual"]).error_page, worker_config(["--manual"]).live_refresh) == (False, False)
    assert worker_config(["--manual", "--live-refresh"]).live_refresh is True
    on = Config.resolve({})  # any server: development gets them
    off = Config.resolve({"RELOAD_MIDDLEWARE_WATCH": "0"})  # production does not
    assert (on.error_page, on.live_refresh, off.error_page, off.live_refresh) == (True, True, False, False)
    assert Config.resolve({"RELOAD_MIDDLEWARE_WATCH": "0"}, error_page=True).error_page is True


@pytest.mark.usefixtures("clean_environ")
def test_the_command_line_hands_its_options_to_the_workers(tmp_path: Path) -> None:
    arguments = ["--manual", "--no-error-page", "--no-live-refresh", "--include", ".env", "--exclude", "*_test.py"]
    arguments += ["--watch", str(tmp_path), "--token", "s3cret", "--drain-timeout", "2.5", "--build-timeout", "7"]
    config = worker_config(arguments)
    assert (config.watch, config.error_page, config.live_refresh) == (False, False, False)
    assert config.include == (*TEMPLATE_GLOBS, ".env")  # added to the templates, not instead of them
    assert (config.exclude, config.watch_dirs, config.token) == (("*_test.py",), (tmp_path,), "s3cret")
    assert (config.drain_timeout, config.build_timeout) == (2.5, 7.0)
