"""The exact packing that bench/scheduling.py compares with: CP-SAT (PyPI ortools) minimises the
hosts used, subject to capacity and primary/standby anti-affinity.

Runs in its own virtual environment (.venv-solver, made by `make bench`), because ortools pins
protobuf 6 and medcloud needs 7. Reads the problem as JSON on stdin, prints the answer as JSON:
{"hosts": [{"vcpu": 32, "memory_gib": 128}, ...],
 "instances": [{"system": "his", "role": "primary", "vcpu": 4, "memory_gib": 8}, ...],
 "seconds": 60}  ->  {"hosts_used": 27, "status": "optimal"}"""

from __future__ import annotations

import json
import sys

from ortools.sat.python import cp_model


def solve(problem: dict) -> dict:
    hosts, instances = problem["hosts"], problem["instances"]
    model = cp_model.CpModel()
    used = [model.new_bool_var(f"used-{h}") for h in range(len(hosts))]
    rows = []
    for number, _ in enumerate(instances):
        row = [model.new_bool_var(f"i{number}-h{h}") for h in range(len(hosts))]
        model.add_exactly_one(row)
        rows.append(row)
    for h, host in enumerate(hosts):
        model.add(
            sum(i["vcpu"] * row[h] for i, row in zip(instances, rows, strict=True))
            <= host["vcpu"] * used[h]
        )
        model.add(
            sum(i["memory_gib"] * row[h] for i, row in zip(instances, rows, strict=True))
            <= host["memory_gib"] * used[h]
        )
        for p, first in enumerate(instances):
            for q, second in enumerate(instances):
                if (
                    first["system"] == second["system"]
                    and first["role"] == "primary"
                    and second["role"] == "standby"
                ):
                    model.add(rows[p][h] + rows[q][h] <= 1)
    if all(host == hosts[0] for host in hosts):
        for h in range(1, len(hosts)):  # identical hosts: use them in order
            model.add(used[h] <= used[h - 1])
    model.minimize(sum(used))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = problem.get("seconds", 60)
    solver.parameters.num_workers = 2
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {"hosts_used": None, "status": solver.status_name(status).lower()}
    return {
        "hosts_used": round(solver.objective_value),
        "status": solver.status_name(status).lower(),
    }


if __name__ == "__main__":
    print(json.dumps(solve(json.load(sys.stdin))))
