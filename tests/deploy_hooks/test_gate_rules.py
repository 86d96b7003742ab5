"""The gate's rules: figures against thresholds and the verdict, a CronJob's runs in a month,
the Markdown report of a decision, and Kubernetes resource quantities."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from collectors.k8s.resources import effective_resources, gpu_amount, parse_quantity, quantity
from deploy_hooks import gate, report
from deploy_hooks.cron import runs_per_month
from deploy_hooks.manifests import ManifestError
from deploy_hooks.policy import Limit, PolicyError

SRC = "onepane.yaml line 12 (gate.policy.kinds.model)"
UNIT = Limit("max_unit_cost", 0.40, SRC, "predictions", "USD")
INCREASE = Limit("max_increase", 25.0, "onepane.yaml line 8 (gate.policy.all)")
MONTHLY = Limit("max_monthly_cost", 1000.0, "onepane.yaml line 9 (gate.policy.all)", None, "USD")
LIMITS = {"max_monthly_cost": MONTHLY, "max_unit_cost": UNIT, "max_increase": INCREASE}


def _figures(**kw: Any) -> gate.Figures:
    base: dict[str, Any] = {
        "unit": "predictions",
        "unit_cost": 0.30,
        "current_unit_cost": 0.30,
        "monthly": 500.0,
    }
    return gate.Figures(**{**base, **kw})


def _by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["threshold"]: c for c in found}


# --- gate.checks ------------------------------------------------------------------------


def test_checks_come_in_a_fixed_order_with_what_a_report_needs() -> None:
    found = gate.checks(LIMITS, _figures(), "USD")
    assert [c["threshold"] for c in found] == ["max_unit_cost", "max_increase", "max_monthly_cost"]
    assert found[0] == {
        "threshold": "max_unit_cost",
        "limit": 0.40,
        "limit_text": "0.4 USD per 1k predictions",
        "source": SRC,
        "value": 0.30,
        "passed": True,
        "detail": "0.3000 USD per 1k predictions",
    }
    assert found[1]["detail"] == "+0.0% per 1k predictions: 0.3000 USD → 0.3000 USD"
    assert found[2]["detail"] == "500.00 USD a month"
    assert gate.verdict(found, None) == gate.PASS


@pytest.mark.parametrize(
    ("unit_cost", "passed"), [(0.40, True), (0.3999, True), (0.4001, False), (0.0, True)]
)
def test_unit_cost_at_the_boundary(unit_cost: float, passed: bool) -> None:
    [check] = gate.checks({"max_unit_cost": UNIT}, _figures(unit_cost=unit_cost), "USD")
    assert check["passed"] is passed
    assert check["value"] == unit_cost


@pytest.mark.parametrize(
    ("current", "new", "passed", "value"),
    [
        (0.32, 0.40, True, 25.0),  # exactly 25%, despite 0.40 / 0.32 in floating point
        (0.32, 0.41, False, 28.125),
        (0.40, 0.30, True, -25.0),  # cheaper
    ],
)
def test_increase_at_the_boundary(current: float, new: float, passed: bool, value: float) -> None:
    figures = _figures(unit_cost=new, current_unit_cost=current)
    [check] = gate.checks({"max_increase": INCREASE}, figures, "USD")
    assert check["passed"] is passed
    assert check["value"] == pytest.approx(value)
    assert check["limit_text"] == "25% over the current release"


def test_increase_detail_names_both_costs() -> None:
    figures = _figures(unit_cost=0.41, current_unit_cost=0.32)
    [check] = gate.checks({"max_increase": INCREASE}, figures, "USD")
    assert check["detail"] == "+28.1% per 1k predictions: 0.3200 USD → 0.4100 USD"


def test_increase_falls_back_to_the_cost_per_hour() -> None:
    figures = _figures(unit_cost=None, current_unit_cost=None, current_hourly=2.0, hourly=2.6)
    [check] = gate.checks({"max_increase": INCREASE}, figures, "USD")
    assert check["value"] == pytest.approx(30.0)
    assert check["passed"] is False
    assert check["detail"] == "+30.0% per hour: 2.0000 USD → 2.6000 USD"


def test_monthly_cost_at_the_boundary_and_its_max() -> None:
    [ok] = gate.checks({"max_monthly_cost": MONTHLY}, _figures(monthly=1000.0), "USD")
    assert ok["passed"] is True
    figures = _figures(monthly=1000.01, monthly_max=4000.0)
    [over] = gate.checks({"max_monthly_cost": MONTHLY}, figures, "USD")
    assert over["passed"] is False
    assert over["detail"] == "1,000.01 USD a month (up to 4,000.00 USD at max replicas)"


def test_the_max_is_not_shown_when_it_is_no_higher() -> None:
    figures = _figures(monthly=800.0, monthly_max=800.0)
    [check] = gate.checks({"max_monthly_cost": MONTHLY}, figures, "USD")
    assert check["detail"] == "800.00 USD a month"


@pytest.mark.parametrize(
    ("limit", "figures", "why"),
    [
        (
            UNIT,
            _figures(unit_cost=None),
            "not checked: no cost per 1k predictions could be worked out",
        ),
        (
            INCREASE,
            _figures(current_unit_cost=None),
            "not checked: no current release to compare with",
        ),
        (
            INCREASE,
            _figures(current_unit_cost=0.0),
            "not checked: no current release to compare with",
        ),
        (MONTHLY, _figures(monthly=None), "not checked: no monthly cost could be projected"),
    ],
)
def test_a_missing_figure_is_not_checked(limit: Limit, figures: gate.Figures, why: str) -> None:
    [check] = gate.checks({limit.name: limit}, figures, "USD")
    assert check["passed"] is None
    assert check["value"] is None
    assert check["detail"] == why
    assert gate.verdict([check], None) == gate.PASS  # not checked does not block


def test_a_limit_without_currency_takes_the_prices_currency() -> None:
    limit = Limit("max_monthly_cost", 100.0, "p.yaml line 2 (policy.all)")
    [check] = gate.checks({"max_monthly_cost": limit}, _figures(monthly=50.0), "EUR")
    assert check["passed"] is True
    assert check["detail"] == "50.0000 EUR a month"


def test_a_currency_mismatch_names_the_source() -> None:
    with pytest.raises(PolicyError) as info:
        gate.checks({"max_unit_cost": UNIT}, _figures(), "EUR")
    assert str(info.value) == (
        f"{SRC}: max_unit_cost is in USD but prices are in EUR; write the amount in EUR"
    )


def test_a_unit_mismatch_names_the_source() -> None:
    with pytest.raises(PolicyError) as info:
        gate.checks({"max_unit_cost": UNIT}, _figures(unit="requests"), "USD")
    assert str(info.value) == (
        f"{SRC}: max_unit_cost is per 1k predictions, but this workload is counted per "
        "1k requests; set a threshold per 1k requests for it"
    )


def test_a_unit_cost_limit_without_unit_fits_any_workload() -> None:
    limit = Limit("max_unit_cost", 3.0, "p.yaml line 3 (policy.kinds.pipeline)", None, "USD")
    [check] = gate.checks({"max_unit_cost": limit}, _figures(unit="runs", unit_cost=3.5), "USD")
    assert check["passed"] is False
    assert check["detail"] == "3.5000 USD per run"


# --- gate.verdict -----------------------------------------------------------------------


def _check(passed: bool | None) -> dict[str, Any]:
    return {"threshold": "max_unit_cost", "passed": passed}


def test_verdicts() -> None:
    override = gate.Override("black friday", "alice")
    assert gate.verdict([], None) == gate.PASS
    assert gate.verdict([_check(True), _check(None)], None) == gate.PASS
    assert gate.verdict([_check(True), _check(False)], None) == gate.BLOCKED
    assert gate.verdict([_check(False)], override) == gate.OVERRIDDEN
    assert gate.verdict([_check(True)], override) == gate.PASS  # nothing to override
    assert [gate.EXIT_CODES[v] for v in (gate.PASS, gate.BLOCKED, gate.OVERRIDDEN)] == [0, 1, 0]
    assert gate.EXIT_CODES[gate.UNDECIDED] == 2


def test_money() -> None:
    assert gate.money(None, "USD") == "n/a"
    assert gate.money(0.123456, "USD") == "0.1235 USD"
    assert gate.money(99.99, "EUR") == "99.9900 EUR"
    assert gate.money(1234.5, "USD") == "1,234.50 USD"
    assert gate.money(-250.0, "USD") == "-250.00 USD"


# --- cron.runs_per_month ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("*/15 * * * *", 2880),
        ("* * * * *", 43200),
        ("0 2 * * *", 30),
        ("@hourly", 720),
        ("@daily", 30),
        ("@midnight", 30),
        ("@weekly", 4),  # the Sundays of 1-30 January 2025
        ("@monthly", 1),
        ("5/15 * * * *", 2880),  # 5, 20, 35, 50
        ("0 9 * * 1-5", 22),  # weekdays of 1-30 January 2025
        ("0 9 * * mon-fri", 22),
        ("0 9 * * MON-FRI", 22),
        ("*/10 9-17 * * 1-5", 6 * 9 * 22),
        ("0 0 1,15 * *", 2),
        ("0 0 */2 * *", 15),
        ("0 0 * * 0", 4),
        ("0 0 * * 7", 4),  # 7 is Sunday too
        ("0 0 * * sun", 4),
        ("0 0 * * 5-7", 12),
        ("0 0 * jan *", 30),
        ("0 0 * JAN-MAR *", 30),
        ("CRON_TZ=Europe/Paris 0 2 * * *", 30),
        ("TZ=UTC 0 2 * * *", 30),
    ],
)
def test_runs_per_month(schedule: str, runs: int) -> None:
    assert runs_per_month(schedule) == float(runs)


def test_day_of_month_and_day_of_week_are_either() -> None:
    # both restricted: the 1st (a Wednesday) or any Monday (6, 13, 20, 27)
    assert runs_per_month("0 0 1 * 1") == 5.0
    assert runs_per_month("0 0 1 * mon") == 5.0
    # one of them *, ? or */n: the other decides (as the CronJob controller's robfig/cron)
    assert runs_per_month("0 0 * * 1") == 4.0
    assert runs_per_month("0 0 ? * 1") == 4.0
    assert runs_per_month("0 0 1 * ?") == 1.0
    assert runs_per_month("0 0 */2 * 1") == 2.0  # odd days that are Mondays: 13 and 27


def test_runs_in_a_given_number_of_days() -> None:
    assert runs_per_month("0 * * * *", days=7) == 168.0


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "* * * *",
        "* * * * * *",
        "@every 5m",
        "61 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "0 0 * * foo",
        "0 0 * * 6-0",
        "-1 * * * *",
        "1-2-3 * * * *",
        "a b c d e",
    ],
)
def test_bad_schedules(schedule: str) -> None:
    with pytest.raises(ManifestError) as info:
        runs_per_month(schedule)
    assert str(info.value).startswith(f"schedule {schedule!r}")


# --- report.render ----------------------------------------------------------------------


def _decision(verdict: str, **kw: Any) -> dict[str, Any]:
    checks = [
        {
            "threshold": "max_unit_cost",
            "limit": 0.40,
            "limit_text": "0.4 USD per 1k predictions",
            "source": SRC,
            "value": 0.52,
            "passed": False,
            "detail": "0.5200 USD per 1k predictions",
        },
        {
            "threshold": "max_increase",
            "limit": 25.0,
            "limit_text": "25% over the current release",
            "source": "onepane.yaml line 8 (gate.policy.all)",
            "value": 30.0,
            "passed": False,
            "detail": "+30.0% per 1k predictions: 0.4000 USD → 0.5200 USD",
        },
        {
            "threshold": "max_monthly_cost",
            "limit": 20000.0,
            "limit_text": "20000 USD",
            "source": "onepane.yaml line 10 (gate.policy.teams.ml-platform)",
            "value": None,
            "passed": None,
            "detail": "not checked: no monthly cost could be projected",
        },
    ]
    return {
        "action": "check",
        "verdict": verdict,
        "workload": "ml/fraud",
        "version": "v7",
        "environment": "prod",
        "kind": "model",
        "team": "ml-platform",
        "unit": "1k predictions",
        "currency": "USD",
        "checks": checks,
        "release": {"read": ["InferenceService ml/fraud (isvc.yaml line 1)"]},
        "rates": {
            "cpu_core_hour": 0.05,
            "ram_gib_hour": 0.01,
            "gpu_hour": 2.0,
            "source": "defaults",
        },
        "projection": {
            "current_unit_cost": 0.40,
            "unit_cost": 0.52,
            "current_hourly": 2.0,
            "hourly": 2.6,
            "monthly": 1898.0,
            "components": [
                {
                    "name": "InferenceService fraud predictor",
                    "replicas": 2,
                    "cpu": 2.0,
                    "memory_gib": 8.0,
                    "gpus": 1.0,
                    "pod_hourly": 2.18,
                }
            ],
        },
        "observed": {
            "throughput_per_hour": 5000.0,
            "units": 120000,
            "serving_hours": 24.0,
            "unit_cost": 0.51,
        },
        "notes": ["the predictor autoscales: projected at its minimum"],
        "decision_id": 42,
        **kw,
    }


def test_a_blocked_report() -> None:
    text = report.render(_decision("blocked"), "onepane gate check --workload ml/fraud")
    assert text.startswith(
        "## Onepane gate check: ❌ blocked — `ml/fraud` v7 (prod)\n\n"
        "model of team ml-platform, counted per 1k predictions.\n"
    )
    assert f"| Unit cost | 0.5200 USD | ≤ 0.4 USD per 1k predictions | {SRC} | ❌ over |" in text
    assert (
        "| Unit cost increase | +30.0% | ≤ 25% over the current release | "
        "onepane.yaml line 8 (gate.policy.all) | ❌ over |" in text
    )
    assert (
        "| Monthly cost | n/a | ≤ 20000 USD | onepane.yaml line 10 "
        "(gate.policy.teams.ml-platform) | ➖ not checked |" in text
    )
    assert "| Cost per 1k predictions | 0.4000 USD | 0.5200 USD |" in text
    assert "| Cost per hour | 2.0000 USD | 2.6000 USD |" in text
    assert "| Cost per month | 1,460.00 USD | 1,898.00 USD |" in text  # 2.0 × 730 hours
    assert "- InferenceService ml/fraud (isvc.yaml line 1)" in text
    assert (
        "- InferenceService fraud predictor: 2 × (2 CPU, 8 GiB, 1 GPU) at 2.1800 USD per "
        "pod-hour" in text
    )
    assert (
        "- prices: 0.0500 USD per core-hour, 0.0100 USD per GiB-hour, 2.0000 USD per "
        "GPU-hour, from defaults" in text
    )
    assert "- throughput: 120,000 predictions in 24.00 h of traffic: 5,000.0 an hour" in text
    assert "- observed: 0.5100 USD per 1k predictions" in text
    assert "**Notes**\n\n- the predictor autoscales: projected at its minimum\n" in text
    assert text.endswith(
        "**Blocked by policy** (decision 42). To release anyway, run again with "
        '`onepane gate check --workload ml/fraud --override-reason "why" --approver NAME`: '
        "the override is recorded in the audit log.\n"
    )


def test_a_blocked_report_without_a_command_or_a_record() -> None:
    text = report.render(_decision("blocked", decision_id=None))
    assert (
        "**Blocked by policy** (not recorded (dry run)). To release anyway, run again with "
        '`--override-reason "why" --approver NAME`' in text
    )


def test_an_overridden_report_names_approver_and_reason() -> None:
    decision = _decision(
        "overridden", approver="alice@example.com", override_reason="launch day traffic"
    )
    text = report.render(decision, "onepane gate check")
    assert "⚠️ overridden — `ml/fraud` v7 (prod)" in text.splitlines()[0]
    assert text.endswith("**Overridden** by alice@example.com: launch day traffic (decision 42).\n")
    assert "--override-reason" not in text
    assert "❌ over" in text  # the failed checks are still shown


def test_pass_and_undecided_footers() -> None:
    passed = _decision("pass", version=None, team=None)
    for check in passed["checks"]:
        check["passed"] = True if check["value"] is not None else None
    text = report.render(passed)
    assert text.splitlines()[0] == "## Onepane gate check: ✅ pass — `ml/fraud` (no version) (prod)"
    assert "model of team (none), counted per 1k predictions." in text
    assert text.endswith("**Passed** (decision 42).\n")
    assert "❌" not in text
    undecided = report.render(_decision("undecided"))
    assert undecided.endswith(
        "**Undecided** (decision 42): the gate could not judge this release.\n"
    )


def test_a_report_with_no_projection_shows_what_was_observed() -> None:
    decision = _decision(
        "pass",
        action="verify",
        checks=[],
        projection=None,
        notes=[],
        observed={
            "unit_cost": 0.31,
            "units": 50000,
            "cost": 15.5,
            "baseline_unit_cost": 0.30,
            "baseline": "v6, the 7 days before",
        },
    )
    text = report.render(decision)
    assert "| Threshold |" not in text
    assert "**Notes**" not in text
    assert "- observed: 0.3100 USD per 1k predictions from 50,000 units and 15.5000 USD" in text
    assert "- baseline: 0.3000 USD per 1k predictions (v6, the 7 days before)" in text


def test_a_pipeline_month_is_runs_times_the_current_cost_per_run() -> None:
    decision = _decision("pass", unit="run")
    decision["projection"] = {
        "current_unit_cost": 3.0,
        "unit_cost": 2.5,
        "monthly": 75.0,
        "runs_per_month": 30.0,
        "components": [],
    }
    text = report.render(decision)
    assert "| Cost per run | 3.0000 USD | 2.5000 USD |" in text
    assert "| Cost per month | 90.0000 USD | 75.0000 USD |" in text
    assert "Cost per hour" not in text


def test_the_report_when_the_gate_cannot_decide() -> None:
    text = report.render_error("no prices for region mars-1", fail_open=True)
    assert "The gate could not decide: no prices for region mars-1" in text
    assert "failing open: the release goes on." in text
    closed = report.render_error("boom", fail_open=False)
    assert "the release is held (exit 2)." in closed


# --- collectors.k8s.resources -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Decimal("0.25")),
        ("2Gi", Decimal(2 * 1024**3)),
        ("0.5Gi", Decimal(512 * 1024**2)),
        ("1Ki", Decimal(1024)),
        ("1Mi", Decimal(1024**2)),
        ("1Ti", Decimal(1024**4)),
        ("1Ei", Decimal(1024**6)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1G", Decimal(10**9)),
        ("1E", Decimal(10**18)),  # exa, not an exponent
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e6", Decimal(12 * 10**6)),
        ("1e-3", Decimal("0.001")),
        ("100n", Decimal("1e-7")),
        ("10u", Decimal("0.00001")),
        ("4", Decimal(4)),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("1.", Decimal(1)),
        ("+1", Decimal(1)),
        (" 2Gi ", Decimal(2 * 1024**3)),
        (3, Decimal(3)),
        (2.5, Decimal("2.5")),
        (Decimal("0.1"), Decimal("0.1")),
    ],
)
def test_quantities(text: object, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Gi",
        "2 Gi",
        "2 cores",
        "1K",
        "1ki",
        "1e",
        "1e3Gi",
        "1.2.3",
        "0x10",
        None,
        True,
        float("nan"),
        float("inf"),
    ],
)
def test_not_quantities(text: object) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


def test_quantity_is_none_when_unreadable() -> None:
    assert quantity(None) is None
    assert quantity("lots") is None
    assert quantity("1Gi") == 1024.0**3


def test_pod_overhead_counts_for_requests_only() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}],
        "overhead": {"cpu": "250m"},
    }
    assert effective_resources(spec, "requests") == {"cpu": Decimal("1.25")}
    assert effective_resources(spec, "limits") == {"cpu": Decimal(2)}


def test_gpu_amount_sums_whole_shared_and_mig() -> None:
    amounts = {
        "cpu": Decimal(4),
        "nvidia.com/gpu": Decimal(1),
        "nvidia.com/mig-1g.5gb": Decimal(2),
    }
    assert gpu_amount(amounts) == (3.0, "nvidia.com/gpu,nvidia.com/mig-1g.5gb")
    assert gpu_amount({"cpu": Decimal(1)}) == (None, None)
