"""The gate policy: money and percentages as a user writes them, the most specific threshold
of each kind, and errors that name the file, the line and what is wrong."""

from __future__ import annotations

import pytest

from deploy_hooks import policy
from deploy_hooks.policy import Limit, PolicyError
from onepane.errors import ConfigError

# --- amounts of money and percentages ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.40 USD per 1k predictions", (0.4, "USD", "predictions")),
        ("$0.05/1k requests", (0.05, "USD", "requests")),
        ("$0.05 / 1k requests", (0.05, "USD", "requests")),
        ("$5 EUR", (5.0, "EUR", None)),
        ("0.05 usd per 1,000 requests", (0.05, "USD", "requests")),
        ("3 USD per run", (3.0, "USD", "runs")),
        ("3.00 USD per pipeline run", (3.0, "USD", "runs")),
        ("2 USD per 1M tokens", (2.0, "USD", "tokens")),
        ("2 EUR per million tokens", (2.0, "EUR", "tokens")),
        ("0.1 per 1000 inferences", (0.1, None, "predictions")),
        ("0.40 USD per 1K Predictions", (0.4, "USD", "predictions")),
        ("1,000 USD", (1000.0, "USD", None)),
        ("20_000 USD", (20000.0, "USD", None)),
        (".5", (0.5, None, None)),
        ("0", (0.0, None, None)),
        (5, (5.0, None, None)),
        (2.5, (2.5, None, None)),
    ],
)
def test_money_as_written(text: object, expected: tuple) -> None:
    assert policy.parse_money(text, "p.yaml line 1", per_unit=True) == expected


@pytest.mark.parametrize("text", ["abc", "USD 5", "5 dollars", "", "1.2.3 USD", None, [1]])
def test_text_that_is_not_money(text: object) -> None:
    with pytest.raises(PolicyError, match=r"^here: .* is not an amount of money, e.g\."):
        policy.parse_money(text, "here", per_unit=False)


def test_booleans_are_not_money() -> None:
    # YAML reads `yes` as True; True is an int to Python, but never an amount.
    with pytest.raises(PolicyError, match="not an amount of money"):
        policy.parse_money(True, "here", per_unit=True)


def test_the_example_in_a_money_error_fits_the_threshold() -> None:
    with pytest.raises(PolicyError, match=r"0\.40 USD per 1k predictions"):
        policy.parse_money("cheap", "here", per_unit=True)
    with pytest.raises(PolicyError, match="'5000 USD'"):
        policy.parse_money("cheap", "here", per_unit=False)


def test_negative_and_nan_amounts_are_refused() -> None:
    with pytest.raises(PolicyError, match="here: -5 must be 0 or more"):
        policy.parse_money(-5, "here", per_unit=False)
    with pytest.raises(PolicyError, match="must be 0 or more"):
        policy.parse_money(float("nan"), "here", per_unit=False)
    with pytest.raises(PolicyError, match="here: '-5 USD'"):
        policy.parse_money("-5 USD", "here", per_unit=False)


def test_an_unknown_unit_lists_the_known_ones() -> None:
    with pytest.raises(PolicyError) as info:
        policy.parse_money("1 USD per hour", "here", per_unit=True)
    message = str(info.value)
    assert message.startswith("here: unknown unit 'hour'")
    for known in ("per 1k requests", "per 1k predictions", "per run", "per 1M tokens"):
        assert known in message


def test_a_monthly_amount_cannot_be_per_unit() -> None:
    with pytest.raises(PolicyError, match="is a monthly amount; drop the 'per …' part"):
        policy.parse_money("3 USD per run", "here", per_unit=False)


@pytest.mark.parametrize(
    ("value", "expected"), [("25%", 25.0), ("25 %", 25.0), (25, 25.0), ("0%", 0.0), (12.5, 12.5)]
)
def test_percentages(value: object, expected: float) -> None:
    assert policy.parse_percent(value, "here") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5%", "must be 0% or more"),
        ("nan", "must be 0% or more"),
        ("lots", "is not a percentage"),
        (True, "is not a percentage"),
        ("25 USD", "is not a percentage"),
    ],
)
def test_bad_percentages(value: object, reason: str) -> None:
    with pytest.raises(PolicyError, match=f"^here: .*{reason}"):
        policy.parse_percent(value, "here")


# --- describing a limit -----------------------------------------------------------------


def test_limits_describe_themselves_as_a_user_wrote_them() -> None:
    unit = Limit("max_unit_cost", 0.4, "s", "predictions", "USD")
    assert unit.describe() == "0.4 USD per 1k predictions"
    assert Limit("max_unit_cost", 2, "s", "tokens", "EUR").describe() == "2 EUR per 1M tokens"
    assert Limit("max_unit_cost", 3, "s", "runs", None).describe() == "3 per run"
    assert Limit("max_monthly_cost", 20000, "s", None, "USD").describe() == "20000 USD"
    assert Limit("max_monthly_cost", 500, "s").describe() == "500"
    assert Limit("max_increase", 25, "s").describe() == "25% over the current release"
    assert unit.as_dict() == {
        "name": "max_unit_cost",
        "value": 0.4,
        "source": "s",
        "unit": "predictions",
        "currency": "USD",
    }


