"""Workflow → Amazon States Language (JSONPath only)."""

from loopline.compiler.compile import CompileResult, Report, compact, compile_workflow, dumps

__all__ = ["CompileResult", "Report", "compact", "compile_workflow", "dumps"]
