"""`tollway demo`: the whole billing story, offline, in one process (see docs/demo.md).

timeline.py holds the demo's moments (pure), localstripe.py starts the optional Stripe emulator, story.py runs
the steps against a Tollway built through the composition root and served on a loopback port.
"""
