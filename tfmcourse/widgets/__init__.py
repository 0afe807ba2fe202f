"""ipywidgets explorers for the book and the notebooks, one module per topic.

Explorers for the static book precompute their frames (no kernel is there to run callbacks); the
notebooks can use the live versions.
"""
