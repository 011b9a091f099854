"""Self-reflection data generation: trial 1 → verify → reflect → retry → verify, batched across
questions at every stage; curation into D+ / D± / Dpref / sft_qa; publishing to the Hub.

Entry points: `reflectevo gen run|curate|push|merge` and the Python functions
`reflectevo_gen.pipeline.run`, `reflectevo_gen.curate.curate`, `reflectevo_gen.publish.push`.
"""
