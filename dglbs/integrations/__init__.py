"""Bridges to other training libraries; each submodule imports its library itself."""
