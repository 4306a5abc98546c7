"""Configuration mistakes read as one line naming the file and the key, for every stage."""

import pytest
import yaml

from cdp_pipelines.identity.config import IdentityConfigError, load_identity_config, load_overrides
from cdp_pipelines.settings import PROJECT_ROOT


def test_missing_file_broken_yaml_and_wrong_values_name_the_file_and_key(tmp_path):
    with pytest.raises(IdentityConfigError, match="identity.yaml: file not found"):
        load_identity_config(tmp_path / "identity.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("deterministic: [unclosed\n")
    with pytest.raises(IdentityConfigError, match="broken.yaml: not valid YAML"):
        load_identity_config(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(IdentityConfigError, match="expected a mapping of settings at the top level"):
        load_identity_config(listed)
    wrong = tmp_path / "wrong.yaml"
    text = (PROJECT_ROOT / "config" / "identity.yaml").read_text()
    wrong.write_text(text.replace("email: {max_people: 1}", "emial: {max_people: 1}"))
    with pytest.raises(IdentityConfigError, match=r"wrong.yaml: deterministic.identifiers: .*unknown identifier\(s\) \['emial'\]"):
        load_identity_config(wrong)


def test_overrides_need_source_and_record(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    assert load_overrides(overrides).must_link == []  # no file: no overrides
    overrides.write_text("must_link:\n  - {a: 'crm_accounts:A1', b: 'A2'}\n")
    with pytest.raises(IdentityConfigError, match=r"must_link.0.b: 'A2' must be written as '<source>:<source_record_id>'"):
        load_overrides(overrides)


CONFIG = PROJECT_ROOT / "config"


def _loaders():
    from cdp_pipelines.context.runner import VariableError, load_variables
    from cdp_pipelines.ingest.quality_suites import QualityConfigError, load_suites
    from cdp_pipelines.profiles.config_files import ProfilesConfigError
    from cdp_pipelines.profiles.consent import load_consent_config
    from cdp_pipelines.profiles.survivorship import load_survivorship_config
    from cdp_pipelines.serving.config import ServingConfigError, load_config as load_serving
    from cdp_pipelines.standardize.config import StandardizeConfigError, load_config as load_standardize

    return {
        "identity.yaml": (load_identity_config, IdentityConfigError),
        "identity_overrides.yaml": (load_overrides, IdentityConfigError),
        "survivorship.yaml": (load_survivorship_config, ProfilesConfigError),
        "consent.yaml": (load_consent_config, ProfilesConfigError),
        "standardize.yaml": (load_standardize, StandardizeConfigError),
        "serving.yaml": (load_serving, ServingConfigError),
        "quality.yaml": (load_suites, QualityConfigError),
        "context.yaml": (load_variables, VariableError),
    }


def test_every_shipped_config_file_loads():
    for name, (load, _) in _loaders().items():
        load(CONFIG / name)


@pytest.mark.parametrize(("name", "written", "misspelled", "key_path"), [
    ("survivorship.yaml", "exclude_sources: [social_posts]        #", "exclude_source: [social_posts]        #",
     r"attributes.first_name.exclude_source: unknown key .*allowed: .*exclude_sources"),
    ("identity.yaml", "  match_probability:", "  match_probabilty:",
     r"probabilistic.match_probabilty: unknown key .*allowed: .*match_probability"),
    ("identity.yaml", "email: {max_people: 1}", "email: {max_peple: 1}",
     r"deterministic.identifiers.email.max_peple: unknown key .*allowed: max_people, people_by, phone_kinds"),
    ("identity_overrides.yaml", "must_link: []", "must_links: []", r"must_links: unknown key"),
    ("standardize.yaml", "\nphones:", "\nphone:", r"phone: unknown key .*allowed: placeholders, phones"),
    ("standardize.yaml", "    accept: true", "    acept: true",
     r"phones.fictional_ranges.acept: unknown key .*allowed: accept, length, ranges"),
    ("consent.yaml", "    decided_at_column: src_consent_updated_at\n  - source: crm_accounts",
     "    decided_at_colum: src_consent_updated_at\n  - source: crm_accounts",
     r"signals.0.decided_at_colum: unknown key .*allowed: .*decided_at_column"),
    ("context.yaml", "\nvars:", "\nbogus_key: 1\nvars:", r"bogus_key: unknown key .*allowed: version, vars"),
    ("quality.yaml", "\nsuites:", "\nbogus_key: 1\nsuites:", r"bogus_key: unknown key .*allowed: max_rows_validated, max_quarantined_row_ratio, suites"),
    ("quality.yaml", "    required_columns: [\"{record_id}\"]", "    required_column: [\"{record_id}\"]",
     r"suites.profile.required_column: unknown key"),
    ("serving.yaml", "\nroles:", "\nbogus_key: 1\nroles:", r"bogus_key: unknown key .*allowed: schemas, roles"),
    ("serving.yaml", "    load_in_key_order: true", "    load_in_key_ordr: true",
     r"tables.identity_lookup.load_in_key_ordr: unknown key"),
])
def test_a_misspelled_key_is_refused_naming_the_file_and_key_path(tmp_path, name, written, misspelled, key_path):
    load, error = _loaders()[name]
    text = (CONFIG / name).read_text(encoding="utf-8")
    assert written in text
    path = tmp_path / name
    path.write_text(text.replace(written, misspelled, 1), encoding="utf-8")
    with pytest.raises(error, match=f"{name}: {key_path}") as raised:
        load(path)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["identity.yaml", "consent.yaml", "standardize.yaml", "serving.yaml",
                                  "quality.yaml", "context.yaml", "generator.yaml"])
def test_a_directory_or_non_utf8_file_is_one_line(tmp_path, name):
    from cdp_pipelines.synthetic.config import GeneratorConfigError, load_config as load_generator

    load, error = {**_loaders(), "generator.yaml": (load_generator, GeneratorConfigError)}[name]
    folder = tmp_path / "folder" / name
    folder.mkdir(parents=True)
    with pytest.raises(error, match=f"{name}: is a directory, expected a YAML file"):
        load(folder)
    latin1 = tmp_path / name
    latin1.write_bytes("# caf\xe9\nversion: 1\n".encode("latin-1"))
    with pytest.raises(error, match=f"{name}: not UTF-8 text \\(byte 0xe9 at offset 5\\)"):
        load(latin1)


def test_yaml_syntax_errors_are_one_line_with_line_and_column(tmp_path):
    broken = tmp_path / "identity.yaml"
    broken.write_text("deterministic:\n  identifiers: [unclosed\n")
    with pytest.raises(IdentityConfigError) as raised:
        load_identity_config(broken)
    message = str(raised.value)
    assert "\n" not in message
    assert "identity.yaml: not valid YAML: " in message and "expected ',' or ']' (line 3, column 1)" in message
    assert "flow sequence at line 2, column 16" in message


def test_lineage_reading_of_a_non_utf8_consent_file_leaves_the_error_to_the_run(tmp_path, monkeypatch):
    from cdp_pipelines import settings
    from cdp_pipelines.profiles.assets import _sources_named_in

    (tmp_path / "consent.yaml").write_bytes(b"signals: [{source: caf\xe9}]\n")
    monkeypatch.setenv(settings.ENV_CONFIG_DIR, str(tmp_path))
    assert _sources_named_in("consent.yaml", ("signals",)) == []


def test_blocking_rules_and_comparison_sql_name_node_columns(tmp_path):
    text = (CONFIG / "identity.yaml").read_text()
    for written, wrong, message in [
        ("    - [address_line]\n", "    - [adress_line]\n",
         r"probabilistic.blocking_rules: unknown column\(s\) \['adress_line'\] in rule \['adress_line'\]; "
         r"allowed: \['given_name', .*'address_line'\]"),
        ("      - [postcode]\n", "      - [postcod]\n", r"probabilistic.training.em_blocking_rules: unknown column"),
        ('sql: "postcode_l = postcode_r"', 'sql: "postcod_l = postcode_r"',
         r"probabilistic.comparisons.5.levels.2.sql: unknown column\(s\) \['postcod_l'\]; allowed: \['given_name_l'"),
        ("{type: NameComparison, column: last_name", "{type: NameComparison, column: full_name",
         r"probabilistic.comparisons.1.column: column 'full_name' is not comparable"),
        ("people_by: web_user_id", "people_by: web_user", r"cookie_id.people_by: unknown column 'web_user'"),
    ]:
        assert written in text
        path = tmp_path / "identity.yaml"
        path.write_text(text.replace(written, wrong, 1))
        with pytest.raises(IdentityConfigError, match=message):
            load_identity_config(path)


def test_an_unquoted_null_key_of_a_comparison_level_is_read_as_the_setting(tmp_path):
    # YAML reads `null: true` as the key None: it must still mark the level as Splink's null level.
    text = (CONFIG / "identity.yaml").read_text()
    written = '- {label: "address missing",'
    assert written in text
    path = tmp_path / "identity.yaml"
    path.write_text(text.replace(written, '- {label: "address missing", null: true,', 1))
    levels = load_identity_config(path).probabilistic.comparisons[5].levels
    assert [level.null for level in levels] == [True, False, False, False, False, False]
    shipped = load_identity_config(CONFIG / "identity.yaml").probabilistic.comparisons[5].levels
    assert not any(level.null for level in shipped)


def test_a_config_file_that_is_a_directory_exits_2_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    config = tmp_path / "config"
    (config / "generator.yaml").mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "cdp_pipelines.cli", "generate", "--persons", "100", "--out", str(tmp_path / "out")],
        env={**os.environ, "CDP_CONFIG_DIR": str(config), "COLUMNS": "400"}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 2, result.stderr
    assert "generator.yaml: is a directory, expected a YAML file" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_refused_config_keeps_no_validation_error_alive(tmp_path):
    # A validator's own exception holds the frames of the step that loaded the file (DuckDB
    # objects among them); chained to the reported error, it outlived the run and DuckDB's
    # bindings reported leaked objects at exit.
    text = (CONFIG / "identity.yaml").read_text()
    path = tmp_path / "identity.yaml"
    path.write_text(text.replace("- [address_line]", "- [adress_line]", 1))
    with pytest.raises(IdentityConfigError, match="adress_line") as raised:
        load_identity_config(path)
    assert raised.value.__context__ is None and raised.value.__cause__ is None


def test_yaml_is_read_as_safe_load_reads_it_and_refuses_what_safe_load_refuses():
    from cdp_pipelines.config_files import load_yaml

    for path in (PROJECT_ROOT / "config").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert load_yaml(text) == yaml.safe_load(text), path.name
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']\n")  # no arbitrary objects


def test_quality_settings_are_read_again_when_the_file_changes(tmp_path):
    from cdp_pipelines.ingest.quality_suites import max_quarantined_row_ratio, max_rows_validated

    quality = tmp_path / "quality.yaml"
    original = (PROJECT_ROOT / "config" / "quality.yaml").read_text()
    assert "max_rows_validated: 50000\n" in original
    quality.write_text(original.replace("max_rows_validated: 50000\n", "max_rows_validated: 7\n"))
    assert max_rows_validated(quality) == 7
    assert max_quarantined_row_ratio(quality).warning == 0.05
    quality.write_text(original.replace("max_rows_validated: 50000\n", "max_rows_validated: 12345\n")
                       .replace("  warning: 0.05\n", "  warning: 0.5\n"))
    assert max_rows_validated(quality) == 12345
    assert max_quarantined_row_ratio(quality).warning == 0.5
