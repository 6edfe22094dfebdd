"""The channels-last layout of an evaluation: :mod:`bastion.attacks._layout`, where
:meth:`bastion.attacks.base.Attack.run` uses it too."""

from __future__ import annotations

from bastion.attacks._layout import TOLERANCE, channels_last, wanted

__all__ = ["TOLERANCE", "channels_last", "wanted"]
