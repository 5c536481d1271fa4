"""Renderers: reports -> text. Pure functions; they never read files or run rules."""
