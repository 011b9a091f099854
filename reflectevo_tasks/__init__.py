"""Task definitions shared by generation, training and evaluation: question sources (BBH, the
BIG-bench pool, any column-mapped dataset), prompt builders, the instruction pool, and answer
scoring. Nothing here depends on a model; `reflectevo_tasks.engine` is the one door to models."""
