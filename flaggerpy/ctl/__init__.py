"""Commands for people: ``get``, ``status``, ``promote``/``abort``/``pause``/``resume``/``retry`` and ``lint``.

Each command module exposes ``configure(parser)`` and ``run(args) -> int`` for :mod:`flaggerpy.cli`.
"""
