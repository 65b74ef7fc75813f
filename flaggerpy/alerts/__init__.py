"""Alert notifiers: Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat and generic JSON webhooks.

:class:`flaggerpy.alerts.notifier.AlertNotifier` is what the engine uses (it implements the analysis contract's
``Notifier`` structurally); each chat service's message format lives in its own module, chosen by
:mod:`flaggerpy.alerts.factory` from the AlertProvider ``type``.
"""
