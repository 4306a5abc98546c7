"""Configuration mistakes read as one line naming the file and the key, for every stage."""

import pytest

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
