"""Security pool: MLPS level-3 baseline, health-data governance, tamper-evident audit and
three-role separation (R-7.2.4, R-7.5)."""
