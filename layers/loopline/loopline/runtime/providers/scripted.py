"""The scripted model as a provider (it lives in ``loopline.runtime.scripted``)."""

from loopline.runtime.scripted import ScriptedModel, ScriptInvalid

__all__ = ["ScriptInvalid", "ScriptedModel"]
