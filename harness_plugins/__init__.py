"""Plugins that connect reflectevo to lm-evaluation-harness.

Kept import-free on purpose: `zz_reflectevo_lm_eval.pth` imports `harness_plugins.lm_eval_hook`
in every Python process of the environment, so nothing here may pull in heavy modules.
"""
