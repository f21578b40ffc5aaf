"""The model contract in a scoring spec: written, read back, and refused where it is missing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.model import ContractError, LabelWindow, ModelContract, feature_params
from contract.scoring import FORMAT_VERSION
from features.definitions import FeatureConfig

configs = st.builds(
    FeatureConfig,
    lookback=st.timedeltas(timedelta(minutes=1), timedelta(days=400)),
    session_timeout=st.timedeltas(timedelta(seconds=1), timedelta(days=2)),
    local_time_offset=st.timedeltas(timedelta(hours=-14), timedelta(hours=14)),
)


@given(config=configs, horizon=st.timedeltas(timedelta(hours=1), timedelta(days=120)))
def test_the_contract_reads_back_as_written(config: FeatureConfig, horizon: timedelta) -> None:
    contract = ModelContract(
        feature_columns=("n_events",), feature_config=config, label=LabelWindow(horizon=horizon)
    )
    spec = {"kind": "logistic", "feature_columns": ["n_events"], **contract.spec_fields()}
    assert spec["format_version"] == FORMAT_VERSION
    assert ModelContract.from_spec(spec) == contract
    assert ModelContract.from_spec(spec).serving_config() == config


def test_a_spec_without_a_feature_configuration_says_retrain() -> None:
    old = {"format_version": 1, "kind": "logistic", "feature_columns": ["n_events"]}
    with pytest.raises(ContractError, match="retrain it"):
        ModelContract.from_spec(old)
    with pytest.raises(ContractError, match="retrain it"):
        ModelContract.from_spec({**old, "format_version": FORMAT_VERSION})


def test_a_model_of_a_ready_table_cannot_be_served() -> None:
    contract = ModelContract(feature_columns=("x",), feature_config=None)
    read = ModelContract.from_spec({"feature_columns": ["x"], **contract.spec_fields()})
    assert read.feature_config is None
    with pytest.raises(ContractError, match="ready feature table"):
        read.serving_config()


def test_params_name_every_window() -> None:
    config = FeatureConfig(lookback=timedelta(days=3), local_time_offset=timedelta(hours=-5))
    params = feature_params(config, LabelWindow(horizon=timedelta(days=7)))
    assert params == {
        "features.lookback": "P3D",
        "features.session_timeout": "PT30M",
        "features.local_time_offset": "-PT5H",
        "label.horizon": "P7D",
        "label.prediction_gap": "PT0S",
    }
    assert feature_params(None, None) == {}