# --- the most specific threshold wins ---------------------------------------------------

POLICY = """\
all:
  max_increase: 25%
  max_monthly_cost: 50000 USD
kinds:
  model: {max_unit_cost: 0.40 USD per 1k predictions}
  app: {max_unit_cost: 0.05 USD per 1k requests}
  pipeline: {max_unit_cost: 3.00 USD per run}
teams:
  ml-platform: {max_monthly_cost: 20000 USD, max_unit_cost: 0.35 USD per 1k predictions}
workloads:
  prod/fraud-model: {max_unit_cost: 0.30 USD per 1k predictions}
environments:
  staging:
    all: {max_monthly_cost: 500 USD}
    kinds:
      model: {max_unit_cost: 0.80 USD per 1k predictions}
    teams:
      ml-platform: {max_increase: 50%}
"""


@pytest.fixture
def rules() -> policy.Policy:
    return policy.from_file_text(POLICY, "gate.yaml")


def _values(limits: dict[str, Limit]) -> dict[str, float]:
    return {name: limit.value for name, limit in limits.items()}


def test_all_applies_to_every_workload(rules: policy.Policy) -> None:
    found = rules.limits("prod", "shop/cart", None, "app")
    assert _values(found) == {
        "max_increase": 25.0,
        "max_monthly_cost": 50000.0,
        "max_unit_cost": 0.05,
    }
    assert found["max_unit_cost"].unit == "requests"
    assert found["max_unit_cost"].currency == "USD"


def test_workload_beats_team_beats_kind_beats_all(rules: policy.Policy) -> None:
    fraud = rules.limits("prod", "prod/fraud-model", "ml-platform", "model")
    assert _values(fraud) == {
        "max_unit_cost": 0.30,  # workload
        "max_monthly_cost": 20000.0,  # team
        "max_increase": 25.0,  # all
    }
    assert fraud["max_unit_cost"].source == "gate.yaml line 11 (policy.workloads.prod/fraud-model)"
    assert fraud["max_monthly_cost"].source == "gate.yaml line 9 (policy.teams.ml-platform)"
    assert fraud["max_increase"].source == "gate.yaml line 2 (policy.all)"
    other = rules.limits("prod", "prod/churn-model", "ml-platform", "model")
    assert other["max_unit_cost"].value == 0.35  # team, not kind
    assert rules.limits("prod", "prod/x", "web", "model")["max_unit_cost"].value == 0.40  # kind


def test_no_team_skips_the_team_level(rules: policy.Policy) -> None:
    found = rules.limits("prod", "prod/churn-model", None, "model")
    assert found["max_unit_cost"].value == 0.40
    assert found["max_monthly_cost"].value == 50000.0


def test_an_environment_beats_the_general_setting_at_the_same_level(
    rules: policy.Policy,
) -> None:
    found = rules.limits("staging", "staging/churn-model", None, "model")
    assert found["max_unit_cost"].value == 0.80
    assert found["max_unit_cost"].source == (
        "gate.yaml line 16 (policy.environments.staging.kinds.model)"
    )
    assert found["max_monthly_cost"].value == 500.0
    assert found["max_increase"].value == 25.0  # nothing for staging: the general one


def test_a_general_setting_at_a_more_specific_level_beats_an_environment(
    rules: policy.Policy,
) -> None:
    # staging sets max_unit_cost for models, but prod/fraud-model's workload setting is more
    # specific; staging's team setting beats the general `all` for max_increase.
    found = rules.limits("staging", "prod/fraud-model", "ml-platform", "model")
    assert _values(found) == {
        "max_unit_cost": 0.30,
        "max_monthly_cost": 20000.0,
        "max_increase": 50.0,
    }


def test_thresholds_resolve_independently() -> None:
    rules = policy.from_file_text(
        "all: {max_unit_cost: 1 USD per 1k requests}\n"
        "workloads:\n"
        "  prod/api: {max_increase: 10%}\n",
        "p.yaml",
    )
    found = rules.limits("prod", "prod/api", None, "app")
    assert found["max_increase"].value == 10.0
    assert found["max_unit_cost"].value == 1.0  # not hidden by the workload's own entry


def test_other_environments_and_workloads_are_untouched(rules: policy.Policy) -> None:
    assert rules.limits("dev", "dev/web", None, "app")["max_monthly_cost"].value == 50000.0
    assert rules.environments() == ["staging"]


def test_an_empty_policy_sets_nothing() -> None:
    assert policy.EMPTY.limits("prod", "prod/a", "t", "app") == {}
    assert policy.from_file_text("", "p.yaml").limits("prod", "prod/a", None, "app") == {}
    assert policy.from_file_text("gate: {}\n", "p.yaml").rules == {}


# --- the three shapes of a policy file --------------------------------------------------


