"""Unit tests of the pure core (names, dists, index config, inheritance, negotiation) and of
the settings loader."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import Tag, parse_tag
from packaging.version import Version

from packyard.config import Settings, load_settings
from packyard.core import indexconfig, inheritance, simple
from packyard.core.dists import (
    check_matches,
    complete_metadata,
    parse_core_metadata,
    parse_dist_filename,
)
from packyard.core.names import (
    check_account_name,
    check_project_name,
    is_normalized,
    normalize_project,
    split_index_name,
)
from packyard.core.targets import parse_target
from packyard.errors import ConfigError, InvalidInput

# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Foo.Bar_baz", "foo-bar-baz"),
        ("A__B--c", "a-b-c"),
        ("mixed_Case.Pkg", "mixed-case-pkg"),
        ("simple", "simple"),
        ("Zope.Interface", "zope-interface"),
    ],
)
def test_normalize_project(name: str, normalized: str) -> None:
    assert normalize_project(name) == normalized
    assert is_normalized(normalized)
    assert is_normalized(name) is (name == normalized)


@pytest.mark.parametrize("name", ["a", "Foo_Bar.9", "x-y-z", "0"])
def test_valid_project_names(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", ".a", "a b", "ümlaut", "a/b", "a+b"])
def test_invalid_project_names(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid project name"):
        check_project_name(name)


@pytest.mark.parametrize("name", ["alice", "a-l.i_c@e", "ümlaut", "Bob42"])
def test_allowed_account_names(name: str) -> None:
    assert check_account_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a b", "a!", "a/b", "a:b", "a,b", "a#b", "a+b", "+api", "a\tb", "a\x7f", "é$"]
)
def test_forbidden_account_names(name: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape("Any ascii symbol besides -.@_ is blocked")):
        check_account_name(name)


def test_account_name_error_names_the_kind() -> None:
    with pytest.raises(InvalidInput, match=r"^indexname 'a b' contains"):
        check_account_name("a b", "indexname")


@pytest.mark.parametrize(
    ("full", "parts"), [("alice/dev", ("alice", "dev")), (" /alice/dev/ ", ("alice", "dev"))]
)
def test_split_index_name(full: str, parts: tuple[str, str]) -> None:
    assert split_index_name(full) == parts


@pytest.mark.parametrize("full", ["alice", "a/b/c", "/dev", "alice/", ""])
def test_split_index_name_refuses_other_shapes(full: str) -> None:
    with pytest.raises(InvalidInput, match="is not in the format user/index"):
        split_index_name(full)


# --- distribution filenames and metadata -----------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "project", "version", "kind"),
    [
        ("Foo_Bar-1.0-py3-none-any.whl", "foo-bar", "1.0", "wheel"),
        (
            "foo_bar-2.0.post1-1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "foo-bar",
            "2.0.post1",
            "wheel",
        ),
        ("foo_bar-1.0.tar.gz", "foo-bar", "1.0", "sdist"),
        ("Foo-Bar-1.0.tar.gz", "foo-bar", "1.0", "sdist"),
        ("foo-bar-1.0rc1.zip", "foo-bar", "1.0rc1", "sdist"),
    ],
)
def test_parse_dist_filename(filename: str, project: str, version: str, kind: str) -> None:
    dist = parse_dist_filename(filename)
    assert (dist.filename, dist.project, dist.version, dist.kind) == (
        filename,
        project,
        Version(version),
        kind,
    )


@pytest.mark.parametrize("filename", ["foo-1.0.exe", "foo-1.0.tar.bz2", "foo-1.0.egg", "foo-1.0"])
def test_unknown_archive_type_says_what_to_use(filename: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_dist_filename(filename)
    assert raised.value.message == (
        f"{filename!r} is not a valid archive name: use .whl, .tar.gz or .zip"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "../foo-1.0.tar.gz",
        "a/../../foo-1.0.tar.gz",
        "..\\foo-1.0.tar.gz",
        ".hidden-1.0.tar.gz",
        "foo\x00-1.0.tar.gz",
        "foo\n-1.0.tar.gz",
        "foo-1.0.tar.gz?x=1",
        "foo-1.0.tar.gz#frag",
        "C:foo-1.0.tar.gz",
        "x" * 250 + "-1.0.tar.gz",
    ],
)
def test_unsafe_filenames_are_refused(filename: str) -> None:
    with pytest.raises(InvalidInput, match="is not an acceptable file name"):
        parse_dist_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "foo-1.0.whl",
        "foo-1.0-py3-none.whl",
        "foo-notaversion.tar.gz",
        "foo.tar.gz",
        "FOO-1.0.TAR.GZ",
    ],
)
def test_malformed_distribution_names(filename: str) -> None:
    with pytest.raises(InvalidInput, match="is not a valid distribution filename"):
        parse_dist_filename(filename)


def test_check_matches() -> None:
    dist = parse_dist_filename("foo_bar-1.0-py3-none-any.whl")
    check_matches(dist, "Foo.Bar", "1.0.0")
    with pytest.raises(InvalidInput, match="does not match project name 'other'"):
        check_matches(dist, "other", "1.0")
    with pytest.raises(InvalidInput, match=re.escape("does not contain version '1.1'")):
        check_matches(dist, "foo-bar", "1.1")
    with pytest.raises(InvalidInput, match="not a PEP 440 version"):
        check_matches(dist, "foo-bar", "one")


METADATA = b"""Metadata-Version: 2.1
Name: Foo_Bar
Version: 1.0
Summary: UNKNOWN
Keywords: a,b
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Project-URL: Source, https://example.invalid/src
Requires-Dist: attrs>=20
Requires-Python: >=3.8

