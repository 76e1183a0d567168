"""Notebook widgets: the live graph, the control panel, the trace slider.

Examples
--------
>>> import labkit.ui
>>> labkit.ui.__name__
'labkit.ui'
"""