def test_a_whole_onepane_yaml_reads_gate_policy() -> None:
    text = (
        "server:\n"
        "  listen: 127.0.0.1:4318\n"
        "gate:\n"
        "  policy:\n"
        "    kinds:\n"
        "      model:\n"
        "        max_unit_cost: 0.40 USD per 1k predictions\n"
    )
    rules = policy.from_file_text(text, "onepane.yaml")
    limit = rules.limits("prod", "ml/fraud", None, "model")["max_unit_cost"]
    assert limit == Limit(
        "max_unit_cost",
        0.4,
        "onepane.yaml line 7 (gate.policy.kinds.model)",
        "predictions",
        "USD",
    )
    assert rules.source == "onepane.yaml"


def test_a_file_with_a_policy_key() -> None:
    rules = policy.from_file_text("policy:\n  all:\n    max_increase: 10%\n", "gate.yaml")
    limit = rules.limits("prod", "a/b", None, "app")["max_increase"]
    assert (limit.value, limit.source) == (10.0, "gate.yaml line 3 (policy.all)")


def test_a_bare_policy() -> None:
    rules = policy.from_file_text("all:\n  max_monthly_cost: 100\n", "bare.yaml")
    limit = rules.limits("prod", "a/b", None, "app")["max_monthly_cost"]
    assert (limit.value, limit.currency, limit.source) == (
        100.0,
        None,
        "bare.yaml line 2 (policy.all)",
    )


# --- errors name the file, the line and the reason --------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "all:\n  max_increase: 25%\n  max_cost: 5\n",
            3,
            "policy.all.max_cost: unknown threshold; use max_unit_cost, max_increase, "
            "max_monthly_cost",
        ),
        (
            "kinds:\n  model: {max_unit_cost: 1 USD per 1k predictions}\n  batch: {}\n",
            3,
            "unknown kind 'batch'; use app, model, pipeline",
        ),
        (
            "workloads:\n  prod/a: {max_increase: 5}\n  fraud-model:\n    max_increase: 5\n",
            3,
            "workload 'fraud-model' must be namespace/name",
        ),
        (
            "kinds:\n  app:\n    max_unit_cost: 0.05 USD per 1k widgets\n",
            3,
            "policy.kinds.app.max_unit_cost: unknown unit '1k widgets'",
        ),
        ("all:\n  max_increase: 5\n  max_monthly_cost: -5\n", 3, "-5 must be 0 or more"),
        ("all:\n  max_increase: -1%\n", 2, "'-1%' must be 0% or more"),
        (
            "teams:\n  ml:\n    max_monthly_cost: 3 USD per run\n",
            3,
            "policy.teams.ml.max_monthly_cost: '3 USD per run' is a monthly amount",
        ),
        ("all: 5\n", 1, "policy.all must be a mapping of max_unit_cost"),
        ("kinds:\n  - model\n", 1, "policy.kinds must be a mapping of names to thresholds"),
        ("kinds:\n  model: 0.4\n", 2, "policy.kinds.model must be a mapping"),
        ("alll:\n  max_increase: 5\n", 1, "unknown key 'alll' in policy; use workloads"),
        ("environments:\n  staging: 5\n", 2, "environment 'staging' must be a mapping"),
        ("environments:\n  - staging\n", 1, "environments must be a mapping"),
        (
            "environments:\n  staging:\n    all: {}\n    environments: {}\n",
            4,
            "unknown key 'environments' in policy.environments.staging",
        ),
        (
            "environments:\n  staging:\n    workloads:\n      web: {max_increase: 5}\n",
            4,
            "workload 'web' must be namespace/name",
        ),
        ("all:\n  max_increase: 25%\n bad: [\n", 3, "not valid YAML"),
        ("gate:\n  policy: [1]\n", 2, "gate.policy must be a mapping of workloads"),
    ],
)
def test_a_malformed_policy_names_file_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy.from_file_text(text, "policy.yaml")
    message = str(info.value)
    assert message.startswith(f"policy.yaml line {line}: "), message
    assert reason in message


def test_lines_count_from_the_top_of_a_whole_onepane_yaml() -> None:
    text = (
        "# Onepane\n"
        "server: {}\n"
        "\n"
        "gate:\n"
        "  policy:\n"
        "    kinds:\n"
        "      model: {max_unit_cost: 0.4 USD per 1k predictions}\n"
        "      app: {max_unit_cost: 0.05 USD per 1k bananas}\n"
    )
    with pytest.raises(PolicyError, match=r"^onepane.yaml line 8: gate\.policy\.kinds\.app\."):
        policy.from_file_text(text, "onepane.yaml")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- a\n- b\n", "must be a mapping (the gate policy), not a list"),
        ("5\n", "must be a mapping (the gate policy), not a int"),
        ("all: {}\n---\nall: {}\n", "holds 2 YAML documents; give one"),
    ],
)
def test_a_file_that_is_not_one_mapping(text: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy.from_file_text(text, "policy.yaml")
    assert str(info.value) == f"policy.yaml: {reason}"


def test_a_policy_error_is_a_config_error() -> None:
    # The CLI turns ConfigError into exit 2 with the message; PolicyError must be one.
    with pytest.raises(ConfigError):
        policy.from_file_text("all: 5\n", "p.yaml")
