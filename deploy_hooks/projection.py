"""A release's projected cost: its manifests × today's prices, per hour, month and unit.

* hourly = Σ components: (cores × core rate + GiB × GiB rate + GPUs × GPU rate) × replicas;
  an autoscaled component runs its observed average replicas, kept within min and max;
* monthly = hourly × 730; for a Job, cost per run × runs per month (its CronJob schedule,
  else the runs observed) where cost per run = pod cost × its pods' observed run time ×
  completions;
* unit cost = hourly ÷ the workload's observed throughput per hour (per 1k requests or
  predictions, per 1M tokens), or the cost per run for a pipeline;
* the current release, on the same basis: the pods running now × the same rates, so an
  unchanged manifest projects a 0% increase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deploy_hooks import cron
from deploy_hooks.manifests import GIB, Component, Release

if TYPE_CHECKING:
    from cost.observed import Observed, Rates

HOURS_PER_MONTH = 730.0
PER = {"requests": 1000.0, "predictions": 1000.0, "tokens": 1_000_000.0, "runs": 1.0}


@dataclass(frozen=True)
class Projection:
    hourly: float | None  # at the expected replicas; None for a Job
    hourly_min: float | None
    hourly_max: float | None
    monthly: float | None
    monthly_max: float | None
    cost_per_run: float | None
    runs_per_month: float | None
    unit_cost: float | None
    current_hourly: float | None
    current_unit_cost: float | None
    components: list[dict[str, Any]]
    notes: list[str]

    @property
    def increase_pct(self) -> float | None:
        """Over the current release: per unit when known, else per hour (the same ratio)."""
        for before, after in (
            (self.current_unit_cost, self.unit_cost),
            (self.current_hourly, self.hourly),
        ):
            if before and after is not None:
                return (after / before - 1) * 100
        return None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["increase_pct"] = self.increase_pct
        return out


def pod_hourly(cpu: float, memory: float, gpus: float, rates: Rates) -> float:
    return cpu * rates.cpu + memory / GIB * rates.ram + gpus * rates.gpu


def _replicas(component: Component, avg_pods: float | None) -> int:
    if not component.autoscaled:
        return component.replicas
    if avg_pods is None:
        return component.replicas
    return min(max(round(avg_pods), component.replicas), component.max_replicas)


def project(release: Release, observed: Observed, rates: Rates) -> Projection:
    """The release's cost per hour, month and unit, next to the current release's."""
    notes: list[str] = []
    components = []
    hourly = hourly_min = hourly_max = 0.0
    single = len(release.components) == 1
    for c in release.components:
        each = pod_hourly(c.cpu, c.memory, c.gpus, rates)
        replicas = _replicas(c, observed.avg_pods if single else None)
        components.append(
            {
                "name": c.name,
                "cpu": c.cpu,
                "memory_gib": c.memory / GIB,
                "gpus": c.gpus,
                "pod_hourly": each,
                "replicas": replicas,
                "min_replicas": c.replicas,
                "max_replicas": c.max_replicas,
                "autoscaled": c.autoscaled,
            }
        )
        hourly += each * replicas
        hourly_min += each * c.replicas
        hourly_max += each * c.max_replicas
        if c.autoscaled:
            basis = "min"
            if observed.avg_pods and single:
                seen = f"{observed.avg_pods:.1f} observed on average"
                basis = (
                    "its observed average replicas"
                    if replicas == round(observed.avg_pods)
                    else f"{'min' if replicas == c.replicas else 'max'}; {seen}"
                )
            notes.append(
                f"{c.name} autoscales {c.replicas}–{c.max_replicas}: projected at "
                f"{replicas} ({basis})"
            )
    unit = observed.identity.unit
    current = observed.current
    current_hourly = None
    if current.cpu is not None or current.memory is not None or current.gpus:
        pods = current.pods or observed.avg_pods or 1
        current_hourly = pod_hourly(current.cpu or 0, current.memory or 0, current.gpus, rates)
        current_hourly *= pods if not release.is_job else 1
    if release.is_job:
        return _job(release, observed, rates, components, notes, current_hourly)
    throughput = observed.throughput_per_hour
    unit_cost = current_unit = None
    if throughput:
        unit_cost = hourly / throughput * PER[unit]
        if current_hourly is not None:
            current_unit = current_hourly / throughput * PER[unit]
    else:
        notes.append(
            f"no {unit} observed for {release.workload} in the window: unit cost "
            "cannot be projected"
        )
    return Projection(
        hourly,
        hourly_min,
        hourly_max,
        hourly * HOURS_PER_MONTH,
        hourly_max * HOURS_PER_MONTH,
        None,
        None,
        unit_cost,
        current_hourly,
        current_unit,
        components,
        notes,
    )


def _job(
    release: Release,
    observed: Observed,
    rates: Rates,
    components: list[dict[str, Any]],
    notes: list[str],
    current_pod_hourly: float | None,
) -> Projection:
    """A pipeline: cost per run from its pods' observed run time; runs from its schedule."""
    [c] = release.components
    pod = pod_hourly(c.cpu, c.memory, c.gpus, rates)
    run_hours = observed.job_pod_hours
    per_run = current_run = None
    if run_hours is None:
        notes.append(
            f"no finished pods of {release.workload} in the window: the run time, so "
            "the cost per run, cannot be projected"
        )
    else:
        per_run = pod * run_hours * release.completions
        if current_pod_hourly is not None:
            current_run = current_pod_hourly * run_hours * release.completions
        notes.append(
            f"cost per run = pod cost × {run_hours:.2f} h (its pods' average run time) "
            f"× {release.completions} completion(s)"
        )
    if release.schedule:
        runs = cron.runs_per_month(release.schedule)
        notes.append(f"{runs:g} runs a month from the schedule {release.schedule!r}")
    else:
        days = (observed.window.end_ns - observed.window.start_ns) / 86_400e9
        runs = observed.units / days * 30 if observed.units and days else None
        if runs is not None:
            notes.append(f"{runs:.1f} runs a month at the {observed.units} runs observed")
    monthly = per_run * runs if per_run is not None and runs is not None else None
    return Projection(
        None,
        None,
        None,
        monthly,
        monthly,
        per_run,
        runs,
        per_run,
        None,
        current_run,
        components,
        notes,
    )
