"""`tollway demo`: the whole billing story, offline, in one process (see docs/demo.md).

timeline.py holds the demo's moments (pure), stripe_standin.py is the local stand-in for Stripe's API (for demos
and tests, never production), story.py runs the steps against a Tollway built through the composition root and
served on a loopback port.
"""
