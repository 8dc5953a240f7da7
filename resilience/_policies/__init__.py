"""The policies: each is a decision core from ``resilience._core`` with thin sync and
async drivers; plus what composes them (``Policy``, ``Pipeline``, ``per_key``), their
events and ``describe()``.

Imports point down only: to ``resilience._core`` and ``resilience.errors``, never to
stores, integrations, config or the command.
"""
