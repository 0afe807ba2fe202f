"""Plots for the book and the notebooks, one module per topic (matplotlib, no seaborn).

Import what you need from its module, e.g. ``from tfmcourse.viz.attention import record_attention``.
"""