The description.
"""


def test_parse_core_metadata_in_devpi_keys() -> None:
    parsed = parse_core_metadata(METADATA, "foo_bar-1.0.tar.gz")
    assert (parsed.name, parsed.version) == ("Foo_Bar", "1.0")
    fields = parsed.fields
    assert fields["classifiers"] == [
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
    ]
    assert fields["project_urls"] == ["Source, https://example.invalid/src"]
    assert fields["requires_dist"] == ["attrs>=20"]
    assert fields["requires_python"] == ">=3.8"
    assert fields["description"].strip() == "The description."
    record = complete_metadata(fields)
    assert set(record) >= {"name", "version", "author", "platform", "provides_extras"}
    assert record["summary"] == ""  # UNKNOWN means unknown
    assert record["author"] == ""
    assert record["platform"] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Metadata-Version: 2.1\nVersion: 1.0\n", "lacks a Name or a Version"),
        (b"Metadata-Version: 2.1\nName: foo\n", "lacks a Name or a Version"),
        (b"Metadata-Version: 3.0\nName: foo\nVersion: 1.0\n", "unsupported Metadata-Version"),
    ],
)
def test_unusable_core_metadata(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_core_metadata(data, "foo-1.0.tar.gz")


# --- index configuration ---------------------------------------------------------------------

STAGE_DEFAULTS = {
    "type": "stage",
    "bases": [],
    "volatile": True,
    "acl_upload": ["alice"],
    "acl_toxresult_upload": [":ANONYMOUS:"],
    "acl_read": [":ANONYMOUS:"],
    "mirror_whitelist": [],
    "mirror_whitelist_inheritance": "intersection",
}


def test_new_stage_gets_defaults() -> None:
    assert indexconfig.new_config("alice", {}) == STAGE_DEFAULTS


def test_new_config_normalizes_strings() -> None:
    config = indexconfig.new_config(
        "alice",
        {
            "bases": "root/pypi, alice/base",
            "volatile": "False",
            "acl_upload": "alice,:authenticated:",
            "mirror_whitelist": "Foo_Bar,*",
            "title": "Dev",
        },
    )
    assert config["bases"] == ["root/pypi", "alice/base"]
    assert config["volatile"] is False
    assert config["acl_upload"] == ["alice", ":AUTHENTICATED:"]
    assert config["mirror_whitelist"] == ["foo-bar", "*"]
    assert config["title"] == "Dev"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("yes", True), ("1", True), ("NO", False), ("false", False), (False, False)],
)
def test_volatile_accepts_devpi_spellings(value: Any, expected: bool) -> None:
    assert indexconfig.new_config("alice", {"volatile": value})["volatile"] is expected


def test_new_mirror_gets_defaults_and_drops_stage_keys() -> None:
    config = indexconfig.new_config(
        "root",
        {"type": "mirror", "mirror_url": "https://example.invalid/simple/", "acl_upload": "x"},
        mirror_cache_expiry=60,
    )
    assert config == {
        "type": "mirror",
        "volatile": True,
        "mirror_cache_expiry": 60,
        "mirror_url": "https://example.invalid/simple/",
        "acl_read": [":ANONYMOUS:"],
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"colour": "red"}, "indexconfig got unexpected keyword arguments: colour=red"),
        ({"volatile": "maybe"}, "volatile must be true or false, not 'maybe'"),
        ({"bases": "alice"}, "'alice' is not in the format user/index"),
        ({"bases": 5}, "expected a list or a comma-separated string, not 5"),
        ({"mirror_whitelist_inheritance": "all"}, "must be one of intersection, union"),
        ({"type": "weird"}, "unknown index type 'weird'"),
        ({"type": "mirror"}, "a mirror index needs a mirror_url"),
        ({"type": "mirror", "mirror_url": "ftp://x"}, "must start with http:// or https://"),
        ({"type": "mirror", "mirror_url": "http://x", "mirror_cache_expiry": "x"}, "a number"),
        ({"mirror_url": "http://x"}, "unexpected keyword arguments: mirror_url=http://x"),
    ],
)
def test_new_config_errors(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        indexconfig.new_config("alice", given)


def test_updated_config_merges_and_ignores_projects() -> None:
    current = indexconfig.new_config("alice", {"title": "Dev"})
    config = indexconfig.updated_config(
        current, {"volatile": "false", "projects": ["demo"], "type": "stage"}
    )
    assert config == STAGE_DEFAULTS | {"volatile": False, "title": "Dev"}
    assert current["volatile"] is True  # not changed in place


def test_updated_config_refuses_a_type_change() -> None:
    with pytest.raises(InvalidInput, match="the 'type' of an index can't be changed"):
        indexconfig.updated_config(STAGE_DEFAULTS, {"type": "mirror"})


@pytest.mark.parametrize(
    ("operations", "changed"),
    [
        (["volatile=False"], {"volatile": False}),
        (["acl_upload+=bob", "acl_upload+=bob"], {"acl_upload": ["alice", "bob"]}),
        (["acl_upload-=alice"], {"acl_upload": []}),
        (["bases=a/b,c/d", "bases-=a/b"], {"bases": ["c/d"]}),
        (["mirror_whitelist+=Foo_Bar"], {"mirror_whitelist": ["foo-bar"]}),
        (["title=x=y"], {"title": "x=y"}),
        (["acl_upload+=:anonymous:"], {"acl_upload": ["alice", ":ANONYMOUS:"]}),
    ],
)
def test_apply_operations(operations: list[str], changed: dict[str, Any]) -> None:
    assert indexconfig.apply_operations(STAGE_DEFAULTS, operations, "alice") == (
        STAGE_DEFAULTS | changed
    )


def test_removing_a_key() -> None:
    config = indexconfig.apply_operations(STAGE_DEFAULTS, ["title=Dev"], "alice")
    assert "title" not in indexconfig.apply_operations(config, ["title-="], "alice")


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        (["acl_upload-=bob"], "The 'acl_upload' setting doesn't have value 'bob'"),
        (["volatile-="], "Default values can't be removed."),
        (["volatile"], "invalid setting 'volatile': use key=value"),
        (["=x"], "invalid setting '=x'"),
        (["colour=red"], "unexpected keyword arguments: colour=red"),
        (["type=mirror"], "the 'type' of an index can't be changed"),
        (["volatile=perhaps"], "volatile must be true or false"),
    ],
)
def test_operation_errors(operations: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        indexconfig.apply_operations(STAGE_DEFAULTS, operations, "alice")


# --- inheritance -----------------------------------------------------------------------------


def stage(
    *bases: str, whitelist: tuple[str, ...] = (), mode: str | None = None
) -> indexconfig.IndexConfig:
    config: dict[str, Any] = {"type": "stage", "bases": list(bases), "mirror_whitelist": whitelist}
    if mode is not None:
        config["mirror_whitelist_inheritance"] = mode
    return indexconfig.parse(config)


MIRROR = indexconfig.parse({"type": "mirror", "mirror_url": "https://example.invalid/simple/"})


def test_resolution_order_is_breadth_first_with_mirrors_last() -> None:
    configs = {
        "u/a": stage("u/b", "u/c"),
        "u/b": stage("root/pypi", "u/d"),
        "u/c": stage("u/d", "u/missing"),
        "u/d": stage("other/mirror"),
        "root/pypi": MIRROR,
        "other/mirror": MIRROR,
    }
    order = inheritance.resolution_order("u/a", configs)
    assert order == ["u/a", "u/b", "u/c", "u/d", "root/pypi", "other/mirror"]
    assert inheritance.resolution_order("u/d", configs) == ["u/d", "other/mirror"]
    assert inheritance.resolution_order("u/missing", configs) == []


@pytest.mark.parametrize(
    ("name", "bases", "message"),
    [
        ("u/a", ["u/nope"], "base index 'u/nope' does not exist"),
        ("u/a", ["u/a"], "would make it inherit from itself"),
        ("u/a", ["u/c"], "would make it inherit from itself"),
    ],
)
def test_check_no_cycle(name: str, bases: list[str], message: str) -> None:
    configs = {"u/a": stage(), "u/b": stage("u/a"), "u/c": stage("u/b")}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        inheritance.check_no_cycle(name, bases, configs)
    inheritance.check_no_cycle("u/c", ["u/a"], configs)  # a diamond or chain is fine


def contributors(
    configs: Mapping[str, indexconfig.IndexConfig], holders: set[str], project: str = "p"
) -> inheritance.Contributors:
    """Who serves `project` for the first index of `configs`, given which indexes have it."""
    first = next(iter(configs))
    order = inheritance.resolution_order(first, configs)
    return inheritance.contributing_indexes(project, order, configs, holders.__contains__)


def test_a_private_project_blocks_the_mirror() -> None:
    configs = {"u/dev": stage("root/pypi"), "root/pypi": MIRROR}
    found = contributors(configs, {"u/dev", "root/pypi"})
    assert found == inheritance.Contributors(["u/dev"], blocked_mirror="root/pypi")


def test_a_public_only_project_comes_from_the_mirror() -> None:
    configs = {"u/dev": stage("root/pypi"), "root/pypi": MIRROR}
    assert contributors(configs, {"root/pypi"}) == inheritance.Contributors(["root/pypi"])
    assert contributors(configs, set()) == inheritance.Contributors([])


@pytest.mark.parametrize("entry", ["p", "*"])
def test_whitelisted_project_mixes_mirror_releases_in(entry: str) -> None:
    configs = {"u/dev": stage("root/pypi", whitelist=(entry,)), "root/pypi": MIRROR}
    assert contributors(configs, {"u/dev", "root/pypi"}).indexes == ["u/dev", "root/pypi"]
    other = ["u/dev", "root/pypi"] if entry == "*" else ["u/dev"]
    assert contributors(configs, {"u/dev", "root/pypi"}, "q").indexes == other


@pytest.mark.parametrize(
    ("mode", "mirror_contributes"),
    [("intersection", False), ("union", True), (None, True)],
    ids=["intersection", "union", "missing-means-union"],
)
def test_a_base_whitelist_counts_per_the_queried_index_mode(
    mode: str | None, mirror_contributes: bool
) -> None:
    # prod (no whitelist) -> dev (whitelists p, has p) -> mirror
    configs = {
        "u/prod": stage("u/dev", mode=mode),
        "u/dev": stage("root/pypi", whitelist=("p",), mode="intersection"),
        "root/pypi": MIRROR,
    }
    found = contributors(configs, {"u/dev", "root/pypi"})
    expected = ["u/dev", "root/pypi"] if mirror_contributes else ["u/dev"]
    assert found.indexes == expected
    assert found.blocked_mirror == (None if mirror_contributes else "root/pypi")


def test_intersection_keeps_an_entry_every_stage_shares() -> None:
    configs = {
        "u/prod": stage("u/dev", whitelist=("p",), mode="intersection"),
        "u/dev": stage("root/pypi", whitelist=("p",)),
        "root/pypi": MIRROR,
    }
    assert contributors(configs, {"u/dev", "root/pypi"}).indexes == ["u/dev", "root/pypi"]


def test_the_queried_index_whitelist_alone_suffices() -> None:
    configs = {
        "u/prod": stage("u/dev", whitelist=("p",), mode="intersection"),
        "u/dev": stage("root/pypi"),
        "root/pypi": MIRROR,
    }
    # whitelisted is sticky: once the walk whitelists p, later stages cannot take it back
    assert contributors(configs, {"u/dev", "root/pypi"}).indexes == ["u/dev", "root/pypi"]


def test_whitelisting_later_in_the_walk_still_counts_with_union() -> None:
    configs = {
        "u/prod": stage("u/dev", mode="union"),
        "u/dev": stage("root/pypi", whitelist=("p",)),
        "root/pypi": MIRROR,
    }
    found = contributors(configs, {"u/prod", "root/pypi"})
    assert found.indexes == ["u/prod", "root/pypi"]


def test_stages_without_the_project_do_not_contribute() -> None:
    configs = {"u/prod": stage("u/dev", "u/other"), "u/dev": stage(), "u/other": stage()}
    assert contributors(configs, {"u/other"}).indexes == ["u/other"]


# --- content negotiation ---------------------------------------------------------------------

JSON_V1 = simple.JSON_V1
HTML_V1 = simple.HTML_V1


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON_V1),
        ("", JSON_V1),
        ("*/*", JSON_V1),
        ("text/*", "text/html"),
        ("application/*", JSON_V1),
        ("text/html", "text/html"),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("Application/VND.pypi.simple.V1+JSON", JSON_V1),
        (f"{JSON_V1};q=0.2, text/html;q=0.9", "text/html"),
        (f"{JSON_V1};q=0, */*", HTML_V1),
        ("*/*;q=0.1, text/html", "text/html"),
        (f"text/html;q=abc, {HTML_V1};q=0.5", HTML_V1),
        (f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01", JSON_V1),
        (f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01", JSON_V1),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert simple.negotiate(accept) == expected


@pytest.mark.parametrize(
    "accept", ["application/xml", "text/html;q=0", "image/*", f"{JSON_V1};q=0, text/*;q=0"]
)
def test_negotiate_refuses(accept: str) -> None:
    with pytest.raises(simple.NotAcceptable):
        simple.negotiate(accept)


@pytest.mark.parametrize(
    ("format_param", "expected"),
    [
        (JSON_V1, JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("text/html", "text/html"),
        (HTML_V1, HTML_V1),
    ],
)
def test_format_parameter_wins_over_accept(format_param: str, expected: str) -> None:
    assert simple.negotiate("application/xml", format_param) == expected


@pytest.mark.parametrize("format_param", ["application/xml", "*/*", "application/json"])
def test_format_parameter_must_be_an_offer(format_param: str) -> None:
    with pytest.raises(simple.NotAcceptable):
        simple.negotiate(None, format_param)


# --- settings --------------------------------------------------------------------------------


def _write_config(serverdir: Path, text: str) -> None:
    serverdir.mkdir(parents=True, exist_ok=True)
    (serverdir / "packyard.toml").write_text(text)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"serverdir": str(tmp_path)}, environ={})
    assert settings == Settings(serverdir=tmp_path)
    assert settings.port == 3141
    assert settings.database_url == f"sqlite:///{tmp_path / 'packyard.sqlite3'}"


def test_default_serverdir_is_in_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings(environ={}).serverdir == tmp_path / ".packyard" / "server"


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    _write_config(tmp_path, 'port = 4000\nworkers = 2\nhost = "0.0.0.0"\noffline = true\n')
    flags: dict[str, Any] = {"serverdir": str(tmp_path)}
    from_file = load_settings(flags, environ={})
    assert (from_file.port, from_file.workers, from_file.host, from_file.offline) == (
        4000,
        2,
        "0.0.0.0",
        True,
    )
    environ = {"PACKYARD_PORT": "5000", "PACKYARD_OFFLINE": "no"}
    from_env = load_settings(flags, environ=environ)
    assert (from_env.port, from_env.workers, from_env.offline) == (5000, 2, False)
    from_flags = load_settings(flags | {"port": 6000, "workers": None}, environ=environ)
    assert (from_flags.port, from_flags.workers) == (6000, 2)


def test_serverdir_from_the_environment_locates_the_config_file(tmp_path: Path) -> None:
    _write_config(tmp_path / "env", "port = 4001\n")
    _write_config(tmp_path / "flag", "port = 4002\n")
    environ = {"PACKYARD_SERVERDIR": str(tmp_path / "env")}
    assert load_settings(environ=environ).port == 4001
    flagged = load_settings({"serverdir": str(tmp_path / "flag")}, environ=environ)
    assert (flagged.serverdir, flagged.port) == (tmp_path / "flag", 4002)


def test_values_are_coerced(tmp_path: Path) -> None:
    environ = {
        "PACKYARD_RESTRICT_MODIFY": "root, admins ,",
        "PACKYARD_LOG_REQUESTS": "0",
        "PACKYARD_MAX_UPLOAD_SIZE": "1024",
    }
    settings = load_settings({"serverdir": str(tmp_path)}, environ=environ)
    assert settings.restrict_modify == ("root", "admins")
    assert settings.log_requests is False
    assert settings.max_upload_size == 1024
    _write_config(tmp_path, 'restrict_modify = ["root", "ops"]\n')
    assert load_settings({"serverdir": str(tmp_path)}, environ={}).restrict_modify == (
        "root",
        "ops",
    )


@pytest.mark.parametrize(
    ("config", "environ", "hint"),
    [
        ("prot = 1\n", {}, "(did you mean 'port'?)"),
        ("", {"PACKYARD_WORKRES": "2"}, "(did you mean 'workers'?)"),
        ("", {"PACKYARD_STORAGE_URL": "x"}, "(did you mean 'storage'?)"),
    ],
)
def test_unknown_keys_fail_with_a_hint(
    tmp_path: Path, config: str, environ: dict[str, str], hint: str
) -> None:
    _write_config(tmp_path, config)
    with pytest.raises(ConfigError) as raised:
        load_settings({"serverdir": str(tmp_path)}, environ=environ)
    assert hint in raised.value.message
    assert "unknown setting" in raised.value.message


def test_unknown_key_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    _write_config(tmp_path, "zzzzzz = 1\n")
    with pytest.raises(ConfigError) as raised:
        load_settings({"serverdir": str(tmp_path)}, environ={})
    assert "did you mean" not in raised.value.message
    assert "known: " in raised.value.message
    assert "port" in raised.value.message


@pytest.mark.parametrize(
    ("config", "environ", "message"),
    [
        ('port = "abc"\n', {}, "setting 'port': 'abc' is not a valid int"),
        ("port = true\n", {}, "setting 'port': True is not a valid int"),
        ("workers = 2.5\n", {}, "setting 'workers': 2.5 is not a valid int"),
        ("host = 5\n", {}, "setting 'host': 5 is not a valid str"),
        ("", {"PACKYARD_OFFLINE": "maybe"}, "setting 'offline': 'maybe' is not a valid bool"),
        ("", {"PACKYARD_PORT": "80x"}, "setting 'port': '80x' is not a valid int"),
        ("restrict_modify = 5\n", {}, "setting 'restrict_modify': 5 is not a valid tuple"),
        ("port = [\n", {}, "not valid TOML"),
    ],
)
def test_mistyped_values_fail(
    tmp_path: Path, config: str, environ: dict[str, str], message: str
) -> None:
    _write_config(tmp_path, config)
    with pytest.raises(ConfigError) as raised:
        load_settings({"serverdir": str(tmp_path)}, environ=environ)
    assert message in raised.value.message


# --- bundle targets ---------------------------------------------------------------------------


def _tags(compressed: str) -> frozenset[Tag]:
    return frozenset(parse_tag(compressed))


def _installs(target: str, wheel_tags: str) -> bool:
    return bool(_tags(wheel_tags) & set(parse_target(target).tags()))


@pytest.mark.parametrize(
    ("target", "wheel_tags", "installs"),
    [
        # PEP 600: a glibc 2.17 system runs every older manylinux build, in either spelling.
        ("manylinux_2_17_x86_64-cp311", "cp36-abi3-manylinux_2_12_x86_64", True),
        ("manylinux_2_17_x86_64-cp311", "cp311-cp311-manylinux2010_x86_64", True),
        ("manylinux_2_17_x86_64-cp311", "cp311-cp311-manylinux1_x86_64", True),
        ("manylinux_2_17_x86_64-cp311", "py3-none-manylinux_2_5_x86_64", True),
        ("manylinux_2_17_x86_64-cp311", "cp311-cp311-manylinux_2_28_x86_64", False),
        ("manylinux_2_17_x86_64-cp311", "cp311-cp311-manylinux_2_17_aarch64", False),
        ("manylinux_2_17_x86_64-cp311", "cp312-cp312-manylinux_2_17_x86_64", False),
        ("manylinux_2_17_x86_64-cp311", "cp311-cp311-musllinux_1_1_x86_64", False),
        ("manylinux2014_aarch64-cp312", "cp312-cp312-manylinux_2_17_aarch64", True),
        ("manylinux_2_28_aarch64-cp312", "cp312-cp312-manylinux2014_aarch64", True),
        ("musllinux_1_2_x86_64-cp311", "cp311-cp311-musllinux_1_1_x86_64", True),
        ("musllinux_1_1_x86_64-cp311", "cp311-cp311-musllinux_1_2_x86_64", False),
        ("macosx_11_0_arm64-cp311", "cp311-cp311-macosx_10_9_universal2", True),
        ("macosx_11_0_arm64-cp311", "cp311-cp311-macosx_11_0_x86_64", False),
        ("macosx_12_0_x86_64-cp311", "cp311-cp311-macosx_10_9_x86_64", True),
        ("win_amd64-cp313", "cp313-cp313-win_amd64", True),
        ("win_amd64-cp313", "cp36-abi3-win_amd64", True),
        ("win_amd64-cp313", "py3-none-any", True),
        ("win_amd64-cp313", "cp313-cp313-win32", False),
    ],
)
def test_a_target_installs_exactly_its_compatible_tags(
    target: str, wheel_tags: str, installs: bool
) -> None:
    assert _installs(target, wheel_tags) is installs


def test_both_spellings_of_a_manylinux_target_are_one_tag_set() -> None:
    legacy, pep600 = (
        parse_target("manylinux2014_x86_64-cp311"),
        parse_target("manylinux_2_17_x86_64-cp311"),
    )
    assert legacy.tags() == pep600.tags()
    assert legacy.uv_platform() == pep600.uv_platform() == "x86_64-manylinux_2_17"


def test_pip_is_given_every_platform_and_abi_of_the_tag_set() -> None:
    target = parse_target("manylinux_2_17_x86_64-cp311")
    args = target.pip_args()
    platforms = {args[i + 1] for i, arg in enumerate(args) if arg == "--platform"}
    assert platforms == {tag.platform for tag in target.tags()} - {"any"}
    assert {"manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= platforms
    abis = {args[i + 1] for i, arg in enumerate(args) if arg == "--abi"}
    assert abis == {"cp311", "abi3", "none"}


@pytest.mark.parametrize(
    ("target", "uv_platform"),
    [
        ("manylinux_2_24_x86_64-cp311", "x86_64-manylinux_2_17"),  # uv's nearest not newer
        ("manylinux_2_31_aarch64-cp311", "aarch64-manylinux_2_31"),
        ("manylinux1_x86_64-cp39", "x86_64-manylinux_2_17"),  # uv's oldest
        ("musllinux_1_2_aarch64-cp311", "aarch64-unknown-linux-musl"),
        ("macosx_11_0_arm64-cp311", "aarch64-apple-darwin"),
        ("win_arm64-cp312", "aarch64-pc-windows-msvc"),
    ],
)
def test_uv_gets_a_platform_of_the_same_family(target: str, uv_platform: str) -> None:
    assert parse_target(target).uv_platform() == uv_platform


@pytest.mark.parametrize(
    "text",
    ["manylinux_x86_64-cp311", "manylinux2014_i686-cp311", "manylinux_2_12_aarch64-cp311",
     "solaris-cp311", "win_amd64-py3", "win_amd64"],
)  # fmt: skip
def test_an_invalid_target_lists_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_target(text)
    for form in ("win_amd64", "manylinux_2_17_x86_64", "manylinux2014_ARCH",
                 "musllinux_1_2_x86_64", "macosx_11_0_arm64", "cpXY"):  # fmt: skip
        assert form in raised.value.message
