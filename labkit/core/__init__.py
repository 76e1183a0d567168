"""The pure core: states, the course, the kinds of change and the plan. No kernel here.

Examples
--------
>>> from labkit.core import plan, stages
>>> own = stages.owned(2)
>>> [op.kind for op in plan.diff(stages.desired("reset"), stages.desired("netns"), own, own.routes)]
['netns_add', 'netns_add']
"""
